"""Cross-task batching: grouping, per-task progress, cancellation and the attempt fence."""

from __future__ import annotations

import numpy as np
import pytest

from workers.asr.audio import decode_audio
from workers.asr.batcher import Job, JobCancelled, JobFenced, ProgressRouter, group_jobs, run_jobs


def _job(task_id: str, seconds: float = 1.0, **kw) -> Job:
    return Job(task_id, np.zeros(int(seconds * 16000), np.float32), kw.pop("model", "tiny.en"),
               **kw)


def test_group_jobs_keeps_order_and_splits_by_options_and_size():
    jobs = [_job("a"), _job("b", language="en"), _job("c"), _job("d"), _job("e", model="base")]
    groups = group_jobs(jobs, max_jobs=2)
    assert [[j.task_id for j in g] for g in groups] == [["a", "c"], ["b"], ["d"], ["e"]]


def test_progress_router_reports_each_job_on_its_own_windows():
    seen: dict[str, list[int]] = {"long": [], "short": []}
    long = _job("long", 75, progress=seen["long"].append)  # three windows
    short = _job("short", 10, progress=seen["short"].append)
    router = ProgressRouter([long, short])
    assert long.windows == 3 and short.windows == 1
    for index in (0, 1, 0, 0):
        router.window_done(index)
    assert seen == {"long": [33, 66, 99], "short": [99]}


def test_cancel_mid_batch_and_fence(tiny, clips):
    weather = decode_audio(str(clips["weather"]))
    flags = {"cancel": False}
    seen: list[int] = []

    def cancel_after_first(pct: int) -> None:
        seen.append(pct)
        flags["cancel"] = True

    jobs = [
        Job("ok", weather, "tiny.en", language="en", progress=seen.append),
        Job("cancelled", weather, "tiny.en", language="en", progress=cancel_after_first,
            cancelled=lambda: flags["cancel"]),
        # loses its claim once the second job is cancelled, i.e. during the batch
        Job("fenced", weather, "tiny.en", language="en", still_owner=lambda: not flags["cancel"]),
        Job("early", weather, "tiny.en", language="en", cancelled=lambda: True),
    ]
    outcomes = run_jobs(tiny, jobs, batch_size=4)
    assert "sunny" in outcomes[0]["text"].lower()
    assert isinstance(outcomes[1], JobCancelled) and isinstance(outcomes[2], JobFenced)
    assert isinstance(outcomes[3], JobCancelled)
    assert seen.count(100) == 1  # only the job that finished reports completion


def test_run_jobs_refuses_mixed_options(tiny):
    with pytest.raises(ValueError, match="one batch_key"):
        run_jobs(tiny, [_job("a"), _job("b", word_timestamps=True)])
