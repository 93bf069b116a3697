"""Pure helpers for windowing audio and turning Whisper tokens into segments.

No torch / whisper imports: the tokenizer is passed in (anything with ``timestamp_begin``
and ``eot``), so this is cheap to import and easy to unit test.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

SAMPLE_RATE = 16000
WINDOW_SAMPLES = 30 * SAMPLE_RATE  # whisper.audio.N_SAMPLES
MIN_CUT_S = 25.0
TIME_PRECISION = 0.02  # seconds per timestamp token
TAIL_MIN_S = 1.0  # a window's decode that stops this much before its end is resumed
# Per-window decoding scores each segment keeps (OpenAI's verbose_json reports them).
SCORES = ("temperature", "avg_logprob", "compression_ratio", "no_speech_prob")


def window_bounds(audio: np.ndarray) -> list[tuple[int, int]]:
    """Windows of at most 30 s; each cut goes in the quietest ~0.3 s of the window's
    last 5 s (a pause between words, not a stop consonant inside one)."""
    n, bounds, start = len(audio), [], 0
    frame, span = 320, 15  # 20 ms frames, 300 ms smoothing
    while start < n:
        end = min(start + WINDOW_SAMPLES, n)
        if end < n:
            lo = start + int(MIN_CUT_S * SAMPLE_RATE)
            k = (end - lo) // frame
            energy = np.square(audio[lo : lo + k * frame].reshape(k, frame)).mean(axis=1)
            smooth = np.convolve(energy, np.ones(span) / span, mode="valid")
            end = lo + (int(np.argmin(smooth)) + span // 2) * frame + frame // 2
        bounds.append((start, end))
        start = end
    return bounds


def parse_segments(tokens: Sequence[int], tok: Any, length_s: float) -> list[dict]:
    """Split a window's tokens at timestamp tokens into window-relative segments."""
    out, text, start, last = [], [], None, 0.0
    for t in tokens:
        if t >= tok.timestamp_begin:
            ts = min((t - tok.timestamp_begin) * TIME_PRECISION, length_s)
            if text:
                out.append(
                    {"start": start if start is not None else last, "end": ts, "tokens": text}
                )
                text, start, last = [], None, ts
            else:
                start = ts
        elif t < tok.eot:
            text.append(t)
    if text:
        out.append({"start": start if start is not None else last, "end": length_s, "tokens": text})
    return out


def tail_start(tokens: Sequence[int], tok: Any, length_s: float) -> float | None:
    """Where a window's decode stopped short, in seconds into the window, or None.

    A decode that ends on a timestamp pair closed its last segment and began another
    that it did not write: openai-whisper's own ``transcribe`` seeks there and decodes the
    rest of the window (one ending on a single timestamp means no more speech). Windows
    here are decoded independently, so the rest (at least ``TAIL_MIN_S``) is decoded as a
    window of its own; otherwise it would be lost (int8 tiny.en did this on real speech).
    """
    if len(tokens) < 3 or tokens[-1] < tok.timestamp_begin or tokens[-2] < tok.timestamp_begin:
        return None
    if not any(t < tok.eot for t in tokens):
        return None
    end = (tokens[-1] - tok.timestamp_begin) * TIME_PRECISION
    return end if 0 < end <= length_s - TAIL_MIN_S else None


def _words(segment: dict, offset: float, duration: float) -> list[dict]:
    words, prev = [], offset
    for w in segment.get("words", []):
        if not w["word"].strip():
            continue
        start = min(max(float(w["start"]), prev), duration)
        end = min(max(float(w["end"]), start), duration)
        words.append(
            {
                "word": w["word"].strip(),
                "start": round(start, 3),
                "end": round(end, 3),
                "probability": round(float(w["probability"]), 4),
            }
        )
        prev = start
    return words


def assemble_result(
    name: str | None, n_samples: int, lang: str, raw: list[dict], words: bool
) -> dict:
    """Final result dict from window segments (ordered, clipped to the duration)."""
    duration = n_samples / SAMPLE_RATE
    segments, prev = [], 0.0
    for seg in sorted(raw, key=lambda s: s["seek"]):
        text = seg["text"].strip()
        if not text:
            continue
        start = min(max(float(seg["start"]), prev), duration)
        end = min(max(float(seg["end"]), start), duration)
        item: dict[str, Any] = {
            "id": len(segments),
            "start": round(start, 3),
            "end": round(end, 3),
            "text": text,
            "seek": int(seg["seek"]),
            "tokens": [int(t) for t in seg["tokens"]],
            **{k: round(float(seg[k]), 4) for k in SCORES if k in seg},
        }
        if words:
            item["words"] = _words(seg, start, duration)
        segments.append(item)
        prev = start
    return {
        "text": "".join(s["text"] for s in sorted(raw, key=lambda s: s["seek"])).strip(),
        "language": lang,
        "duration": round(duration, 3),
        "segments": segments,
        "model": name,
    }
