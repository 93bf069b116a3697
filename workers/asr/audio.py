"""Media decoding: PCM WAV in-process, everything else through ffmpeg (no torch / whisper).

PCM WAV (8/16/24/32-bit integer, any rate and channel count) is read with the stdlib
(:mod:`workers.asr.wav`), so a host without ffmpeg still transcribes WAV uploads. Any
container ffmpeg understands works too (MP3, FLAC, OGG/Opus, float WAV, the audio track of
MP4/WebM/MKV...). Inputs are opened with the ``file:`` protocol only, so a crafted playlist
cannot make ffmpeg fetch URLs.
"""

from __future__ import annotations

import os
import subprocess

import numpy as np

from core.media_probe import (  # noqa: F401  (re-exported)
    MediaDecodeError,
    check_file,
    ffmpeg_binary,
    probe_duration,
)
from workers.asr.wav import read_pcm_wav

SAMPLE_RATE = 16000
DECODE_TIMEOUT_S = float(os.environ.get("FFMPEG_TIMEOUT", "900"))


class MediaTooLong(ValueError):
    """The audio lasts longer than the operator allows (``MAX_MEDIA_SECONDS``)."""


def _explain(stderr: str, url: str) -> str:
    """Turn ffmpeg's stderr into a short human message (without the server-side path)."""
    stderr = stderr.replace(url + ": ", "").replace(url, "input")
    low = stderr.lower()
    if "matches no streams" in low or "does not contain any stream" in low:
        return "could not decode media: no audio stream found"
    if any(
        k in low
        for k in (
            "invalid data found",
            "could not find codec parameters",
            "invalid argument",
            "end of file",
        )
    ):
        return "could not decode media: unrecognized or corrupt file format"
    if "permission denied" in low:
        return "could not decode media: permission denied"
    last = next((ln.strip() for ln in reversed(stderr.splitlines()) if ln.strip()), "")
    return f"could not decode media: {last[:200] or 'ffmpeg failed'}"


def decode_audio(
    path: str, sample_rate: int = SAMPLE_RATE, timeout: float | None = None,
    max_seconds: float | None = None,
) -> np.ndarray:
    """Decode the first audio stream of ``path`` to mono float32 in [-1, 1] at ``sample_rate``.

    Raises :class:`MediaDecodeError` for missing, empty, non-media or audio-less input, and
    :class:`MediaTooLong` for audio longer than ``max_seconds`` (ffmpeg stops decoding just
    past the limit, so a long file costs no more than an allowed one, and no probe runs).
    """
    url = check_file(path)
    pcm = read_pcm_wav(path, sample_rate, max_seconds=max_seconds)
    if pcm is not None:
        if len(pcm) == 0:
            raise MediaDecodeError("could not decode media: no audio samples decoded")
        _check_length(len(pcm), sample_rate, max_seconds)
        return pcm
    limit = ["-t", f"{max_seconds + 1:g}"] if max_seconds else []
    cmd = [
        _ffmpeg_or_refuse(), "-nostdin", "-hide_banner", "-loglevel", "error",
        "-protocol_whitelist", "file", "-i", url,
        "-map", "0:a:0", "-vn", "-sn", "-dn", *limit,
        "-f", "s16le", "-acodec", "pcm_s16le", "-ac", "1", "-ar", str(sample_rate), "-",
    ]  # fmt: skip
    try:
        proc = subprocess.run(
            cmd, capture_output=True, timeout=timeout or DECODE_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise MediaDecodeError(
            f"could not decode media: timed out after {exc.timeout:.0f} s"
        ) from None
    stderr = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise MediaDecodeError(_explain(stderr, url))
    usable = len(proc.stdout) - len(proc.stdout) % 2
    if usable == 0:
        raise MediaDecodeError("could not decode media: no audio samples decoded")
    _check_length(usable // 2, sample_rate, max_seconds)
    pcm = np.frombuffer(proc.stdout[:usable], dtype="<i2")
    return pcm.astype(np.float32) / 32768.0


def _check_length(samples: int, sample_rate: int, max_seconds: float | None) -> None:
    if max_seconds and samples > max_seconds * sample_rate:
        raise MediaTooLong(f"media lasts more than {max_seconds:.0f} s; the limit is "
                           f"{max_seconds:.0f} s")


def _ffmpeg_or_refuse() -> str:
    try:
        return ffmpeg_binary()
    except RuntimeError:
        raise MediaDecodeError(
            "could not decode media: this server reads only PCM WAV (ffmpeg is not installed)"
        ) from None
