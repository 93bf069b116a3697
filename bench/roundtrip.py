"""Round trip: a ``seconds: 0`` task submitted and awaited, against raw Celery's.

Three ways, interleaved round by round so drift hits all alike: the platform in sync mode
(the API waits on a PostgreSQL NOTIFY of completion), the platform deferred and polled
(``GET /tasks/<id>`` every ``--poll-ms``), and raw Celery's ``noop.delay().get()`` on the
same Redis broker with the platform's broker settings and a Redis result backend. One
platform worker and one raw worker, both prefork with the same pool size; the API runs
under gunicorn. Target: sync median <= 2x raw Celery's.
Run: ``python -m bench.roundtrip [--tasks 500]``.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import httpx

from bench.harness import platform, summary, table, write_results
from bench.raw_celery import make_raw_app, start_raw_worker

SLEEP = "/diagnostics/sleep"
CONCURRENCY = "2"


def sync_once(client: httpx.Client) -> float:
    started = time.perf_counter()
    response = client.post(SLEEP, json={"seconds": 0})
    elapsed = time.perf_counter() - started
    assert response.status_code == 200 and response.json()["status"] == "completed", \
        response.text
    return elapsed


def poll_once(client: httpx.Client, poll_s: float) -> float:
    started = time.perf_counter()
    response = client.post(SLEEP + "?defer=true", json={"seconds": 0})
    assert response.status_code == 202, response.text
    url = f"/tasks/{response.json()['task_id']}"
    while True:
        time.sleep(poll_s)
        if client.get(url).json()["status"] == "completed":
            return time.perf_counter() - started


def raw_once(noop) -> float:
    started = time.perf_counter()
    noop.delay().get(timeout=30)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=500, help="round trips per kind")
    parser.add_argument("--poll-ms", type=float, default=5.0)
    parser.add_argument("--quick", action="store_true", help="100 round trips per kind")
    args = parser.parse_args(argv)
    n = 100 if args.quick else args.tasks
    work = Path(tempfile.mkdtemp(prefix="hark-roundtrip-"))
    times: dict[str, list[float]] = {"platform sync": [], "platform poll": [], "raw celery": []}
    with platform(work) as bench:
        logging.getLogger("httpx").setLevel(logging.WARNING)  # no log line per request
        bench.worker(WORKER_CONCURRENCY=CONCURRENCY)
        api = bench.api()
        bench.processes.append(start_raw_worker(bench.env, work, int(CONCURRENCY)))
        noop = make_raw_app().tasks["raw.noop"]
        with httpx.Client(base_url=api, headers=bench.headers, timeout=60) as client:
            kinds = [("platform sync", lambda: sync_once(client)),
                     ("platform poll", lambda: poll_once(client, args.poll_ms / 1000)),
                     ("raw celery", lambda: raw_once(noop))]
            for _name, run in kinds * 10:  # warm-up: connections, imports, caches
                run()
            for i in range(n):
                for name, run in kinds[i % 3:] + kinds[:i % 3]:
                    times[name].append(run())
    stats = {name: summary([t * 1000 for t in values]) for name, values in times.items()}
    raw = stats["raw celery"]["median"]
    rows = [[name, s["n"], s["median"], s["p99"], s["median"] / raw]
            for name, s in stats.items()]
    print(table(rows, ["round trip", "n", "median ms", "p99 ms", "x raw median"]))
    ratio = stats["platform sync"]["median"] / raw
    print(f"sync median / raw Celery median = {ratio:.2f} (target <= 2)")
    path = write_results("roundtrip", {"stats": stats, "poll_ms": args.poll_ms,
                                       "sync_vs_raw": ratio})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
