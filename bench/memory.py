"""Memory: API and worker resident memory before and after 1,000 tasks.

A platform worker (prefork, 2 pool processes) and the API under gunicorn (1 process, 16
threads). After a warm-up of ``--warmup`` tasks (imports, caches, pools filled), RSS is
read with psutil for each process tree; then ``--tasks`` ``seconds: 0`` tasks run through
the API (sync mode, 8 client threads) and RSS is read again. Target: growth <= 5%.
Run: ``python -m bench.memory [--tasks 1000]``.
"""

from __future__ import annotations

import argparse
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil

from bench.harness import platform, table, write_results

SLEEP = "/diagnostics/sleep"


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and its children (gunicorn workers, pool processes)."""
    root = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])


def run_tasks(api: str, headers: dict, count: int, threads: int = 8) -> None:
    def one(_i: int) -> None:
        response = client.post(SLEEP, json={"seconds": 0})
        assert response.status_code == 200, response.text

    with httpx.Client(base_url=api, headers=headers, timeout=60,
                      limits=httpx.Limits(max_connections=threads)) as client, \
            ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(count)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="200 tasks")
    args = parser.parse_args(argv)
    tasks = 200 if args.quick else args.tasks
    work = Path(tempfile.mkdtemp(prefix="hark-memory-"))
    with platform(work) as bench:
        worker = bench.worker(WORKER_CONCURRENCY="2")
        api = bench.api(WEB_CONCURRENCY="1")
        api_pid = bench.processes[-1].pid
        run_tasks(api, bench.headers, args.warmup)
        before = {"api": tree_rss(api_pid), "worker": tree_rss(worker.pid)}
        run_tasks(api, bench.headers, tasks)
        after = {"api": tree_rss(api_pid), "worker": tree_rss(worker.pid)}
    growth = {name: after[name] / before[name] - 1 for name in before}
    rows = [[name, before[name] / 2**20, after[name] / 2**20, f"{growth[name]:+.1%}"]
            for name in before]
    print(f"{tasks} tasks after a warm-up of {args.warmup}")
    print(table(rows, ["process tree", "before MiB", "after MiB", "growth"]))
    path = write_results("memory", {"tasks": tasks, "warmup": args.warmup,
                                    "before": before, "after": after, "growth": growth})
    print(f"wrote {path}")
    return 0 if max(growth.values()) <= 0.05 else 1


if __name__ == "__main__":
    raise SystemExit(main())
