"""The options around the model for one transcription: VAD, prompt/hotwords, diarization.

:func:`~workers.asr.transcribe.run_transcription` builds a :class:`SpeechFeatures` from the
task's options, transcribes ``features.speech(audio)`` with ``features.prompt`` and hands
the result to ``features.finish``, which moves times back onto the original recording and
labels speakers.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from core.prompting import PROMPT_TOKEN_LIMIT, fold_prompt
from workers.asr.diarize import SpeakerCount, diarize, get_encoder
from workers.asr.vad import SpeechMap, VadOptions, compact, load_vad


@dataclasses.dataclass(frozen=True)
class SpeechFeatures:
    """Validated feature options of one task."""

    vad: VadOptions | None = VadOptions()
    prompt: str | None = None
    speakers: SpeakerCount | None = None  # None: no diarization

    @classmethod
    def from_options(cls, options: dict) -> SpeechFeatures:
        """From request options (``vad``, ``vad_*``, ``prompt``, ``hotwords``, ``diarize``,
        ``num_speakers``, ``min_speakers``, ``max_speakers``); ValueError for bad ones."""
        vad = options.get("vad", True)
        prompt, hotwords = options.get("prompt"), options.get("hotwords")
        if not isinstance(vad, bool):
            raise ValueError(f"vad must be true or false, got {vad!r}")
        if prompt is not None and not isinstance(prompt, str):
            raise ValueError("prompt must be a string")
        if hotwords is not None and (not isinstance(hotwords, list)
                                     or not all(isinstance(w, str) for w in hotwords)):
            raise ValueError("hotwords must be a list of strings")
        diarize_on = options.get("diarize", False)
        if not isinstance(diarize_on, bool):
            raise ValueError(f"diarize must be true or false, got {diarize_on!r}")
        return cls(
            vad=VadOptions.from_options(options) if vad else None,
            prompt=fold_prompt(prompt, hotwords),
            speakers=SpeakerCount.from_options(options) if diarize_on else None,
        )

    def load_models(self, device: str) -> None:
        """Load the VAD and speaker models the task needs, so a missing package fails
        the task before any decoding (VadUnavailable / DiarizationUnavailable)."""
        if self.vad is not None:
            load_vad()
        if self.speakers is not None:
            get_encoder(device)

    def check_prompt(self, tokenizer) -> None:
        """ValueError when the prompt overruns Whisper's budget with this tokenizer."""
        if self.prompt is None:
            return
        used = len(tokenizer.encode(" " + self.prompt.strip()))
        if used > PROMPT_TOKEN_LIMIT:
            raise ValueError(f"prompt and hotwords take {used} tokens; Whisper's prompt "
                             f"budget is {PROMPT_TOKEN_LIMIT}")

    def speech(self, audio: np.ndarray) -> tuple[np.ndarray, SpeechMap | None]:
        """The audio to decode (only its speech with VAD) and the map back."""
        if self.vad is None:
            return audio, None
        return compact(audio, self.vad)

    def word_timestamps(self, requested: bool) -> bool:
        """Whether to time words: when asked for, and always to diarize (speaker turns
        are found between words)."""
        return requested or self.speakers is not None

    def finish(self, result: dict, audio: np.ndarray, speech_map: SpeechMap | None,
               device: str, keep_words: bool) -> dict:
        """Times on ``audio``'s timeline, then speakers when asked for; words dropped
        unless ``keep_words``."""
        if speech_map is not None:
            result = speech_map.restore(result)
        if self.speakers is not None:
            result = diarize(result, audio, device, self.speakers)
        if not keep_words:
            for seg in result["segments"]:
                seg.pop("words", None)
        return result
