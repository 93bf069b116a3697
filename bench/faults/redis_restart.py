"""The broker restarts under a submission load: ``python -m bench.faults.redis_restart``.

A private ``redis-server`` is the broker of a platform run as the Procfile has it (gunicorn
API, a model worker of two pool processes, an events worker for the sweeps, celery beat).
Eight client threads submit ``FAULTS_REDIS_TASKS`` (1000) deferred sleep tasks (``seconds:
0.05``) spread over ``FAULTS_LOAD_S`` (10) seconds, retrying each 503 (as a client
honouring ``Retry-After``), while Redis is stopped
for ``FAULTS_REDIS_DOWN_S`` (4) seconds and started again on the same port. Two runs:

- ``aof``: Redis as ``docker-compose.yml`` runs it in production (``--appendonly yes
  --appendfsync everysec``), stopped cleanly (SIGTERM): queued messages survive.
- ``none``: no persistence (``--save '' --appendonly no``) and SIGKILL, the worst case:
  every queued message is gone, the sweeper must find ``assigned`` tasks whose queue is
  empty after ``ASSIGNED_GRACE`` and publish them again.

Checks: every 202-accepted task ends ``completed``, none lost, none completed twice; every
refusal was a 503 (any other 5xx or transport error fails); the API accepted again after
the restart; beat and the workers survived; ``/tasks/count`` agrees with the listing
(sampled under load and exactly at the end). Writes ``bench/results/redis_restart.json``.
"""

from __future__ import annotations

import os
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

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
from bench.faults.servers import RedisServer
from bench.harness import platform

THREADS = 8
# Submissions are spread over this long, so the load lasts through the outage.
LOAD_SECONDS = float(os.environ.get("FAULTS_LOAD_S", "10"))
WORKERS = {"model": {"WORKER_CONCURRENCY": "2"},
           "events": {"WORKER_ROLE": "events", "WORKER_CONCURRENCY": "4"}}
# 50 ms tasks on two pool processes: slower than the submissions, so a backlog is queued
# when Redis goes down (the messages a restart without persistence loses).
TASK = {"seconds": 0.05}
MODES = {"aof": signal.SIGTERM, "none": signal.SIGKILL}


def run_mode(persistence: str, log_dir: Path, tasks: int, down_s: float) -> tuple[
        list[Check], dict[str, Any]]:
    server = RedisServer(log_dir, persistence)
    server.start()
    try:
        with platform(log_dir, redis_url=server.url, WEB_CONCURRENCY="2", WEB_THREADS="8",
                      **FAST_RECOVERY) as bench:
            api = bench.api()
            for name, extra in WORKERS.items():
                bench.worker(name, **extra)
            beat = bench.beat()
            with CountSampler(api, bench.headers) as sampler:
                thread, out = background(lambda: submit_load(
                    api, bench.headers, tasks, THREADS, TASK, spread_s=LOAD_SECONDS))
                time.sleep(2.0)  # load under way
                stopped = time.monotonic()
                server.stop(MODES[persistence])
                time.sleep(down_s)
                restart_s = server.start()
                restarted = time.monotonic()
                time.sleep(2.0)  # workers reconnect (or exit: see revive)
                exited = revive(bench, WORKERS)
                thread.join()
            load = out[0]
            drained_s = wait_finished(bench, load.accepted, timeout=240)
            finished = time.monotonic()
            found = audit(bench, load.accepted)
            final = count_vs_listing(api, bench.headers)
            exited += revive(bench, WORKERS)
            alive = {"api": all(p.alive() for p in bench.processes
                                if p.log_path.name.startswith("api-")), "beat": beat.alive()}
            events_logs = "".join(p.output() for p in bench.processes
                                  if p.log_path.name.startswith("worker-events"))
            sweeps = sum(events_logs.count(f"task {t} is not_finished (queued message was lost")
                         for t in load.accepted)
    finally:
        server.remove()
    after = [(t, code) for t, code in load.timeline if t > restarted]
    first_ok = next((t - restarted for t, code in after if code == 202), None)
    refusing = [t for t, code in load.timeline if code == 503]
    label = f"{persistence}"
    sampled = sampler.check(load)
    checks = [(f"{label}: {c}", ok, d) for c, ok, d in found.checks()]
    checks += [
        (f"{label}: every refused submission was a 503", load.other_errors == 0,
         f"{load.refused} x 503, other {load.other_errors} "
         f"({ {c: n for c, n in load.codes.items() if c not in (202, 503)} }, "
         f"transport {dict(load.transport_errors)})"),
        (f"{label}: submissions accepted again after the restart", first_ok is not None,
         f"first 202 {first_ok:.2f}s after Redis answered" if first_ok is not None
         else "none"),
        (f"{label}: API and beat survived", all(alive.values()), str(alive)),
        # kombu's restore_unacked on a dropped Redis connection raises AttributeError
        # (conninfo None) from Connection.close: "Unrecoverable error", the worker exits.
        (f"{label}: workers survived the broker restart", None if exited else True,
         f"exited and restarted as a supervisor would: {exited}" if exited
         else "all reconnected"),
        (f"{label}: {sampled[0]}", sampled[1], sampled[2]),
        (f"{label}: {final[0]}", final[1], final[2]),
    ]
    figures = {
        "persistence": persistence, "stop": MODES[persistence].name,
        "tasks_submitted": tasks, "accepted": len(load.accepted), "load_s": load.seconds,
        "redis_down_s": round(restarted - stopped, 2), "redis_start_s": round(restart_s, 2),
        "refused_503": load.refused,
        "refusing_window_s": round(max(refusing) - min(refusing), 2) if refusing else 0,
        "other_errors": load.other_errors, "lost": len(found.lost),
        "duplicated": len(found.duplicated), "re_run": found.retried,
        "recovered_by_sweeper_lost_message": sweeps,
        "first_202_after_restart_s": round(first_ok, 2) if first_ok is not None else None,
        "all_done_after_restart_s": round(finished - restarted, 2),
        "workers_exited": exited,
        "drain_after_load_s": drained_s, "statuses": dict(found.statuses),
    }
    return checks, figures


def main() -> int:
    tasks = int(os.environ.get("FAULTS_REDIS_TASKS", "1000"))
    down_s = float(os.environ.get("FAULTS_REDIS_DOWN_S", "4"))
    modes = os.environ.get("FAULTS_REDIS_MODES", "aof,none").split(",")
    log_dir = Path(tempfile.mkdtemp(prefix="hark-faults-redis-"))
    checks: list[Check] = []
    figures: dict[str, Any] = {}
    for mode in modes:
        print(f"redis_restart ({mode}): {tasks} tasks from {THREADS} threads, Redis down "
              f"{down_s:g}s; logs in {log_dir / mode}", flush=True)
        mode_checks, figures[mode] = run_mode(mode, log_dir / mode, tasks, down_s)
        checks += mode_checks
    return report("redis_restart", checks, figures, log_dir)


if __name__ == "__main__":
    raise SystemExit(main())
