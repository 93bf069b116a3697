"""PCM WAV decoding without ffmpeg: stdlib ``wave`` + numpy (no torch / whisper imports).

Hosts without ffmpeg (a GPU box where nothing can be installed) still take the most common
upload, a PCM WAV: 8/16/24/32-bit integer samples, any channel count (averaged to mono, as
``ffmpeg -ac 1`` does) and any sample rate (resampled with a windowed-sinc filter).
Anything else (float WAV, compressed codecs in a RIFF header, other containers) returns
None from :func:`read_pcm_wav` so the caller can fall back to ffmpeg.
"""

from __future__ import annotations

import wave
from fractions import Fraction

import numpy as np

TAPS_HALF = 16  # filter half-width in input samples at the lower rate
BETA = 8.0  # Kaiser window shape: about -80 dB stop band
CHUNK = 1 << 16  # output samples resampled per step (bounded memory on long files)


def read_pcm_wav(
    path: str, sample_rate: int = 16000, max_seconds: float | None = None
) -> np.ndarray | None:
    """Mono float32 in [-1, 1] at ``sample_rate``, or None if not a PCM WAV we can read.

    With ``max_seconds``, at most ``max_seconds + 1`` s are read (the caller compares the
    length with its limit, as with ffmpeg's ``-t``).
    """
    try:
        with wave.open(path, "rb") as fh:
            channels, width, rate = fh.getnchannels(), fh.getsampwidth(), fh.getframerate()
            frames = fh.getnframes()
            if max_seconds:
                frames = min(frames, int((max_seconds + 1) * rate))
            raw = fh.readframes(frames)
    except (wave.Error, EOFError, ValueError):
        return None  # not RIFF/WAVE, or a non-PCM format tag: let ffmpeg try
    if channels < 1 or rate < 1 or width not in (1, 2, 3, 4):
        return None
    usable = len(raw) - len(raw) % (width * channels)
    samples = _to_float(raw[:usable], width).reshape(-1, channels)
    mono = samples.mean(axis=1, dtype=np.float32) if channels > 1 else samples[:, 0]
    return resample(mono, rate, sample_rate)


def _to_float(raw: bytes, width: int) -> np.ndarray:
    if width == 1:  # 8-bit WAV is unsigned
        return (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    if width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        ints = (b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)) << 8 >> 8  # sign-extend 24 bit
        return ints.astype(np.float32) / float(1 << 23)
    dtype = {2: "<i2", 4: "<i4"}[width]
    return np.frombuffer(raw, dtype).astype(np.float32) / float(1 << (8 * width - 1))


def resample(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Band-limited resampling (Kaiser-windowed sinc, cut-off 0.95 x the lower Nyquist).

    Polyphase: with ``rate_out / rate_in = L / M`` there are L filter phases, each applied
    as a matrix product over a strided view of the input (no per-sample Python work).
    """
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    if rate_in == rate_out or len(audio) == 0:
        return audio
    ratio = Fraction(rate_out, rate_in)
    up, down = ratio.numerator, ratio.denominator
    n_out = int(len(audio) * ratio)
    cutoff = 0.95 * min(1.0, rate_out / rate_in)  # in units of the input Nyquist
    half = int(np.ceil(TAPS_HALF / cutoff))
    offsets = np.arange(-half + 1, half + 1)
    dist = np.arange(up)[:, None] / up - offsets[None, :]  # (phase, tap) -> distance
    window = np.i0(BETA * np.sqrt(np.clip(1.0 - (dist / half) ** 2, 0.0, 1.0))) / np.i0(BETA)
    table = (cutoff * np.sinc(cutoff * dist) * window).astype(np.float32)
    padded = np.pad(audio, (half, half + down + 1))
    windows = np.lib.stride_tricks.sliding_window_view(padded, len(offsets))
    out = np.empty(n_out, np.float32)
    for first in range(min(up, n_out)):
        phase, base = (first * down) % up, (first * down) // up
        count = len(range(first, n_out, up))
        rows = windows[base + 1 :: down][:count]  # rows[j] feeds output first + j * up
        dest = out[first::up]
        for j in range(0, count, CHUNK):
            dest[j : j + CHUNK] = rows[j : j + CHUNK] @ table[phase]
    return np.clip(out, -1.0, 1.0)
