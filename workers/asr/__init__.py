"""Whisper speech recognition layer: CTranslate2 checkpoint conversion, model registry,
media decoding and batched transcription on top of openai-whisper, or of CTranslate2
(the optional ``ct2`` engine, ``ct2_engine``).

Importing this package is cheap: torch and whisper are only imported by the
submodules that need them (``convert``, ``transcribe``).
"""
