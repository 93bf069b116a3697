"""The database restarts under a submission load: ``python -m bench.faults.pg_restart``.

A private PostgreSQL cluster (``initdb``, ``pg_ctl``, on a free port; run as the
``postgres`` user when started as root) holds the platform's database; the platform runs
as the Procfile has it (gunicorn API, a model worker of two pool processes, an events
worker for the sweeps, celery beat) on the shared Redis. Eight client threads submit
``FAULTS_PG_TASKS`` (600) deferred sleep tasks (``seconds: 0.05``) spread over
``FAULTS_LOAD_S`` (10) seconds, retrying each 503,
while the cluster is stopped (``pg_ctl stop -m fast``: sessions are terminated) for
``FAULTS_PG_DOWN_S`` (4) seconds and started again. :mod:`bench.faults.pg_crash` runs
the same load with ``-m immediate`` (a crash: no checkpoint, WAL not yet written is gone,
so commits that did not wait for their flush, such as claims, can be lost).

Checks: the API answers 503, never 500, while the database is down and accepts again by
itself after it returns; every 202-accepted task ends ``completed`` exactly once; workers,
beat and the API survive; ``/tasks/count`` agrees with the listing (sampled under load
and exactly at the end). Writes ``bench/results/pg_restart.json``.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import func, select

from bench.faults.common import (
    FAST_RECOVERY,
    Check,
    audit,
    background,
    report,
    revive,
    submit_load,
    wait_finished,
)
from bench.faults.counts import CountSampler, count_vs_listing
from bench.faults.servers import PgCluster
from bench.harness import Platform, platform
from core.models import Task

THREADS = 8
# Submissions are spread over this long, so the load lasts through the outage.
LOAD_SECONDS = float(os.environ.get("FAULTS_LOAD_S", "10"))
TASK = {"seconds": 0.05}
WORKERS = {"model": {"WORKER_CONCURRENCY": "2"},
           "events": {"WORKER_ROLE": "events", "WORKER_CONCURRENCY": "4"}}


def _unaccepted(bench: Platform, accepted: list[str]) -> int:
    """Tasks in the database that no client got a 202 for (a commit whose answer was lost
    with the connection: the client saw a 503, the task runs anyway)."""
    with bench.app.extensions["hark"]["db"].session() as session:
        total = session.scalar(select(func.count()).select_from(Task)) or 0
        known = session.scalar(select(func.count()).select_from(Task).where(
            Task.id.in_([uuid.UUID(t) for t in accepted]))) or 0
    return total - known


def main(mode: str = "fast", name: str = "pg_restart") -> int:
    tasks = int(os.environ.get("FAULTS_PG_TASKS", "600"))
    down_s = float(os.environ.get("FAULTS_PG_DOWN_S", "4"))
    log_dir = Path(tempfile.mkdtemp(prefix="hark-faults-pg-"))
    cluster = PgCluster(log_dir)
    cluster.init()
    cluster.start()
    print(f"{name}: {tasks} tasks from {THREADS} threads, PostgreSQL (port "
          f"{cluster.port}) stopped -m {mode}, down {down_s:g}s; logs in {log_dir}",
          flush=True)
    try:
        with platform(log_dir, pg_admin_url=cluster.admin_url, WEB_CONCURRENCY="2",
                      WEB_THREADS="8", **FAST_RECOVERY) as bench:
            api = bench.api()
            for role, extra in WORKERS.items():
                bench.worker(role, **extra)
            beat = bench.beat()
            with CountSampler(api, bench.headers) as sampler:
                thread, out = background(lambda: submit_load(
                    api, bench.headers, tasks, THREADS, TASK, spread_s=LOAD_SECONDS))
                time.sleep(2.0)
                stopped = time.monotonic()
                cluster.stop(mode)
                time.sleep(down_s)
                cluster.start()
                restarted = time.monotonic()
                time.sleep(2.0)
                exited = revive(bench, WORKERS)
                thread.join()
            load = out[0]
            drained_s = wait_finished(bench, load.accepted, timeout=240)
            finished = time.monotonic()
            exited += revive(bench, WORKERS)
            found = audit(bench, load.accepted)
            extra = _unaccepted(bench, load.accepted)
            final = count_vs_listing(api, bench.headers)
            alive = {"api": all(p.alive() for p in bench.processes
                                if p.log_path.name.startswith("api-")), "beat": beat.alive()}
            sampled = sampler.check(load)
    finally:
        cluster.remove()
    after = [(t, code) for t, code in load.timeline if t > restarted]
    first_ok = next((t - restarted for t, code in after if code == 202), None)
    refusing = [t for t, code in load.timeline if code == 503]
    checks: list[Check] = list(found.checks())
    checks += [
        ("the API answered 503 (never 500) while PostgreSQL was down", load.other_errors == 0,
         f"{load.refused} x 503, other {load.other_errors} "
         f"({ {c: n for c, n in load.codes.items() if c not in (202, 503)} }, "
         f"transport {dict(load.transport_errors)})"),
        ("the API accepted again by itself", first_ok is not None,
         f"first 202 {first_ok:.2f}s after PostgreSQL accepted connections"
         if first_ok is not None else "none"),
        ("API and beat survived", all(alive.values()), str(alive)),
        ("workers survived", not exited, f"exited: {exited}" if exited else "all resumed"),
        sampled,
        final,
    ]
    figures = {
        "stop_mode": mode, "tasks_submitted": tasks, "accepted": len(load.accepted),
        "load_s": load.seconds,
        "pg_down_s": round(restarted - stopped, 2), "refused_503": load.refused,
        "refusing_window_s": round(max(refusing) - min(refusing), 2) if refusing else 0,
        "other_errors": load.other_errors, "lost": len(found.lost),
        "duplicated": len(found.duplicated), "re_run": found.retried,
        "created_though_refused": extra,
        "first_202_after_restart_s": round(first_ok, 2) if first_ok is not None else None,
        "all_done_after_restart_s": round(finished - restarted, 2),
        "drain_after_load_s": drained_s, "workers_exited": exited,
        "statuses": dict(found.statuses),
    }
    return report(name, checks, figures, log_dir)


if __name__ == "__main__":
    raise SystemExit(main())
