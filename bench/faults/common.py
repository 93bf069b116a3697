"""Shared by the fault scripts: a submission load, the audit of every task's outcome, and
the printed and written report (the ``/tasks/count`` check is in :mod:`bench.faults.counts`)."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from bench.harness import Platform, write_results
from core.models import Task, TaskEvent
from tests.support import wait_for

SLEEP = "/diagnostics/sleep"
# Recovery in seconds rather than minutes: heartbeats every 0.5 s, a silent worker is lost
# after 3 s, a sweep every second (beat), a queued message lost after 3 s.
FAST_RECOVERY = {"HEARTBEAT_INTERVAL": "0.5", "HEARTBEAT_TIMEOUT": "3", "SWEEP_INTERVAL": "1",
                 "CREATED_GRACE": "2", "ASSIGNED_GRACE": "3", "LOG_FORMAT": "text"}
FINISHED = ("completed", "failed")
# (what, ok, detail); ok None: a known issue, reported and not failed.
Check = tuple[str, bool | None, str]
logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request


# -- load ------------------------------------------------------------------------------
@dataclass
class Load:
    """What ``threads`` clients saw while submitting ``total`` tasks (503s retried)."""

    accepted: list[str] = field(default_factory=list)
    codes: Counter[int] = field(default_factory=Counter)
    transport_errors: Counter[str] = field(default_factory=Counter)
    # (monotonic time, status code or 0 for a transport error) of every response.
    timeline: list[tuple[float, int]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def refused(self) -> int:
        return self.codes[503]

    @property
    def other_errors(self) -> int:
        """5xx other than 503, unexpected 4xx, and transport errors: each one a failure."""
        return sum(n for code, n in self.codes.items() if code not in (202, 503)) \
            + sum(self.transport_errors.values())

    def summary(self) -> dict[str, Any]:
        return {"accepted": len(self.accepted), "codes": dict(self.codes),
                "transport_errors": dict(self.transport_errors), "seconds": self.seconds}


def submit_load(base_url: str, headers: dict[str, str], total: int, threads: int,
                body: dict[str, Any], give_up_s: float = 120.0,
                spread_s: float = 0.0) -> Load:
    """Submit ``total`` deferred tasks from ``threads`` clients; a 503 is retried after a
    pause (as a client honouring ``Retry-After``, capped at 0.25 s), until accepted.
    With ``spread_s`` the i-th submission starts no earlier than ``i * spread_s / total``
    seconds in, so the load lasts through a fault however fast the API answers."""
    load, lock = Load(), threading.Lock()
    todo = iter(range(total))
    started = time.monotonic()

    def client() -> None:
        with httpx.Client(base_url=base_url, headers=headers, timeout=30) as http:
            while True:
                with lock:
                    index = next(todo, None)
                if index is None:
                    return
                time.sleep(max(0.0, started + index * spread_s / total - time.monotonic()))
                while time.monotonic() - started < give_up_s:
                    try:
                        response = http.post(SLEEP + "?defer=true", json=body)
                        code = response.status_code
                    except httpx.HTTPError as exc:
                        code, response = 0, None
                        with lock:
                            load.transport_errors[type(exc).__name__] += 1
                    with lock:
                        load.timeline.append((time.monotonic(), code))
                        if code:
                            load.codes[code] += 1
                        if code == 202 and response is not None:
                            load.accepted.append(response.json()["task_id"])
                    if code != 503:
                        break  # accepted, or an error that is counted, not retried
                    time.sleep(min(0.25, float(response.headers.get("Retry-After", 1))))

    workers = [threading.Thread(target=client, name=f"client-{i}") for i in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    load.seconds = round(time.monotonic() - started, 2)
    return load


def revive(bench: Platform, workers: dict[str, dict[str, str]]) -> list[str]:
    """Start again each worker (name: its environment) that exited, as a supervisor would
    (docker compose's ``restart: unless-stopped``); returns those, each with the
    "Unrecoverable error" it logged."""
    dead = []
    for name, extra in workers.items():
        procs = [p for p in bench.processes if p.log_path.stem.startswith(f"worker-{name}")]
        if procs and not procs[-1].alive():
            why = [line.split("] ", 1)[-1] for line in procs[-1].output().splitlines()
                   if "Unrecoverable error" in line]
            dead.append(f"{name} ({why[-1] if why else 'no error logged'})")
            bench.worker(f"{name}-{len(procs) + 1}", **extra)
    return dead


def background(target: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """Run ``target`` in a thread; its return value lands in the returned list."""
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(target()), daemon=True)
    thread.start()
    return thread, out


# -- outcome of every task -------------------------------------------------------------
@dataclass
class Audit:
    """Each accepted task's end: status, runs, completions (events and worker logs)."""

    tasks: int
    statuses: Counter[str]
    completed_events: Counter[int]  # number of tasks with N 'completed' events
    completions_logged: Counter[int]  # number of tasks a worker logged N completions of
    retried: int
    max_retry_count: int
    lost: list[str]
    duplicated: list[str]

    def checks(self, expect_retried: int | None = None) -> list[Check]:
        checks = [
            ("every accepted task completed (none lost)", not self.lost,
             f"{self.statuses.get('completed', 0)} of {self.tasks} completed; "
             f"statuses {dict(self.statuses)}; lost {self.lost[:5]}"),
            ("each completed exactly once (events and worker logs)", not self.duplicated,
             f"'completed' events per task {dict(self.completed_events)}, completions "
             f"logged per task {dict(self.completions_logged)}; duplicated "
             f"{self.duplicated[:5]}"),
        ]
        if expect_retried is not None:
            checks.append(("re-run tasks have retry_count incremented",
                           self.retried >= expect_retried,
                           f"{self.retried} re-run (retry_count > 0, max "
                           f"{self.max_retry_count}), expected at least {expect_retried}"))
        return checks


def audit(bench: Platform, ids: Iterable[str]) -> Audit:
    """Read every task's row and audit trail, and count completions in worker logs."""
    db = bench.app.extensions["hark"]["db"]
    uuids = [uuid.UUID(t) for t in ids]
    rows: dict[str, Task] = {}
    events: Counter[str] = Counter()
    with db.session() as session:
        for chunk in range(0, len(uuids), 1000):
            part = uuids[chunk:chunk + 1000]
            rows.update({str(t.id): t for t in session.scalars(
                select(Task).where(Task.id.in_(part)))})
            for task_id, n in session.execute(
                    select(TaskEvent.task_id, func.count())
                    .where(TaskEvent.task_id.in_(part), TaskEvent.type == "completed")
                    .group_by(TaskEvent.task_id)):
                events[str(task_id)] = n
    logs = "".join(p.output() for p in _worker_logs(bench))
    logged = Counter({t: logs.count(f"task {t} completed") for t in rows})
    statuses = Counter(r.status for r in rows.values())
    statuses["missing"] = len(uuids) - len(rows)
    statuses = +statuses
    return Audit(
        tasks=len(uuids), statuses=statuses,
        completed_events=Counter(events[str(t)] for t in uuids),
        completions_logged=Counter(logged[str(t)] for t in uuids),
        retried=sum(r.retry_count > 0 for r in rows.values()),
        max_retry_count=max((r.retry_count for r in rows.values()), default=0),
        lost=[str(t) for t in uuids if str(t) not in rows or rows[str(t)].status != "completed"],
        duplicated=[str(t) for t in uuids if events[str(t)] > 1 or logged[str(t)] > 1],
    )


def _worker_logs(bench: Platform) -> list[Any]:
    return [p for p in bench.processes if p.log_path.name.startswith("worker-")]


def wait_finished(bench: Platform, ids: list[str], timeout: float) -> float | None:
    """Seconds until every task is completed or failed; None if some never finished."""
    db = bench.app.extensions["hark"]["db"]
    uuids = [uuid.UUID(t) for t in ids]
    started = time.monotonic()

    def unfinished() -> int:
        with db.session() as session:
            return session.scalar(select(func.count()).select_from(Task).where(
                Task.id.in_(uuids), Task.status.not_in(FINISHED))) or 0

    try:
        wait_for(lambda: unfinished() == 0, timeout=timeout, interval=0.25,
                 message="every task to finish")
    except AssertionError:
        return None
    return round(time.monotonic() - started, 2)


# -- report ----------------------------------------------------------------------------
def report(name: str, checks: list[Check], figures: dict[str, Any], log_dir: Path) -> int:
    """Print the checks and figures, write ``bench/results/<name>.json``; the exit status."""
    print(f"\n{name}:")
    for label, ok, detail in checks:
        mark = "ok" if ok else "KNOWN ISSUE" if ok is None else "FAIL"
        print(f"  [{mark}] {label}: {detail}", flush=True)
    for key, value in figures.items():
        print(f"  {key}: {value}")
    path = write_results(name, {"checks": [{"check": c, "ok": ok, "detail": d}
                                           for c, ok, d in checks],
                                "figures": figures, "logs": str(log_dir)})
    print(f"  wrote {path.relative_to(path.parent.parent.parent)}; logs in {log_dir}")
    return 0 if all(ok is not False for _, ok, _ in checks) else 1
