"""Media duration probing through an ffmpeg subprocess (no numpy, no model code).

The API checks uploads with :func:`probe_duration`; ffmpeg is the system one on PATH, or
the binary of the ``media`` extra (imageio-ffmpeg). Inputs are opened with the ``file:``
protocol only, so a crafted playlist cannot make ffmpeg fetch URLs.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import wave

PROBE_TIMEOUT_S = 60.0

_DURATION_RE = re.compile(r"Duration:\s*(\d+):(\d{2}):(\d{2}(?:\.\d+)?)")


class MediaDecodeError(ValueError):
    """The input is not decodable media (message is safe to show to users)."""


@functools.lru_cache(maxsize=1)
def ffmpeg_binary() -> str:
    """System ffmpeg on PATH, else the binary bundled with imageio-ffmpeg."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg
    except ImportError as exc:
        raise RuntimeError("ffmpeg not found on PATH and imageio-ffmpeg not installed") from exc
    return imageio_ffmpeg.get_ffmpeg_exe()


def check_file(path: str) -> str:
    """The ``file:`` URL ffmpeg may open for ``path``, or :class:`MediaDecodeError`."""
    if not os.path.exists(path):
        raise MediaDecodeError(f"could not decode media: file not found ({path})")
    if not os.path.isfile(path):
        raise MediaDecodeError("could not decode media: not a regular file")
    if os.path.getsize(path) == 0:
        raise MediaDecodeError("could not decode media: file is empty")
    with open(path, "rb") as fh:
        if _looks_like_text(fh.read(4096)):
            # ffmpeg would happily open text as "tty" video or as a playlist
            raise MediaDecodeError("could not decode media: file is text, not audio or video")
    return "file:" + os.path.abspath(path)


def _looks_like_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:  # a multi-byte char cut at the 4 KiB boundary is fine
        if exc.start < len(head) - 3:
            return False
        text = head[: exc.start].decode("utf-8")
    printable = sum(c.isprintable() or c in "\r\n\t" for c in text)
    return printable >= 0.95 * max(1, len(text))


def probe_duration(path: str) -> float | None:
    """Duration in seconds: a WAV header, else ffmpeg's ``Duration:`` line (None if unknown
    or if ffmpeg is not installed)."""
    try:
        url = check_file(path)
    except MediaDecodeError:
        return None
    try:
        with wave.open(path, "rb") as fh:
            return fh.getnframes() / fh.getframerate()
    except (wave.Error, EOFError, ValueError, ZeroDivisionError):
        pass
    try:
        binary = ffmpeg_binary()
    except RuntimeError:
        return None
    cmd = [binary, "-nostdin", "-hide_banner", "-protocol_whitelist", "file", "-i", url]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=PROBE_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return None
    m = _DURATION_RE.search(proc.stderr.decode("utf-8", "replace"))
    if not m:
        return None
    hours, minutes, seconds = m.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
