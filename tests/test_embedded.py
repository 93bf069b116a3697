"""``python -m core.embedded run``: starts PostgreSQL 18 (with pgvector) and Redis, exports
their URLs to the command, leaves servers it did not start alone, stops its own after."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support import ROOT, free_port

INSIDE = """
import os, subprocess, sys
import psycopg, redis
with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
    conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    print("server", conn.execute("SHOW server_version_num").fetchone()[0][:2])
print("redis", redis.Redis.from_url(os.environ["BROKER_URL"]).ping())
# A nested run (e.g. `flask db backup` while the platform runs) reuses both servers...
nested = subprocess.run([sys.executable, "-m", "core.embedded", "run", "--", "true"])
# ...and leaves them running.
with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
    print("after nested", nested.returncode, conn.execute("SELECT 1").fetchone()[0])
"""


def _open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_run_starts_exports_reuses_and_stops():
    root = Path(tempfile.mkdtemp(prefix="hark-embedded-"))
    root.chmod(0o755)  # as root the server runs as an unprivileged user
    pg_port, redis_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "BROKER_URL") and not k.startswith("PYTEST")}
    env.update(DATA_DIR=str(root), EMBEDDED_PG_PORT=str(pg_port),
               EMBEDDED_REDIS_PORT=str(redis_port))
    try:
        result = subprocess.run([sys.executable, "-m", "core.embedded", "run", "--",
                                 sys.executable, "-c", INSIDE], env=env, cwd=ROOT,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        lines = result.stdout.splitlines()
        assert "server 18" in lines and "redis True" in lines and "after nested 0 1" in lines
        assert (root / "postgres" / "data" / "PG_VERSION").exists()
        assert (root / "redis" / "appendonly.aof").exists()
        assert not _open(pg_port) and not _open(redis_port)
        assert not (root / "postgres" / "data" / "postmaster.pid").exists()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_a_command_failure_is_its_exit_status(tmp_path):
    env = dict(os.environ, DATABASE_URL="postgresql://x@127.0.0.1:1/x",
               BROKER_URL="redis://127.0.0.1:1/0")  # both replaced: nothing starts
    result = subprocess.run([sys.executable, "-m", "core.embedded", "run", "--",
                             sys.executable, "-c", "raise SystemExit(7)"], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 7 and "embedded" not in result.stdout


def test_shared_buffers_are_sized_to_the_host(pg_admin):
    """A quarter of the memory between 128 MB and 4 GB, unless set; the tests' private
    server (an EmbeddedPostgres) runs with it."""
    import psycopg

    from core.embedded import host_memory, shared_buffers

    memory_mb = host_memory() // 2**20
    assert memory_mb <= os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    assert shared_buffers({}) == f"{max(128, min(4096, memory_mb // 4))}MB"
    assert shared_buffers({"EMBEDDED_PG_SHARED_BUFFERS": "256MB"}) == "256MB"
    if os.environ.get("TEST_PG_ADMIN_URL"):
        return  # a server of the caller's, configured by them
    with psycopg.connect(pg_admin) as conn:
        blocks = conn.execute("SELECT setting::bigint FROM pg_settings "
                              "WHERE name = 'shared_buffers'").fetchone()[0]
    assert f"{blocks * 8 // 1024}MB" == shared_buffers({})
