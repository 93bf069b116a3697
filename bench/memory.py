"""Memory: API and worker resident memory before and after 1,000 tasks.

A platform worker (prefork, 2 pool processes) and the API under gunicorn (1 process, 16
threads). After a warm-up of ``--warmup`` tasks (imports, caches, pools filled), RSS is
read with psutil for each process (gunicorn master and worker, Celery main process and
pool children); then ``--tasks`` ``seconds: 0`` tasks run through the API (sync mode, 8
client threads) and RSS is read again. With ``--analyze N`` (and the tiny.en weights in
``MODELS_DIR``), N sync ``/analyze`` requests of a 3 s speech clip follow, after their own
warm-up, and RSS is read once more. Target: growth <= 5% per process tree.
Run: ``python -m bench.memory [--tasks 1000] [--analyze 100]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil

from bench.harness import platform, table, write_results

SLEEP = "/diagnostics/sleep"
MODEL = "tiny.en"


def process_rss(pid: int) -> dict[str, int]:
    """Resident bytes of a process (``main``) and each child (``child 1``, ...)."""
    root = psutil.Process(pid)
    children = sorted(root.children(recursive=True), key=lambda p: p.pid)
    return {"main": root.memory_info().rss,
            **{f"child {i}": p.memory_info().rss for i, p in enumerate(children, 1)}}


def run_requests(api: str, headers: dict, count: int, request: Callable[[httpx.Client], None],
                 threads: int = 8) -> None:
    with httpx.Client(base_url=api, headers=headers, timeout=120,
                      limits=httpx.Limits(max_connections=threads)) as client, \
            ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda _i: request(client), range(count)))


def sleep_task(client: httpx.Client) -> None:
    response = client.post(SLEEP, json={"seconds": 0})
    assert response.status_code == 200, response.text


def analyze_task(clip: Path) -> Callable[[httpx.Client], None]:
    def post(client: httpx.Client) -> None:
        with open(clip, "rb") as fh:
            response = client.post("/analyze?timeout=120", files={"file": ("clip.wav", fh)},
                                   data={"model": MODEL})
        assert response.status_code == 200 and response.json()["status"] == "completed", \
            response.text[:300]
    return post


def model_available() -> bool:
    models = Path(os.environ.get("MODELS_DIR") or "var/models")
    return (models / f"{MODEL}.pt").exists()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--analyze", type=int, default=0,
                        help="then this many /analyze requests (needs tiny.en weights)")
    parser.add_argument("--quick", action="store_true", help="200 tasks")
    args = parser.parse_args(argv)
    tasks = 200 if args.quick else args.tasks
    analyze = args.analyze if model_available() else 0
    if args.analyze and not analyze:
        print(f"no {MODEL} weights in MODELS_DIR: /analyze phase skipped")
    work = Path(tempfile.mkdtemp(prefix="hark-memory-"))
    snapshots: dict[str, dict[str, dict[str, int]]] = {}
    with platform(work) as bench:
        preload = {"PRELOAD_MODELS": MODEL} if analyze else {}  # in both pool children
        worker = bench.worker(WORKER_CONCURRENCY="2", **preload)
        api = bench.api(WEB_CONCURRENCY="1")
        api_pid = bench.processes[-1].pid

        def snapshot(label: str) -> None:
            snapshots[label] = {"api": process_rss(api_pid), "worker": process_rss(worker.pid)}

        run_requests(api, bench.headers, args.warmup, sleep_task)
        snapshot("warm")
        run_requests(api, bench.headers, tasks, sleep_task)
        snapshot(f"after {tasks} sleep")
        if analyze:
            from bench.speech import WEATHER, make_speech_clip

            post = analyze_task(make_speech_clip(work / "clip.wav", WEATHER, seconds=3.0))
            run_requests(api, bench.headers, 10, post, threads=2)  # loads the model
            snapshot("analyze warm")
            run_requests(api, bench.headers, analyze, post, threads=2)
            snapshot(f"after {analyze} analyze")
    labels = list(snapshots)
    rows, growth = [], {}
    for tree in ("api", "worker"):
        for proc in snapshots[labels[0]][tree]:
            mib = [snapshots[label][tree].get(proc, 0) / 2**20 for label in labels]
            rows.append([f"{tree} {proc}", *mib])
        totals = [sum(snapshots[label][tree].values()) for label in labels]
        rows.append([f"{tree} total", *[t / 2**20 for t in totals]])
        growth[f"{tree} (sleep)"] = totals[1] / totals[0] - 1
        if analyze:
            growth[f"{tree} (analyze)"] = totals[3] / totals[2] - 1
    print(f"{tasks} sleep tasks after a warm-up of {args.warmup}"
          + (f"; then {analyze} /analyze of a 3 s clip" if analyze else ""))
    print(table(rows, ["process", *[f"{label} MiB" for label in labels]]))
    print(table([[name, f"{g:+.1%}"] for name, g in growth.items()], ["tree", "growth"]))
    path = write_results("memory", {"tasks": tasks, "warmup": args.warmup,
                                    "analyze": analyze, "rss": snapshots, "growth": growth})
    print(f"wrote {path}")
    return 0 if max(growth.values()) <= 0.05 else 1


if __name__ == "__main__":
    raise SystemExit(main())
