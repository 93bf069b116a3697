"""Decode the windows of several queued transcription tasks together (cross-task batching).

A worker that has claimed up to N tasks for the same model and compatible decoding options
hands them to :func:`run_jobs`; their 30 s windows share ``whisper.decode`` batches
(``transcribe_many``), which is what makes 8 short files cost about as much as one 4-minute
file. Each task keeps its own callbacks:

* ``progress(pct)``: called as that task's own windows finish (not the batch's);
* ``cancelled()``: checked before decoding and after each of its windows; a cancelled
  job stops being reported and gets :class:`JobCancelled` as its outcome (its windows
  already in flight finish, which costs at most one batch);
* ``still_owner()``: the attempt fence (the row is still claimed by this attempt); a job
  that lost it gets :class:`JobFenced`, and its result is never delivered.

Plain functions, no Celery; see the module's section in the README for the task hook.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from workers.asr.segments import window_bounds


class JobCancelled(Exception):
    """The task was cancelled while its batch was decoding."""


class JobFenced(Exception):
    """The task's attempt lost its claim (another attempt owns the row)."""


@dataclass
class Job:
    """One claimed task: its audio, decoding options and callbacks."""

    task_id: str
    audio: np.ndarray
    model: str
    language: str | None = None
    task: str = "transcribe"
    word_timestamps: bool = False
    progress: Callable[[int], None] = lambda pct: None
    cancelled: Callable[[], bool] = lambda: False
    still_owner: Callable[[], bool] = lambda: True
    windows: int = field(default=0, init=False)


def batch_key(job: Job) -> tuple:
    """Jobs with equal keys can share decoding batches (same model and options)."""
    return (job.model, job.language, job.task, job.word_timestamps)


def group_jobs(jobs: Sequence[Job], max_jobs: int) -> list[list[Job]]:
    """Compatible groups of at most ``max_jobs``, in first-claimed order."""
    groups: dict[tuple, list[list[Job]]] = {}
    order: list[list[Job]] = []
    for job in jobs:
        chunks = groups.setdefault(batch_key(job), [])
        if not chunks or len(chunks[-1]) >= max_jobs:
            chunks.append([])
            order.append(chunks[-1])
        chunks[-1].append(job)
    return order


class ProgressRouter:
    """Turns ``window_done(i)`` calls into per-job percentages (reported on change)."""

    def __init__(self, jobs: Sequence[Job]):
        self.jobs = list(jobs)
        for job in self.jobs:
            job.windows = max(1, len(window_bounds(job.audio)))
        self.done = [0] * len(self.jobs)
        self.sent = [-1] * len(self.jobs)
        self.stopped: dict[int, Exception] = {}

    def window_done(self, index: int) -> None:
        if index in self.stopped:
            return
        job = self.jobs[index]
        if job.cancelled():
            self.stopped[index] = JobCancelled(job.task_id)
            return
        self.done[index] += 1
        pct = min(99, int(100 * self.done[index] / job.windows))
        if pct != self.sent[index]:
            self.sent[index] = pct
            job.progress(pct)


def run_jobs(model, jobs: Sequence[Job], batch_size: int = 8) -> list[dict | Exception]:
    """Transcribe a compatible group; one outcome per job: its result or the exception
    (JobCancelled, JobFenced) that replaces it. Jobs cancelled or fenced before the start
    are not decoded at all."""
    from workers.asr.transcribe import transcribe_many

    if len({batch_key(j) for j in jobs}) > 1:
        raise ValueError("run_jobs needs jobs with one batch_key; use group_jobs first")
    outcomes: list[dict | Exception | None] = [None] * len(jobs)
    live = []
    for i, job in enumerate(jobs):
        if job.cancelled():
            outcomes[i] = JobCancelled(job.task_id)
        elif not job.still_owner():
            outcomes[i] = JobFenced(job.task_id)
        else:
            live.append(i)
    if live:
        first = jobs[live[0]]
        router = ProgressRouter([jobs[i] for i in live])
        results = transcribe_many(
            model, [jobs[i].audio for i in live], language=first.language, task=first.task,
            word_timestamps=first.word_timestamps, batch_size=batch_size,
            window_done=router.window_done,
        )  # fmt: skip
        for k, (i, result) in enumerate(zip(live, results, strict=True)):
            job = jobs[i]
            if k in router.stopped or job.cancelled():
                outcomes[i] = router.stopped.get(k) or JobCancelled(job.task_id)
            elif not job.still_owner():
                outcomes[i] = JobFenced(job.task_id)
            else:
                job.progress(100)
                outcomes[i] = result
    return outcomes  # type: ignore[return-value]
