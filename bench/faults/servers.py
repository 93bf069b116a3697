"""Private Redis and PostgreSQL servers that fault scripts may stop and start at will.

The shared servers on 6379 and 5432 are never touched: each script starts its own on a
free port, under a temporary folder, and removes it after.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import psycopg
import redis

from core.embedded import EmbeddedPostgres
from tests.support import Process, free_port, wait_for


class RedisServer:
    """``redis-server`` on a free port.

    ``persistence="aof"`` is what ``docker-compose.yml`` runs in production (append-only
    file, fsync every second): a restart keeps queued messages. ``"none"`` (``--save ''
    --appendonly no``) is Redis as a cache: a restart loses every queued message, and the
    platform must notice and re-publish (the sweeper's lost-message pass).
    """

    def __init__(self, log_dir: Path, persistence: str = "aof") -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="hark-faults-redis-"))
        self.log_dir = log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        self.persistence = persistence
        self.starts = 0
        self.process: Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def args(self) -> list[str]:
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.dir), "--save", ""]
        if self.persistence == "aof":
            return args + ["--appendonly", "yes", "--appendfsync", "everysec"]
        return args + ["--appendonly", "no"]

    def start(self) -> float:
        """Start it and wait until it answers PING; returns the seconds that took."""
        started = time.monotonic()
        self.starts += 1
        self.process = Process(self.args(), dict(os.environ),
                               self.log_dir / f"redis-{self.starts}.log")
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        wait_for(lambda: client.ping(), timeout=20, interval=0.05, message="redis to start")
        return time.monotonic() - started

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """SIGTERM: a clean shutdown (the AOF is flushed); SIGKILL: a crash."""
        if self.process is not None:
            self.process.stop(sig=sig, timeout=10)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class PgCluster(EmbeddedPostgres):
    """A throwaway PostgreSQL 18 with pgvector (the embedded server's binaries, see
    :mod:`core.embedded`) on a free port of 127.0.0.1, in a temporary folder.

    As root it runs as the embedded server's unprivileged user (initdb refuses root).
    ``synchronous_commit`` stays at its default (on) unless ``lazy``: a crash
    (``-m immediate``) then loses exactly the commits that chose not to wait. ``fsync`` is
    off: the machine itself does not crash, so what reached the kernel survives.
    """

    def __init__(self, log_dir: Path, lazy: bool = False) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="hark-faults-pg-"))
        settings = {"fsync": "off"} | ({"synchronous_commit": "off"} if lazy else {})
        super().__init__(self.dir, free_port(), settings=settings)
        self.log_dir = log_dir

    @property
    def admin_url(self) -> str:
        return self.url()

    def start(self) -> float:
        """Start the server and wait until it accepts connections; returns the seconds."""
        seconds = super().start()
        wait_for(lambda: psycopg.connect(self.admin_url, connect_timeout=1).close() is None,
                 timeout=30, interval=0.1, message="postgres to accept connections")
        return seconds

    def remove(self) -> None:
        self.stop("immediate")
        if self.log.exists():
            self.log_dir.mkdir(parents=True, exist_ok=True)
            shutil.copy(self.log, self.log_dir / "postgres.log")
        shutil.rmtree(self.dir, ignore_errors=True)
