"""The CLI's progress displays: elapsed time, ETA and task id; upload progress."""

from __future__ import annotations

import io

import pytest

from hark_client import Task
from hark_client import _cli_progress as progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture()
def clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    return now


def test_bar_shows_elapsed_eta_and_task_id(clock):
    screen = Terminal()
    bar = progress.ProgressBar(screen, width=10)
    bar(Task("t-42", status="assigned", progress=0))
    clock[0] += 2
    bar(Task("t-42", status="running", progress=0))
    clock[0] += 10
    bar(Task("t-42", status="running", progress=25))
    bar.done()
    frames = screen.getvalue().split("\r")
    assert "0:00 elapsed" in frames[1] and "t-42" in frames[1] and "ETA" not in frames[1]
    # 25% took 10 s of running: 30 s to go.
    assert "[##........]  25%" in frames[3] and "0:12 elapsed, ETA 0:30" in frames[3]
    assert screen.getvalue().endswith("\n")


def test_log_lines_when_not_a_terminal(clock):
    log = io.StringIO()
    bar = progress.ProgressBar(log)
    bar(Task("t-1", status="running", progress=10))
    bar(Task("t-1", status="running", progress=20))  # under a quarter: no line
    clock[0] += 65
    bar(Task("t-1", status="completed", progress=100))
    assert log.getvalue().splitlines() == ["running 10% (0:00 elapsed) task t-1",
                                           "completed 100% (1:05 elapsed) task t-1"]


def test_upload_progress_only_for_large_files(clock):
    small, large = io.StringIO(), Terminal()
    progress.UploadProgress("a.wav", small)(10, 100)
    assert small.getvalue() == ""
    upload = progress.UploadProgress("big.wav", large, width=4)
    total = 4 * 1024 * 1024
    upload(total // 2, total)
    upload(total, total)
    assert "uploading big.wav [##..] 2.1/4.2 MB  50%" in large.getvalue()
    assert large.getvalue().endswith(" 100%  0:00\x1b[K\n")
