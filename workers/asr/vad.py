"""Voice activity detection with Silero VAD: decode only the speech, keep the timeline.

The Silero model (``silero-vad`` package, its bundled TorchScript file; loads offline)
gives a speech probability per 32 ms frame. Speech spans are the runs above
``threshold`` (left when the probability falls below ``threshold - 0.15``), merged across
pauses shorter than ``min_silence_ms``, padded by ``speech_pad_ms``; spans shorter than
``min_speech_ms`` are dropped. :func:`compact` joins the spans into one shorter audio that
Whisper transcribes; :meth:`SpeechMap.restore` moves the result's segment and word times
back onto the original recording (the approach faster-whisper takes).

The model is stateful (an LSTM over frames), which makes one pass over a long recording a
long Python loop; the audio is therefore cut into streams of ~8 s, each preceded by 1 s of
the audio before it to warm the state, and the streams run as one batch.
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

SAMPLE_RATE = 16000
FRAME = 512  # samples per Silero frame at 16 kHz (32 ms)
STREAM_FRAMES = 256  # ~8.2 s per batched stream
WARM_FRAMES = 32  # ~1 s of preceding audio to warm each stream's state
PACKAGE = "silero-vad"

_MODEL: Any = None
_LOCK = threading.Lock()


class VadUnavailable(RuntimeError):
    """The Silero VAD model could not be loaded (its package is missing or broken)."""


@dataclasses.dataclass(frozen=True)
class VadOptions:
    """Thresholds of speech detection (the request options of the same names)."""

    threshold: float = 0.5
    min_speech_ms: int = 250
    min_silence_ms: int = 1000
    speech_pad_ms: int = 400

    @classmethod
    def from_options(cls, options: dict) -> VadOptions:
        """Build from request options ``vad_threshold``, ``vad_min_speech_ms``,
        ``vad_min_silence_ms`` and ``vad_speech_pad_ms`` (absent or None: the default)."""
        given = {f.name: options.get(f"vad_{f.name}") for f in dataclasses.fields(cls)}
        opts = cls(**{k: v for k, v in given.items() if v is not None})
        if not 0.0 < opts.threshold < 1.0:
            raise ValueError(f"vad_threshold must be between 0 and 1, got {opts.threshold!r}")
        for name in ("min_speech_ms", "min_silence_ms", "speech_pad_ms"):
            value = getattr(opts, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 60000:
                raise ValueError(f"vad_{name} must be an integer from 0 to 60000, got {value!r}")
        return opts


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one intra-op thread meanwhile: the small per-frame steps of the VAD
    and speaker models gain nothing from more, and on a busy host spinning OpenMP
    threads cost 10-20x the CPU time (measured: 0.9 s vs 20 s for 2 minutes of VAD)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def load_vad() -> Any:
    """The process-wide Silero VAD TorchScript model (CPU). Raises :class:`VadUnavailable`."""
    global _MODEL
    with _LOCK:
        if _MODEL is None:
            threads = torch.get_num_threads()
            try:
                from silero_vad import load_silero_vad

                _MODEL = load_silero_vad(onnx=False)
            except Exception as exc:  # ImportError, or a damaged model file
                raise VadUnavailable(
                    f"voice activity detection needs the {PACKAGE} package "
                    f"(pip install {PACKAGE}): {exc}"
                ) from exc
            finally:  # importing silero_vad sets torch to one thread for the whole process
                torch.set_num_threads(threads)
        return _MODEL


def speech_probabilities(audio: np.ndarray) -> np.ndarray:
    """Speech probability of each 512-sample frame of 16 kHz mono ``audio``."""
    n = -(-len(audio) // FRAME)
    if n == 0:
        return np.zeros(0, np.float32)
    model = load_vad()
    frames = torch.zeros(WARM_FRAMES + n + STREAM_FRAMES, FRAME)
    frames.view(-1)[WARM_FRAMES * FRAME : WARM_FRAMES * FRAME + len(audio)] = torch.from_numpy(
        np.ascontiguousarray(audio, np.float32)
    )
    streams = -(-n // STREAM_FRAMES)
    index = (
        torch.arange(streams)[:, None] * STREAM_FRAMES
        + torch.arange(WARM_FRAMES + STREAM_FRAMES)[None, :]
    )
    batch = frames[index]  # (streams, warm + stream, FRAME)
    with _LOCK, torch.no_grad(), one_thread():
        model.reset_states()
        probs = [model(batch[:, j].contiguous(), SAMPLE_RATE)[:, 0] for j in range(batch.shape[1])]
        model.reset_states()
    out = torch.stack(probs, dim=1)[:, WARM_FRAMES:].reshape(-1)[:n]
    return out.numpy()


def speech_spans(audio: np.ndarray, opts: VadOptions | None = None) -> list[tuple[int, int]]:
    """Speech as ``(start, end)`` sample ranges of ``audio``, sorted and disjoint."""
    opts = opts or VadOptions()
    probs = speech_probabilities(audio)
    ms = 1000 * FRAME / SAMPLE_RATE
    low = max(opts.threshold - 0.15, 0.01)
    runs, start = [], None
    for i, p in enumerate(probs):
        if start is None and p >= opts.threshold:
            start = i
        elif start is not None and p < low:
            runs.append([start, i])
            start = None
    if start is not None:
        runs.append([start, len(probs)])
    merged: list[list[int]] = []
    for run in runs:
        if merged and (run[0] - merged[-1][1]) * ms < opts.min_silence_ms:
            merged[-1][1] = run[1]
        else:
            merged.append(run)
    pad = int(opts.speech_pad_ms * SAMPLE_RATE / 1000)
    spans: list[tuple[int, int]] = []
    for s, e in merged:
        if (e - s) * ms < opts.min_speech_ms:
            continue
        lo, hi = max(0, s * FRAME - pad), min(len(audio), e * FRAME + pad)
        if spans and lo <= spans[-1][1]:
            spans[-1] = (spans[-1][0], hi)
        else:
            spans.append((lo, hi))
    return spans


@dataclasses.dataclass(frozen=True)
class SpeechMap:
    """Where each span of the compacted audio lies in the original recording."""

    spans: tuple[tuple[int, int], ...]
    n_samples: int  # of the original audio
    starts: tuple[int, ...] = dataclasses.field(init=False)  # of each span, compacted

    def __post_init__(self) -> None:
        starts = np.cumsum([0] + [e - s for s, e in self.spans[:-1]]).tolist()
        object.__setattr__(self, "starts", tuple(starts))

    def to_original(self, seconds: float, is_end: bool = False) -> float:
        """A time of the compacted audio -> the same instant of the original (an end
        exactly at a join belongs to the span before it)."""
        if not self.spans:
            return seconds
        sample, starts = seconds * SAMPLE_RATE, self.starts
        pick = bisect.bisect_left if is_end else bisect.bisect_right
        i = max(0, min(len(self.spans) - 1, pick(starts, sample) - 1))
        original = self.spans[i][0] + sample - starts[i]
        return min(original, self.spans[i][1], self.n_samples) / SAMPLE_RATE

    def restore(self, result: dict) -> dict:
        """``result`` of the compacted audio with times on the original timeline."""
        for seg in result["segments"]:
            seg["start"] = round(self.to_original(seg["start"]), 3)
            seg["end"] = round(max(self.to_original(seg["end"], True), seg["start"]), 3)
            for w in seg.get("words", ()):
                w["start"] = round(self.to_original(w["start"]), 3)
                w["end"] = round(max(self.to_original(w["end"], True), w["start"]), 3)
        result["duration"] = round(self.n_samples / SAMPLE_RATE, 3)
        return result


def compact(audio: np.ndarray, opts: VadOptions | None = None) -> tuple[np.ndarray, SpeechMap]:
    """The speech of ``audio`` joined end to end, and the map back to ``audio``'s times."""
    spans = speech_spans(audio, opts)
    joined = np.concatenate([audio[s:e] for s, e in spans]) if spans else audio[:0]
    return joined, SpeechMap(tuple(spans), len(audio))
