"""Scale of the task table: ``/tasks/count`` and listings at 1M and 10M rows.

Bulk-loads task rows into a scratch database (``INSERT ... SELECT generate_series`` with
the counter triggers off, then the counters filled from one ``GROUP BY``, as the
migration's backfill does), 90% of them owned by the benchmark key. Then, through the
Flask app (auth, query, JSON; in-process, so no HTTP noise), it times ``/tasks/count``,
the first page of ``/tasks``, a deep ``page=`` (OFFSET) and a cursor page near the end
of the table, against ``SELECT status, count(*) ... GROUP BY status`` on the same rows.
Targets: count p50 <= 5 ms at 1M and 10M; any cursor page <= 10 ms at 10M.
Run: ``python -m bench.table_scale [--rows 1000000,10000000]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

from bench.harness import platform, table, write_results
from core.status import TaskStatus

CHUNK = 1_000_000
# Status mix of a long-lived deployment: mostly finished work.
_STATUS_SQL = """CASE WHEN g %% 100 < 90 THEN 'completed' WHEN g %% 100 < 97 THEN 'failed'
    WHEN g %% 100 < 98 THEN 'running' WHEN g %% 100 < 99 THEN 'assigned' ELSE 'not_finished'
    END"""


def load(dsn: str, owner: str, start: int, stop: int) -> None:
    """Rows ``start..stop-1``: 9 in 10 for ``owner``, the rest spread over 50 others."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")  # counter triggers off
        for lo in range(start, stop, CHUNK):
            hi = min(stop, lo + CHUNK)
            conn.execute(f"""
                INSERT INTO tasks (id, owner, endpoint, data, status, result, progress,
                                   priority, retry_count, attempts, created_at, updated_at)
                SELECT gen_random_uuid(),
                       CASE WHEN g %% 10 < 9 THEN %(owner)s ELSE 'other-' || (g %% 50) END,
                       '/analyze', '{{"media": {{"url": "http://example.com/a.mp3"}}}}',
                       {_STATUS_SQL}, '{{"text": "hello"}}', 100, 0, 0, 1,
                       now() - make_interval(secs => %(hi)s - g),
                       now() - make_interval(secs => %(hi)s - g)
                FROM generate_series(%(lo)s, %(hi)s - 1) AS g""",
                         {"owner": owner, "lo": lo, "hi": hi})
        conn.execute("DELETE FROM task_counts")
        conn.execute("INSERT INTO task_counts (owner, status, shard, n) "
                     "SELECT owner, status, 0, count(*) FROM tasks GROUP BY owner, status")
        conn.execute("VACUUM ANALYZE tasks")


def timed(run: Callable[[], object], repeat: int) -> dict[str, float]:
    run()  # warm the cache and the statement
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        samples.append((time.perf_counter() - started) * 1000)
    ordered = sorted(samples)
    return {"p50_ms": statistics.median(samples),
            "p99_ms": ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))],
            "n": repeat}


def measure(bench, dsn: str, owner: str, repeat: int) -> dict[str, dict]:
    client = bench.app.test_client()
    headers = bench.headers

    def get(url: str) -> dict:
        response = client.get(url, headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)[:300]
        return response.get_json()

    with psycopg.connect(dsn, autocommit=True) as conn:
        deep_seq = conn.execute("SELECT min(seq) + 1000 FROM tasks WHERE owner = %s",
                                (owner,)).fetchone()[0]
        from app.schemas import encode_cursor

        cursor = encode_cursor(deep_seq)
        group_by = ("SELECT status, count(*) FROM tasks WHERE owner = %s GROUP BY status")
        results = {
            "/tasks/count": timed(lambda: get("/tasks/count"), repeat),
            "/tasks first page": timed(lambda: get("/tasks?per_page=20"), repeat),
            "/tasks?page=5000": timed(lambda: get("/tasks?page=5000&per_page=20"),
                                      max(5, repeat // 10)),
            "/tasks?cursor=<deep>": timed(lambda: get(f"/tasks?cursor={cursor}&per_page=20"),
                                          repeat),
            "SQL GROUP BY count": timed(lambda: conn.execute(group_by, (owner,)).fetchall(),
                                        3),
        }
        count = get("/tasks/count")
        truth = dict(conn.execute(group_by, (owner,)).fetchall())
    for status in TaskStatus:
        assert count[status.value] == truth.get(status.value, 0), (count, truth)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", default="1000000,10000000",
                        help="table sizes, ascending (rows are added to reach each)")
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="100k rows only")
    args = parser.parse_args(argv)
    sizes = [100_000] if args.quick else [int(x) for x in args.rows.split(",")]
    work = Path(tempfile.mkdtemp(prefix="hark-table-"))
    report: dict[str, dict] = {}
    with platform(work) as bench:
        dsn = bench.env["DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn) as conn:
            owner = conn.execute("SELECT owner FROM api_keys LIMIT 1").fetchone()[0]
        loaded = 0
        for size in sizes:
            started = time.perf_counter()
            load(dsn, owner, loaded, size)
            loaded = size
            print(f"{size:,} rows loaded in {time.perf_counter() - started:.0f} s", flush=True)
            report[str(size)] = measure(bench, dsn, owner, args.repeat)
    rows = [[f"{int(size):,}", name, r["p50_ms"], r["p99_ms"]]
            for size, by_name in report.items() for name, r in by_name.items()]
    print(table(rows, ["rows", "query", "p50 ms", "p99 ms"]))
    path = write_results("table_scale", report)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
