"""Live streams under gunicorn: 200 concurrent ``GET /tasks/<id>/stream`` while
deferred submissions run, and how fast one progress change reaches every stream.

Target: 200 streams held (2 API processes, default ``MAX_STREAMS``: none refused), each sees
a progress change, and submissions keep >= 0.9x their throughput without streams.
Run: ``python -m bench.streams [--streams 200 --seconds 5]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

import httpx
from sqlalchemy import text

from bench.harness import platform, table, write_results
from core import lifecycle


def submit_rate(url: str, headers: dict, body: dict, connections: int,
                seconds: float) -> dict:
    """Deferred submissions per second from ``connections`` keep-alive clients."""
    done, errors = [], []
    stop = time.perf_counter() + seconds

    def client() -> None:
        with httpx.Client(headers=headers, timeout=30) as http:
            while time.perf_counter() < stop:
                started = time.perf_counter()
                response = http.post(url, json=body)
                (done if response.status_code == 202 else errors).append(
                    time.perf_counter() - started)

    threads = [threading.Thread(target=client) for _ in range(connections)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"rps": len(done) / (time.perf_counter() - began), "errors": len(errors),
            "p99_ms": 1000 * sorted(done)[int(0.99 * (len(done) - 1))] if done else None}


def running_tasks(db, owner: str, n: int) -> list[str]:
    ids = []
    for _ in range(n):
        with db.transaction() as session:
            task = lifecycle.create_task(session, owner=owner, endpoint="/diagnostics/sleep",
                                         data={"seconds": 1})
        with db.transaction() as session:
            lifecycle.mark_assigned(session, task.id, "cpu")
            lifecycle.claim(session, task.id, worker="bench@x", device="cpu")
        ids.append(str(task.id))
    return ids


class Stream(threading.Thread):
    """One SSE client: records when it first saw ``progress`` >= 50."""

    def __init__(self, url: str, headers: dict) -> None:
        super().__init__(daemon=True)
        self.url, self.headers = url, headers
        self.status: int | None = None
        self.opened = threading.Event()
        self.saw_half: float | None = None

    def run(self) -> None:
        try:
            with httpx.stream("GET", self.url, headers=self.headers, timeout=120) as response:
                self.status = response.status_code
                self.opened.set()
                for line in response.iter_lines():
                    if line.startswith("data: ") and '"progress"' in line:
                        if json.loads(line[6:]).get("progress", 0) >= 50:
                            self.saw_half = time.perf_counter()
                            return
        except httpx.HTTPError:
            pass
        finally:
            self.opened.set()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args(argv)
    body = {"seconds": 0}
    with tempfile.TemporaryDirectory() as tmp, platform(Path(tmp)) as bench:
        url = bench.api(WEB_CONCURRENCY="2")  # and the default MAX_STREAMS
        db = bench.app.extensions["hark"]["db"]
        submit_url = f"{url}/diagnostics/sleep?defer=true"
        before = submit_rate(submit_url, bench.headers, body, args.connections,
                             args.seconds)
        ids = running_tasks(db, "bench", args.streams)
        streams = [Stream(f"{url}/tasks/{task_id}/stream", bench.headers) for task_id in ids]
        for stream in streams:
            stream.start()
        for stream in streams:
            stream.opened.wait(60)
        held = sum(s.status == 200 for s in streams)
        during = submit_rate(submit_url, bench.headers, body, args.connections,
                             args.seconds)
        started = time.perf_counter()
        with db.transaction() as session:
            session.execute(text("UPDATE tasks SET progress = 50 WHERE id = ANY(:ids)"),
                            {"ids": ids})
        for stream in streams:
            stream.join(30)
        seen = [s.saw_half - started for s in streams if s.saw_half is not None]
        results = {
            "streams": args.streams, "held": held,
            "refused": sum(s.status == 429 for s in streams),
            "saw_progress": len(seen),
            "fanout_ms_max": round(1000 * max(seen), 1) if seen else None,
            "submit_rps_without": round(before["rps"], 1),
            "submit_rps_with": round(during["rps"], 1),
            "ratio": round(during["rps"] / before["rps"], 3),
            "submit_p99_ms_with": round(during["p99_ms"] or 0, 1),
            "errors": during["errors"],
        }
    print(table([list(results.values())], list(results)))
    write_results("streams", results)
    return 0 if held == args.streams and len(seen) == held else 1


if __name__ == "__main__":
    raise SystemExit(main())
