"""Test hosts on one machine: network namespaces joined to this one by veth pairs.

    with HostNetwork(2, services=[("127.0.0.1", 5432), ("127.0.0.1", 6379)]) as net:
        host = net.hosts[0]
        env["DATABASE_URL"] = host.rewrite(database_url)   # 127.0.0.1 -> 10.231.X.1
        worker = subprocess.Popen(host.command([sys.executable, "-m", "workers.start"]), env=env)
        net.cut(host)       # the link goes down: open connections stall, new ones fail
        net.restore(host)   # stalled connections carry on where they were

Host ``N`` is namespace ``hk<X>-h<N>`` holding ``10.231.X.2/24`` and ``lo``; the other end
of its veth pair, ``10.231.X.1`` in this namespace, runs one ``socat`` forwarder per
service, so processes inside reach PostgreSQL and Redis on this namespace's loopback
without the servers listening anywhere else. A host has no default route: it can reach its
gateway and nothing beyond it. ``X`` is picked free under a lock, so concurrent runs do
not collide.

Cleanup is guaranteed on leaving the ``with`` block, also on errors and on SIGTERM (turned
into an exception while the block runs in the main thread): links come back up, every
process inside the namespaces is killed, then the forwarders, namespaces and veths go.
If the owner is killed outright, its state file in ``/run/hark-faults`` lets the next run
remove what it left.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

SUBNET = "10.231"
STATE_DIR = Path("/run/hark-faults")


class NetnsError(Exception):
    """A namespace, link or forwarder could not be set up."""


@dataclass
class Host:
    """One test host: a network namespace and its link to this namespace."""

    index: int
    octet: int
    name: str
    host_veth: str
    ns_veth: str
    forwarders: list[subprocess.Popen] = field(default_factory=list, repr=False)
    cut_at: float | None = None

    @property
    def gateway(self) -> str:
        """This namespace's end of the link: where the host reaches the services."""
        return f"{SUBNET}.{self.octet}.1"

    @property
    def address(self) -> str:
        return f"{SUBNET}.{self.octet}.2"

    def command(self, args: Sequence[str]) -> list[str]:
        """``args`` run inside the host (the environment passes through unchanged)."""
        return ["ip", "netns", "exec", self.name, *args]

    def rewrite(self, url: str) -> str:
        """``url`` with its host replaced by the gateway, keeping user, port and path."""
        parts = urlsplit(url)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = (f"{userinfo}@" if userinfo else "") + self.gateway
        if parts.port:
            netloc += f":{parts.port}"
        return urlunsplit(parts._replace(netloc=netloc))


def check_available() -> str | None:
    """Why namespaces cannot be used here, or None if they can."""
    if os.geteuid() != 0:
        return "needs root (ip netns, veth pairs)"
    for tool in ("ip", "socat", "ss"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    probe = f"hkprobe-{uuid.uuid4().hex[:6]}"
    made = _ip("netns", "add", probe, check=False)
    _ip("netns", "del", probe, check=False)
    if made.returncode != 0:
        return f"ip netns add failed: {made.stderr.strip()}"
    return None


class HostNetwork:
    """``count`` test hosts, each with forwarders to ``services`` ((address, port) pairs)."""

    def __init__(self, count: int, services: Iterable[tuple[str, int]]) -> None:
        self.count = count
        self.services = list(services)
        self.hosts: list[Host] = []
        self.run_id = f"{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._state_file = STATE_DIR / f"{self.run_id}.json"
        self._previous_sigterm = None

    # -- lifecycle -------------------------------------------------------------------
    def __enter__(self) -> HostNetwork:
        reason = check_available()
        if reason:
            raise NetnsError(reason)
        self._trap_sigterm()
        try:
            with _locked():
                cleanup_stale()
                octets = _free_octets(self.count)
                self.hosts = [
                    Host(index=i + 1, octet=x, name=f"hk{x}-h{i + 1}", host_veth=f"hk{x}h",
                         ns_veth=f"hk{x}n")
                    for i, x in enumerate(octets)
                ]
                self._save_state()
                for host in self.hosts:
                    _create_host(host)
            for host in self.hosts:
                self._start_forwarders(host)
            self._save_state()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def close(self) -> None:
        """Remove everything this network made; safe to call twice."""
        for host in self.hosts:
            with contextlib.suppress(Exception):
                self.restore(host)
        for host in self.hosts:
            _kill_namespace_processes(host.name)
        for host in self.hosts:
            for proc in host.forwarders:
                _stop_group(proc)
            host.forwarders.clear()
        for host in self.hosts:
            _ip("netns", "del", host.name, check=False)
            _ip("link", "del", host.host_veth, check=False)
        self.hosts = []
        self._state_file.unlink(missing_ok=True)
        self._untrap_sigterm()

    # -- faults ----------------------------------------------------------------------
    def cut(self, host: Host) -> float:
        """Take the host's link down; returns ``time.time()`` of the cut.

        Packets stop both ways, so established connections stall (no reset: TCP keeps
        retransmitting) and new ones fail, as when a cable is pulled or a machine
        loses power.
        """
        _ip("link", "set", host.host_veth, "down")
        host.cut_at = time.time()
        return host.cut_at

    def restore(self, host: Host, timeout: float = 5.0) -> None:
        """Bring the link back up and wait until the host's end has carrier again."""
        _ip("link", "set", host.host_veth, "up")
        host.cut_at = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = _ip("-n", host.name, "-br", "link", "show", host.ns_veth, check=False).stdout
            if "LOWER_UP" in out or " UP " in out:
                return
            time.sleep(0.02)
        raise NetnsError(f"{host.name}: link did not come back up")

    def is_cut(self, host: Host) -> bool:
        return host.cut_at is not None

    def pids(self, host: Host) -> list[int]:
        """Processes running inside the host."""
        out = _ip("netns", "pids", host.name, check=False).stdout.split()
        return [int(p) for p in out if p.isdigit()]

    # -- internals -------------------------------------------------------------------
    def _start_forwarders(self, host: Host) -> None:
        for address, port in self.services:
            args = ["socat", f"TCP-LISTEN:{port},bind={host.gateway},fork,reuseaddr,nodelay",
                    f"TCP:{address}:{port},nodelay"]
            proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True)
            host.forwarders.append(proc)
            _wait_listening(proc, host.gateway, port)

    def _save_state(self) -> None:
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        state = {
            "pid": os.getpid(),
            "start": _start_time(os.getpid()),
            "namespaces": [h.name for h in self.hosts],
            "veths": [h.host_veth for h in self.hosts],
            "forwarders": [p.pid for h in self.hosts for p in h.forwarders],
        }
        self._state_file.write_text(json.dumps(state))

    def _trap_sigterm(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def _raise(signum, _frame):
            raise KeyboardInterrupt(f"signal {signum}")

        self._previous_sigterm = signal.signal(signal.SIGTERM, _raise)

    def _untrap_sigterm(self) -> None:
        if self._previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self._previous_sigterm)
            self._previous_sigterm = None


def cleanup_stale() -> int:
    """Remove what runs that died without cleaning up left behind; returns how many."""
    removed = 0
    if not STATE_DIR.is_dir():
        return removed
    for path in STATE_DIR.glob("*.json"):
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if _start_time(state.get("pid", -1)) == state.get("start"):
            continue  # its owner is still running
        for name in state.get("namespaces", []):
            _kill_namespace_processes(name)
        for pgid in state.get("forwarders", []):
            for pid in _group_members(pgid, comm="socat"):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        for name in state.get("namespaces", []):
            _ip("netns", "del", name, check=False)
        for veth in state.get("veths", []):
            _ip("link", "del", veth, check=False)
        path.unlink(missing_ok=True)
        removed += 1
    return removed


def _create_host(host: Host) -> None:
    _ip("netns", "add", host.name)
    _ip("link", "add", host.host_veth, "type", "veth", "peer", "name", host.ns_veth,
        "netns", host.name)
    _sysctl(None, f"net.ipv6.conf.{host.host_veth}.disable_ipv6", "1")
    _sysctl(host.name, f"net.ipv6.conf.{host.ns_veth}.disable_ipv6", "1")
    _ip("addr", "add", f"{host.gateway}/24", "dev", host.host_veth)
    _ip("link", "set", host.host_veth, "up")
    _ip("-n", host.name, "addr", "add", f"{host.address}/24", "dev", host.ns_veth)
    _ip("-n", host.name, "link", "set", host.ns_veth, "up")
    _ip("-n", host.name, "link", "set", "lo", "up")


def _free_octets(count: int) -> list[int]:
    """Third octets of 10.231.X.0/24 that no address or veth here uses yet."""
    used = _ip("-o", "-4", "addr", "show", check=False).stdout
    links = _ip("-o", "link", "show", check=False).stdout
    free = [
        x for x in range(1, 255)
        if f"{SUBNET}.{x}." not in used and f" hk{x}h@" not in links and f" hk{x}h:" not in links
    ]
    if len(free) < count:
        raise NetnsError(f"only {len(free)} free subnets under {SUBNET}.0.0/16")
    return free[:count]


def _wait_listening(proc: subprocess.Popen, address: str, port: int,
                    timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise NetnsError(f"socat for {address}:{port} exited with {proc.returncode}")
        out = subprocess.run(["ss", "-Hltn", "src", f"{address}:{port}"], capture_output=True,
                             text=True).stdout
        if out.strip():
            return
        time.sleep(0.02)
    raise NetnsError(f"socat did not listen on {address}:{port}")


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM a forwarder and its per-connection children, then SIGKILL what is left."""
    members = _group_members(proc.pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(2)
    except subprocess.TimeoutExpired:
        pass
    for pid in members:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(2)


def _kill_namespace_processes(name: str) -> None:
    """SIGKILL every process inside namespace ``name`` (all of them were started for it)."""
    for _ in range(10):
        out = _ip("netns", "pids", name, check=False).stdout.split()
        pids = [int(p) for p in out if p.isdigit() and int(p) != os.getpid()]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)


def _group_members(pgid: int, comm: str | None = None) -> list[int]:
    """Pids in process group ``pgid`` (optionally only those named ``comm``)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[2]) == pgid and (comm is None or name == comm):
            members.append(int(entry.name))
    return members


def _start_time(pid: int) -> str | None:
    """A process's start time (clock ticks since boot): tells a live owner from pid reuse."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()[19]


@contextlib.contextmanager
def _locked():
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    with open(STATE_DIR / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _sysctl(namespace: str | None, key: str, value: str) -> None:
    args = ["sysctl", "-q", "-w", f"{key}={value}"]
    if namespace:
        args = ["ip", "netns", "exec", namespace, *args]
    subprocess.run(args, capture_output=True, check=False)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result
