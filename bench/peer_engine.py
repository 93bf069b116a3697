"""faster-whisper's batched int8 pipeline on Hark's own weights, for ``bench.asr_peer``.

The peer loads the CTranslate2 files the model packages ship
(``workers.asr.registry.ensure_ct2_dir``: ``base``'s split ``model.bin`` is joined once
into ``$MODELS_DIR/ct2/base``, as Hark's ``ct2`` engine loads it) and decodes
with its options pinned to Hark's: greedy (beam 1, one sample per fallback temperature),
English, segment timestamps on, the same temperature fallback and thresholds, windows
decoded independently, and VAD the same as Hark's side. With VAD off it decodes Hark's
own window bounds (``workers.asr.segments.window_bounds``) as ``clip_timestamps``, so
both sides see the very same windows.
"""

from __future__ import annotations

import logging

import numpy as np

from workers.asr.registry import ensure_ct2_dir

SAMPLE_RATE = 16000
BATCH_SIZE = 8


class Peer:
    """One loaded faster-whisper model and its batched pipeline."""

    def __init__(self, name: str, threads: int, vad: bool):
        from faster_whisper import BatchedInferencePipeline, WhisperModel

        logging.getLogger("faster_whisper").setLevel(logging.WARNING)  # one line per call
        self.name, self.vad = name, vad
        self.model = WhisperModel(str(ensure_ct2_dir(name)), device="cpu", compute_type="int8",
                                  cpu_threads=threads, num_workers=1)
        self.pipeline = BatchedInferencePipeline(self.model)

    def options(self) -> dict:
        """The pinned decoding options (printed by the benchmark)."""
        return {"language": "en", "task": "transcribe", "batch_size": BATCH_SIZE,
                "beam_size": 1, "best_of": 1, "without_timestamps": False,
                "condition_on_previous_text": False, "word_timestamps": False,
                "temperature": [0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
                "compression_ratio_threshold": 2.4, "log_prob_threshold": -1.0,
                "no_speech_threshold": 0.6, "vad_filter": self.vad}  # fmt: skip

    def _run(self, audio: np.ndarray, clips: list[dict] | None) -> list:
        segments, _ = self.pipeline.transcribe(audio, clip_timestamps=clips, **self.options())
        return list(segments)  # the generator decodes as it is consumed

    def transcribe(self, audio: np.ndarray) -> str:
        """Text of one audio (Hark's windows as clips when VAD is off)."""
        clips = None if self.vad else windows(audio, 0.0)
        return " ".join(s.text.strip() for s in self._run(audio, clips))

    def transcribe_pooled(self, audios: list[np.ndarray]) -> list[str]:
        """Texts of several audios decoded in shared batches: they are joined into one
        array and each window given as a clip (VAD off only: clips switch VAD off)."""
        if self.vad:
            raise ValueError("pooled decoding needs VAD off (clip_timestamps disable it)")
        clips, owner, offset = [], [], 0.0
        for i, audio in enumerate(audios):
            mine = windows(audio, offset)
            clips += mine
            owner += [(i, c["start"], c["end"]) for c in mine]
            offset += len(audio) / SAMPLE_RATE
        texts: list[list[str]] = [[] for _ in audios]
        for seg in self._run(np.concatenate(audios), clips):
            middle = (seg.start + seg.end) / 2
            i = next((i for i, s, e in owner if s <= middle < e), owner[-1][0])
            texts[i].append(seg.text.strip())
        return [" ".join(t) for t in texts]


def windows(audio: np.ndarray, offset: float) -> list[dict]:
    """Hark's window bounds of ``audio`` as clip_timestamps (seconds, shifted by offset)."""
    from workers.asr.segments import window_bounds

    return [{"start": offset + s / SAMPLE_RATE, "end": offset + e / SAMPLE_RATE}
            for s, e in window_bounds(audio)]
