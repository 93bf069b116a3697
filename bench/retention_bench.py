"""Purge throughput: expired finished tasks (with their events and some uploads) deleted
by :func:`core.retention.purge_expired` on a scratch PostgreSQL database.

    .venv/bin/python -m bench.retention_bench --expired 100000 --fresh 100000

Rows are bulk-inserted with ``generate_series`` (four events per task, like a real run;
one task in ``--media-every`` carries a 64 KiB upload), then ``VACUUM ANALYZE``. Prints
rows/s and writes ``bench/results/retention.json``.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from pathlib import Path

import psycopg

from core.config import Settings
from core.db import Database
from core.retention import BATCH_SIZE, purge_expired
from tests.support import database_url_of, pg_admin_url

RESULTS = Path(__file__).resolve().parent / "results" / "retention.json"

TASKS = """
INSERT INTO tasks (id, owner, endpoint, data, status, result, error, progress, priority,
                   retry_count, attempts, created_at, updated_at, completed_at)
SELECT gen_random_uuid(), 'owner' || (g %% 10), '/analyze',
       jsonb_build_object('media', jsonb_build_object('url', 'https://example.com/a.mp3')),
       CASE WHEN g %% 5 = 0 THEN 'failed' ELSE 'completed' END,
       CASE WHEN g %% 5 = 0 THEN NULL ELSE '{"text": "the weather today is sunny",
            "segments": [{"id": 0, "start": 0.0, "end": 4.6}]}'::jsonb END,
       CASE WHEN g %% 5 = 0 THEN '{"type": "X", "message": "no"}'::jsonb END,
       100, 0, 0, 1, t, t, t + interval '5 seconds'
FROM generate_series(1, %(n)s) g,
     LATERAL (SELECT now() - %(age)s::interval + g * interval '1 ms' AS t) ts
"""
EVENTS = """
INSERT INTO task_events (task_id, type, at)
SELECT id, e, created_at FROM tasks, unnest(ARRAY['created', 'assigned', 'started',
                                                  'completed']) e
WHERE seq > %(after)s
"""
BLOBS = """
WITH picked AS (
    SELECT seq, gen_random_uuid() AS blob FROM tasks WHERE seq > %(after)s AND seq %% %(every)s = 0
), tagged AS (
    UPDATE tasks SET data = jsonb_build_object('media', jsonb_build_object('blob_id', blob))
    FROM picked WHERE tasks.seq = picked.seq RETURNING blob, tasks.owner, tasks.created_at
), blobs AS (
    INSERT INTO media_blobs (id, owner, size, sha256, created_at)
    SELECT blob, owner, 65536, '', created_at FROM tagged RETURNING id
)
INSERT INTO media_chunks (blob_id, idx, data)
SELECT id, 0, decode(repeat(md5(id::text), 2048), 'hex') FROM blobs
"""


def fill(url: str, expired: int, fresh: int, media_every: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for n, age in ((expired, "40 days"), (fresh, "1 day")):
            if not n:
                continue
            after = conn.execute("SELECT coalesce(max(seq), 0) FROM tasks").fetchone()[0]
            conn.execute(TASKS, {"n": n, "age": age})
            conn.execute(EVENTS, {"after": after})
            if media_every:
                conn.execute(BLOBS, {"after": after, "every": media_every})
        conn.execute("VACUUM ANALYZE")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--expired", type=int, default=100_000)
    parser.add_argument("--fresh", type=int, default=100_000)
    parser.add_argument("--media-every", type=int, default=100,
                        help="one task in N has an upload (0: none)")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    name = f"hark_bench_retention_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_admin_url(durable=True), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = database_url_of(pg_admin_url(durable=True), name)
    db = Database()
    try:
        from app.commands import upgrade_database

        upgrade_database(url)
        started = time.perf_counter()
        fill(url, args.expired, args.fresh, args.media_every)
        fill_s = time.perf_counter() - started
        db.configure(url)
        settings = Settings(database_url=url, result_retention_days=30)
        started = time.perf_counter()
        counts = purge_expired(db, settings, batch_size=args.batch_size)
        purge_s = time.perf_counter() - started
        started = time.perf_counter()
        again = purge_expired(db, settings, batch_size=args.batch_size)
        noop_s = time.perf_counter() - started
        with psycopg.connect(url) as conn:
            left = conn.execute("SELECT count(*) FROM tasks").fetchone()[0]
            counted = conn.execute("SELECT sum(n) FROM task_counts").fetchone()[0]
        result = {
            "expired": args.expired, "fresh": args.fresh, "media_every": args.media_every,
            "batch_size": args.batch_size, "fill_s": round(fill_s, 2),
            "deleted": counts, "purge_s": round(purge_s, 3),
            "tasks_per_s": round(counts["tasks"] / purge_s),
            "events_per_s": round(4 * counts["tasks"] / purge_s),
            "second_pass_s": round(noop_s, 4), "second_pass": again,
            "tasks_left": left, "counted": int(counted or 0),
        }
    finally:
        db.dispose()
        with psycopg.connect(pg_admin_url(durable=True), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(f"purged {counts['tasks']} tasks ({4 * counts['tasks']} events, "
          f"{counts['media']} uploads) in {purge_s:.2f} s: {result['tasks_per_s']} tasks/s; "
          f"second pass {noop_s * 1000:.1f} ms; {left} tasks left, counters say {counted}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
