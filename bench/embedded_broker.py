"""The embedded broker decision: sync round trip on the embedded Redis against kombu's
filesystem transport, same embedded PostgreSQL, same run, requests interleaved.

One platform (gunicorn API + one prefork worker of 2) per broker; ``--tasks`` sync
``seconds: 0`` round trips each, alternating. Run: ``python -m bench.embedded_broker``.
(Kept for the record: the filesystem transport is no longer supported by the platform,
so this runs only on the commit that made the decision.)
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from app.commands import upgrade_database
from core.db import Database
from core.embedded import EmbeddedPostgres, EmbeddedRedis
from core.keys import create_key
from tests.support import free_port, start_api, start_worker


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=300)
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="hark-broker-bench-"))
    root.chmod(0o755)
    pg = EmbeddedPostgres(root / "pg", free_port())
    broker = EmbeddedRedis(root / "redis", free_port())
    procs = []
    try:
        pg.start()
        broker.start()
        clients = {}
        for name, url in (("redis", broker.url), ("filesystem", "filesystem://")):
            pg.create_database(name)
            db_url = pg.url(name)
            upgrade_database(db_url)
            db = Database().configure(db_url)
            with db.transaction() as session:
                _, key = create_key(session, name="bench", owner="bench")
            db.dispose()
            data_dir = root / f"data-{name}"
            data_dir.mkdir()
            env = {"DATABASE_URL": db_url, "BROKER_URL": url, "DATA_DIR": str(data_dir),
                   "DIAGNOSTICS": "1", "KEY_CACHE_SECONDS": "60"}
            procs.append(start_worker(env, root, name=name))
            api, base = start_api(env, root)
            procs.append(api)
            clients[name] = httpx.Client(base_url=base, headers={"x-api-key": key}, timeout=30)
        times: dict[str, list[float]] = {name: [] for name in clients}
        for i in range(args.tasks + 20):
            for name, client in clients.items():
                started = time.perf_counter()
                response = client.post("/diagnostics/sleep", json={"seconds": 0})
                assert response.json()["status"] == "completed", (name, response.text)
                if i >= 20:  # warm-up
                    times[name].append(time.perf_counter() - started)
        for name, values in times.items():
            values.sort()
            print(f"{name:10s} median {statistics.median(values) * 1000:6.1f} ms  "
                  f"p95 {values[int(len(values) * 0.95)] * 1000:6.1f} ms")
        ratio = statistics.median(times["filesystem"]) / statistics.median(times["redis"])
        print(f"filesystem / redis median: {ratio:.1f}x")
        return 0
    finally:
        for proc in procs:
            proc.stop()
        broker.stop()
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
