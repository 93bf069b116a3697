"""Workers killed mid-task: ``python -m bench.faults.worker_kill``.

The platform runs as the Procfile has it (gunicorn API, a model worker, an events worker
that runs the sweeps, celery beat), with ``HEARTBEAT_TIMEOUT=3`` and ``SWEEP_INTERVAL=1``
so recovery takes seconds. Two faults:

a. ``kill -9`` of a pool (child) process while it runs a 3 s sleep task; Celery forks a
   new child, the sweeper finds the silent task, re-publishes it, it re-runs.
b. ``kill -9`` of the worker's whole process group (main process and children, what a
   supervisor sees when a host or container dies) while two tasks run and ten wait in
   the queue; a replacement worker is started and takes over. The queued ten were never
   lost, so they must run once without a retry.

Checks: every task ends ``completed`` exactly once (``completed`` events and worker log
lines per task), the killed runs' tasks have ``retry_count`` 1 and the others 0, nothing
is left ``running``, ``/tasks/count`` equals the full listing. Writes
``bench/results/worker_kill.json``.
"""

from __future__ import annotations

import os
import signal
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psutil
from sqlalchemy import select

from bench.faults.common import FAST_RECOVERY, SLEEP, Check, audit, report
from bench.faults.counts import count_vs_listing
from bench.harness import Platform, platform
from core.models import Task
from tests.support import wait_for

TASK_S = 3.0


def _submit(api: str, headers: dict[str, str], n: int, seconds: float) -> list[str]:
    ids = []
    with httpx.Client(base_url=api, headers=headers, timeout=30) as http:
        for _ in range(n):
            response = http.post(SLEEP + "?defer=true", json={"seconds": seconds})
            assert response.status_code == 202, response.text
            ids.append(response.json()["task_id"])
    return ids


def _rows(bench: Platform, ids: list[str]) -> dict[str, Task]:
    with bench.app.extensions["hark"]["db"].session() as session:
        found = session.scalars(select(Task).where(Task.id.in_([uuid.UUID(t) for t in ids])))
        return {str(t.id): t for t in found}


def _wait_running(bench: Platform, ids: list[str]) -> dict[str, Task]:
    def running() -> dict[str, Task] | None:
        rows = _rows(bench, ids)
        return rows if all(r.status == "running" for r in rows.values()) else None

    rows = wait_for(running, timeout=60, interval=0.05, message="tasks to run")
    time.sleep(0.5)  # a moment into the run
    return rows


def _wait_done(bench: Platform, ids: list[str], timeout: float) -> float:
    started = time.monotonic()
    wait_for(lambda: all(r.status in ("completed", "failed")
                         for r in _rows(bench, ids).values()),
             timeout=timeout, interval=0.1, message="every task to finish")
    return time.monotonic() - started


def _retries(bench: Platform, ids: list[str]) -> dict[str, int]:
    return {t: r.retry_count for t, r in _rows(bench, ids).items()}


def kill_child(bench: Platform, api: str, headers: dict[str, str]) -> dict[str, Any]:
    """Fault a: two tasks run on a worker of two pool processes; one process is killed."""
    worker = bench.worker("victim", WORKER_CONCURRENCY="2")
    ids = _submit(api, headers, 2, TASK_S)
    _wait_running(bench, ids)
    children = psutil.Process(worker.pid).children()
    child = children[0]
    killed_at = time.monotonic()
    child.send_signal(signal.SIGKILL)
    recovery_s = _wait_done(bench, ids, timeout=60)
    retries = _retries(bench, ids)
    return {"ids": ids, "killed_pid": child.pid, "pool_processes": len(children),
            "retry_counts": retries, "recovered_s": round(recovery_s, 2),
            "since_kill_s": round(time.monotonic() - killed_at, 2),
            "worker_alive": worker.alive(), "expected_retried": 1,
            "ok": sorted(retries.values()) == [0, 1]}


def kill_main(bench: Platform, api: str, headers: dict[str, str]) -> dict[str, Any]:
    """Fault b: the worker's process group is killed with two tasks running and a backlog
    of ten 0.2 s tasks queued; a replacement worker starts (as a supervisor would)."""
    victim = next(p for p in bench.processes if p.log_path.name == "worker-victim.log")
    running = _submit(api, headers, 2, TASK_S)
    _wait_running(bench, running)
    backlog = _submit(api, headers, 10, 0.2)
    pids = [victim.pid] + [c.pid for c in psutil.Process(victim.pid).children(recursive=True)]
    killed_at = time.monotonic()
    os.killpg(victim.pid, signal.SIGKILL)
    victim.proc.wait(10)
    replacement_started = time.monotonic()
    bench.worker("replacement", WORKER_CONCURRENCY="2")
    ready_s = time.monotonic() - replacement_started
    _wait_done(bench, running + backlog, timeout=90)
    retries = _retries(bench, running + backlog)
    return {"ids": running + backlog, "killed_pids": pids,
            "retry_counts": {t: retries[t] for t in running},
            "backlog_retried": sum(retries[t] > 0 for t in backlog),
            "replacement_ready_s": round(ready_s, 2),
            "recovered_s": round(time.monotonic() - killed_at, 2), "expected_retried": 2,
            # The backlog waited in the queue: not lost, so not re-run.
            "ok": all(retries[t] == 1 for t in running)
            and not any(retries[t] for t in backlog)}


def main() -> int:
    log_dir = Path(tempfile.mkdtemp(prefix="hark-faults-worker-kill-"))
    checks: list[Check] = []
    figures: dict[str, Any] = {}
    with platform(log_dir, **FAST_RECOVERY) as bench:
        api, headers = bench.api(), bench.headers
        bench.events_worker()
        bench.beat()
        print(f"worker_kill: {TASK_S:g}s sleep tasks, HEARTBEAT_TIMEOUT="
              f"{FAST_RECOVERY['HEARTBEAT_TIMEOUT']}s, SWEEP_INTERVAL="
              f"{FAST_RECOVERY['SWEEP_INTERVAL']}s; logs in {log_dir}", flush=True)
        faults = {"a. kill -9 of a pool process": kill_child(bench, api, headers),
                  "b. kill -9 of the worker (main and children), replacement started":
                  kill_main(bench, api, headers)}
        for label, fault in faults.items():
            found = audit(bench, fault["ids"])
            retried = {t: n for t, n in fault["retry_counts"].items() if n}
            checks.append((f"{label}: the killed run's tasks re-ran once", fault["ok"],
                           f"retry_count per running task {list(fault['retry_counts'].values())}"
                           f", {fault.get('backlog_retried', 0)} queued tasks retried; all done "
                           f"{fault['recovered_s']}s after the kill"))
            checks += [(f"{label}: {c}", ok, d)
                       for c, ok, d in found.checks(expect_retried=len(retried))]
            figures[label] = {k: v for k, v in fault.items() if k not in ("ids", "ok")} | {
                "retry_counts": sorted(fault["retry_counts"].values()),
                "tasks": found.tasks, "lost": len(found.lost),
                "duplicated": len(found.duplicated), "retried": found.retried}
        with bench.app.extensions["hark"]["db"].session() as session:
            stuck = session.scalars(select(Task.id).where(Task.status == "running")).all()
        checks.append(("nothing left running", not stuck, f"{len(stuck)} running"))
        checks.append(count_vs_listing(api, headers))
    return report("worker_kill", checks, figures, log_dir)


if __name__ == "__main__":
    raise SystemExit(main())
