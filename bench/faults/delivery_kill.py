"""A model worker killed right as its task finishes: ``python -m bench.faults.delivery_kill``.

The platform runs as the Procfile has it (gunicorn API, a model worker, an events worker
whose relay sends webhooks, celery beat), with a receiver subscribed to
``task.completed``. Each round submits a 1 s task to the victim worker; while it runs the
script locks ``webhook_deliveries`` against writes, so the statement that records the
task's end (and, in the same statement, its delivery) waits on the lock; then it kills
the worker's whole process group (``kill -9``), releases the lock and starts a
replacement worker. Whether the dead worker's last statement committed or not, the
event must arrive exactly once: either the completion and its delivery committed
together, or neither did and the sweeper re-runs the task, whose completion then writes
it. (With deliveries written after the completion, in a step of their own, the event
would be lost for good.)

Checks: every task completed exactly once; each ``task.completed`` arrived exactly once
(by ``webhook-id``); ``/tasks/count`` equals the listing. Writes
``bench/results/delivery_kill.json``.
"""

from __future__ import annotations

import os
import signal
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

from bench.faults.common import FAST_RECOVERY, SLEEP, Check, audit, report
from bench.faults.counts import count_vs_listing
from bench.faults.webhook_down import Receiver
from bench.harness import Platform, platform
from tests.support import free_port, wait_for

QUEUE = "faults-victim"


def _status(api: str, headers: dict[str, str], task_id: str) -> str:
    return httpx.get(f"{api}/tasks/{task_id}", headers=headers, timeout=10).json()["status"]


def _writers_waiting(bench: Platform) -> int:
    with bench.app.extensions["hark"]["db"].engine.connect() as conn:
        return conn.exec_driver_sql(
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
            "WHERE c.relname = 'webhook_deliveries' AND NOT l.granted").scalar()


def one_round(bench: Platform, api: str, headers: dict[str, str], n: int) -> dict:
    """Kill the worker while its finishing statement waits; returns what happened."""
    victim = bench.worker(f"victim{n}", WORKER_CONCURRENCY="1", WORKER_QUEUES=QUEUE)
    task_id = httpx.post(api + SLEEP + "?defer=true", headers=headers, timeout=30,
                         json={"seconds": 1, "queue": QUEUE}).raise_for_status().json()["task_id"]
    wait_for(lambda: _status(api, headers, task_id) == "running", timeout=60,
             message="the task to run")
    engine = bench.app.extensions["hark"]["db"].engine
    with engine.connect() as lock:
        lock.exec_driver_sql("LOCK TABLE webhook_deliveries IN EXCLUSIVE MODE")
        wait_for(lambda: _writers_waiting(bench), timeout=30,
                 message="the finishing statement to wait")
        killed_at = time.monotonic()
        os.killpg(victim.pid, signal.SIGKILL)
        victim.proc.wait(10)
        lock.rollback()
    bench.worker(f"replacement{n}", WORKER_CONCURRENCY="1", WORKER_QUEUES=QUEUE)
    return {"task": task_id, "killed_at": killed_at}


def main() -> int:
    rounds = int(os.environ.get("FAULTS_DELIVERY_ROUNDS", "3"))
    log_dir = Path(tempfile.mkdtemp(prefix="hark-faults-delivery-"))
    receiver = Receiver(free_port())
    receiver.start()
    checks: list[Check] = []
    with platform(log_dir, WEBHOOK_ALLOW_PRIVATE="1", **FAST_RECOVERY) as bench:
        api, headers = bench.api(), bench.headers
        bench.events_worker()
        bench.beat()
        httpx.post(api + "/webhooks", headers=headers, timeout=10,
                   json={"url": receiver.url, "events": ["task.completed"]}).raise_for_status()
        print(f"delivery_kill: {rounds} rounds; logs in {log_dir}", flush=True)
        done = [one_round(bench, api, headers, n) for n in range(rounds)]
        ids = [d["task"] for d in done]
        try:
            wait_for(lambda: set(ids) <= set(receiver.completed_tasks()), timeout=90,
                     message="every task.completed delivered")
        except AssertionError as exc:
            print(f"  {exc}")
        time.sleep(2.0)  # any late duplicate arrives now
        found = audit(bench, ids)
        checks += found.checks()
        checks.append(count_vs_listing(api, headers))
        reran = sum(httpx.get(f"{api}/tasks/{t}", headers=headers, timeout=10)
                    .json()["attempts"] > 1 for t in ids)
    receiver.stop()
    got = receiver.completed_tasks()
    by_id = Counter(r["headers"].get("webhook-id") for r in receiver.received)
    checks += [
        ("every killed task's task.completed arrived", all(got[t] >= 1 for t in ids),
         f"{sum(got[t] >= 1 for t in ids)} of {len(ids)}"),
        ("each arrived exactly once", all(got[t] == 1 for t in ids)
         and max(by_id.values(), default=1) == 1,
         f"deliveries per task {dict(Counter(got[t] for t in ids))}"),
    ]
    figures = {"rounds": rounds, "delivered": sum(got[t] >= 1 for t in ids),
               "duplicated": sum(got[t] > 1 for t in ids),
               "finished_by_the_killed_run": len(ids) - reran, "re_run": reran}
    return report("delivery_kill", checks, figures, log_dir)


if __name__ == "__main__":
    raise SystemExit(main())
