"""The CLI's progress displays on stderr: a task's progress, and a large file's upload.

On a terminal they redraw one line in place; elsewhere (logs, pipes) a line is written
when the status changes or progress moves by a quarter.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from .models import Task

UPLOAD_PROGRESS_MIN = 1024 * 1024
"""Uploads smaller than this (bytes) show no progress."""


def clock(seconds: float) -> str:
    """``m:ss`` (or ``h:mm:ss``)."""
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class _Line:
    def __init__(self, stream: TextIO | None, width: int) -> None:
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = self.stream.isatty()
        self.started = time.monotonic()
        self._drawn = False

    def bar(self, percent: int) -> str:
        filled = round(self.width * percent / 100)
        return "[" + "#" * filled + "." * (self.width - filled) + "]"

    def draw(self, text: str) -> None:
        self.stream.write(f"\r{text}\x1b[K")
        self.stream.flush()
        self._drawn = True

    def say(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def done(self) -> None:
        """End the line, so that what follows starts on a fresh one."""
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False


class ProgressBar(_Line):
    """``on_progress`` callback: ``[####....]  50%  running  0:04 elapsed, ETA 0:04  <id>``."""

    def __init__(self, stream: TextIO | None = None, width: int = 30) -> None:
        super().__init__(stream, width)
        self._last: tuple[str | None, int] | None = None
        self._running_since: float | None = None

    def eta(self, percent: int) -> float | None:
        """Seconds left, extrapolated from the progress made since the task started."""
        if self._running_since is None or not 0 < percent < 100:
            return None
        spent = time.monotonic() - self._running_since
        return spent * (100 - percent) / percent if spent >= 1 else None

    def __call__(self, task: Task) -> None:
        percent = max(0, min(100, task.progress or 0))
        if task.status == "running" and self._running_since is None:
            self._running_since = time.monotonic()
        elapsed = clock(time.monotonic() - self.started)
        eta = self.eta(percent)
        timing = f"{elapsed} elapsed" + (f", ETA {clock(eta)}" if eta is not None else "")
        if self.tty:
            self.draw(f"{self.bar(percent)} {percent:3d}%  {task.status:<12} {timing}  "
                      f"{task.id}")
        elif (self._last is None or self._last[0] != task.status
              or percent - self._last[1] >= 25 or (percent == 100 and self._last[1] != 100)):
            self.say(f"{task.status} {percent}% ({timing}) task {task.id}")
            self._last = (task.status, percent)


class UploadProgress(_Line):
    """``on_upload`` callback: ``uploading talk.wav [###...] 12.0/40.0 MB 30%``."""

    def __init__(self, name: str, stream: TextIO | None = None, width: int = 30) -> None:
        super().__init__(stream, width)
        self.name = name
        self._quarter = -1

    def __call__(self, sent: int, total: int | None) -> None:
        if total is None or total < UPLOAD_PROGRESS_MIN:
            return
        percent = min(100, sent * 100 // total)
        sizes = f"{sent / 1e6:.1f}/{total / 1e6:.1f} MB"
        if self.tty:
            elapsed = clock(time.monotonic() - self.started)
            self.draw(f"uploading {self.name} {self.bar(percent)} {sizes} {percent:3d}%  "
                      f"{elapsed}")
        elif percent // 25 > self._quarter:
            self._quarter = percent // 25
            self.say(f"uploading {self.name}: {sizes} ({percent}%)")
        if sent >= total:
            self.done()
