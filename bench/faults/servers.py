"""Private Redis and PostgreSQL servers that fault scripts may stop and start at will.

The shared servers on 6379 and 5432 are never touched: each script starts its own on a
free port, under a temporary folder, and removes it after.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import redis

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


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                   key=lambda p: int(p.split("/")[4]))
    return found[-1] if found else shutil.which(name) or name


class PgCluster:
    """A throwaway PostgreSQL cluster (``initdb``, ``pg_ctl``) on a free port.

    Runs as the ``postgres`` user when started as root (initdb refuses root).
    """

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="hark-faults-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"  # copied to log_dir by remove()
        self.log_dir = log_dir
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as:
            shutil.chown(self.dir, "postgres", "postgres")

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        subprocess.run(self._as + list(args), check=True, capture_output=True, text=True,
                       cwd=self.dir)

    def init(self) -> None:
        self._run(_pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "--no-sync", "-E", "UTF8")

    def start(self) -> float:
        """Start the server and wait until it accepts connections; returns the seconds."""
        started = time.monotonic()
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                   "-c max_connections=300 -c fsync=off -c synchronous_commit=off")
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.log),
                  "-w", "start")
        wait_for(lambda: psycopg.connect(self.admin_url, connect_timeout=1).close() is None,
                 timeout=30, interval=0.1, message="postgres to accept connections")
        return time.monotonic() - started

    def stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop -m fast``: clients are disconnected, the server shuts down."""
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        if (self.data / "postmaster.pid").exists():
            try:
                self.stop("immediate")
            except subprocess.CalledProcessError as exc:
                print(f"pg_ctl stop: {exc.stderr}")
        if self.log.exists():
            self.log_dir.mkdir(parents=True, exist_ok=True)
            shutil.copy(self.log, self.log_dir / "postgres.log")
        shutil.rmtree(self.dir, ignore_errors=True)
