"""Drain: a backlog of ``seconds: 0`` tasks run by one worker, against raw Celery's.

Per round, ``--tasks`` platform tasks are submitted deferred through the submit path
(``core.dispatch.submit``: the row INSERT and the LPUSH, as the API does) before one
platform worker starts; then as many raw Celery ``noop`` tasks (Redis result backend,
``bench.raw_celery``) are queued before one raw worker of the same pool kind and size
starts. Throughput is counted from the first task's end to the last one's (the
platform's ``completed_at``, Celery's ``date_done``), so worker start-up is left out.
Rounds alternate which side goes first. Target: platform >= 0.7x raw Celery.
Run: ``python -m bench.drain [--tasks 10000] [--rounds 1] [--concurrency 2]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import text

from bench.harness import Platform, platform, table, write_results
from bench.raw_celery import RAW_QUEUE, make_raw_app, start_raw_worker

SLEEP = "/diagnostics/sleep"
SUBMIT_THREADS = 8  # submissions overlap so the backlog is built quickly (not timed)


def submit_backlog(bench: Platform, n: int) -> None:
    """``n`` deferred ``seconds: 0`` tasks through the platform's submit path."""
    from core import dispatch

    hark = bench.app.extensions["hark"]
    db, celery = hark["db"], hark["celery"]

    def one(_i: int) -> None:
        dispatch.submit(db, celery, owner="bench", endpoint=SLEEP, data={"seconds": 0},
                        queue="cpu", notify=False)  # as the API submits deferred tasks

    with ThreadPoolExecutor(SUBMIT_THREADS) as pool:
        list(pool.map(one, range(n)))


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and its children (the pool processes)."""
    root = psutil.Process(pid)
    return sum(sum(p.cpu_times()[:2]) for p in [root, *root.children(recursive=True)])


def backends_cpu(db: Any) -> dict[int, float]:
    """CPU seconds of each PostgreSQL backend serving the benchmark's database."""
    with db.engine.connect() as conn:
        pids = conn.execute(text("SELECT pid FROM pg_stat_activity WHERE "
                                 "datname = current_database() AND pid <> pg_backend_pid()"))
        cpu = {}
        for (pid,) in pids:
            try:
                cpu[pid] = sum(psutil.Process(pid).cpu_times()[:2])
            except psutil.Error:  # gone meanwhile
                pass
    return cpu


def drain_platform(bench: Platform, n: int, concurrency: int, round_no: int) -> dict:
    submit_backlog(bench, n)
    db = bench.app.extensions["hark"]["db"]
    started = time.perf_counter()
    worker = bench.worker(name=f"drain{round_no}", WORKER_CONCURRENCY=str(concurrency))
    query = text("SELECT count(*), min(completed_at), max(completed_at) FROM tasks "
                 "WHERE status = 'completed' AND worker LIKE :worker")

    def progress() -> tuple[int, datetime, datetime]:
        with db.engine.connect() as conn:
            return conn.execute(query, {"worker": f"drain{round_no}@%"}).one()

    cpu0, db_cpu0, done0 = tree_cpu(worker.pid), backends_cpu(db), progress()[0]
    while True:
        time.sleep(0.5)
        done, first, last = progress()
        if done >= n:
            break
        if not worker.alive():
            raise AssertionError("platform worker exited:\n" + worker.output()[-3000:])
    wall = time.perf_counter() - started
    cpu, db_cpu = tree_cpu(worker.pid) - cpu0, backends_cpu(db)
    db_cpu_used = sum(t - db_cpu0.get(pid, 0.0) for pid, t in db_cpu.items())
    worker.stop()
    return _rates(n, first, last, wall) | {
        "worker_cpu_ms_per_task": cpu / (n - done0) * 1000,
        "postgres_cpu_ms_per_task": db_cpu_used / (n - done0) * 1000}


def drain_raw(bench: Platform, n: int, concurrency: int, work: Path, round_no: int) -> dict:
    raw = make_raw_app()
    noop = raw.tasks["raw.noop"]
    backend = raw.backend
    keys = [backend.get_key_for_task(noop.apply_async(queue=RAW_QUEUE).id) for _ in range(n)]
    started = time.perf_counter()
    worker = start_raw_worker(bench.env, work / f"raw{round_no}", concurrency)
    cpu0, done0 = tree_cpu(worker.pid), backend.client.exists(*keys)
    while True:  # as cheap to watch as the platform's side: one EXISTS every 0.5 s
        time.sleep(0.5)
        if backend.client.exists(*keys) >= n:
            break
        if not worker.alive():
            raise AssertionError("raw worker exited:\n" + worker.output()[-3000:])
    wall = time.perf_counter() - started
    cpu = tree_cpu(worker.pid) - cpu0
    worker.stop()
    ends = [datetime.fromisoformat(json.loads(meta)["date_done"])
            for meta in backend.client.mget(keys)]  # the harness drops the keys
    raw.close()
    return _rates(n, min(ends), max(ends), wall) | {
        "worker_cpu_ms_per_task": cpu / (n - done0) * 1000}


def _rates(n: int, first: datetime, last: datetime, wall: float) -> dict:
    span = (last - first).total_seconds()
    return {"tasks": n, "span_s": span, "tasks_per_s": (n - 1) / span,
            "wall_s_with_startup": wall}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=10_000, help="backlog per side and round")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=2, help="pool size of each worker")
    parser.add_argument("--quick", action="store_true", help="1,000 tasks, one round")
    args = parser.parse_args(argv)
    n, rounds = (1000, 1) if args.quick else (args.tasks, args.rounds)
    work = Path(tempfile.mkdtemp(prefix="hark-drain-"))
    runs: dict[str, list[dict[str, Any]]] = {"platform": [], "raw celery": []}
    with platform(work) as bench:
        logging.getLogger("httpx").setLevel(logging.WARNING)
        for round_no in range(rounds):
            sides = ["platform", "raw celery"]
            for side in sides if round_no % 2 == 0 else sides[::-1]:
                if side == "platform":
                    result = drain_platform(bench, n, args.concurrency, round_no)
                else:
                    (work / f"raw{round_no}").mkdir(exist_ok=True)
                    result = drain_raw(bench, n, args.concurrency, work, round_no)
                runs[side].append(result)
                print(f"round {round_no + 1} {side}: {result['tasks_per_s']:.0f} tasks/s",
                      flush=True)
    totals = {side: sum(r["tasks"] - 1 for r in rs) / sum(r["span_s"] for r in rs)
              for side, rs in runs.items()}
    ratio = totals["platform"] / totals["raw celery"]

    def mean(side: str, key: str) -> float | str:
        values = [r[key] for r in runs[side] if key in r]
        return sum(values) / len(values) if values else "-"

    rows = [[side, len(rs), n, totals[side], totals[side] / totals["raw celery"],
             mean(side, "worker_cpu_ms_per_task"), mean(side, "postgres_cpu_ms_per_task")]
            for side, rs in runs.items()]
    print(table(rows, ["drain", "rounds", "tasks/round", "tasks/s", "x raw",
                       "worker CPU ms/task", "PostgreSQL CPU ms/task"]))
    per_round = [p["tasks_per_s"] / r["tasks_per_s"]
                 for p, r in zip(runs["platform"], runs["raw celery"], strict=True)]
    print(f"platform / raw Celery throughput = {ratio:.2f} (target >= 0.7); per round: "
          + ", ".join(f"{x:.2f}" for x in per_round))
    path = write_results("drain", {"runs": runs, "tasks_per_s": totals, "ratio": ratio,
                                   "per_round": per_round, "concurrency": args.concurrency})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
