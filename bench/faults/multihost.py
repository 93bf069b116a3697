"""Scale-out on one machine: worker hosts in network namespaces, a cut link, drain rates.

``python -m bench.faults.multihost`` (root; PostgreSQL and Redis on 127.0.0.1) makes
four test hosts (see :mod:`bench.faults.netns`), each running ``python -m workers.start``
against the broker and database of this namespace, and then:

1. checks that a cut link really stalls established connections;
2. routes tasks by device class and by queue (``h4`` is a ``cuda:1`` worker; sleep tasks
   need no GPU);
3. cuts the host running most of four sleep tasks mid-task: its tasks become
   ``not_finished`` and re-run on the other hosts within ``HEARTBEAT_TIMEOUT +
   SWEEP_INTERVAL``; after the link returns, the cut worker's writes are refused (fenced
   by attempt) and every task ends ``completed`` once, counted from the task events;
4. cuts a host between a write and its COMMIT and times a sweep meanwhile (a known
   issue: the lost backend's row lock stalls the sweeper; reported, not failed);
5. drains ``FAULTS_DRAIN_TASKS`` (400) queued ``seconds: 0.2`` sleep tasks with 1, 2 and
   4 hosts of ``WORKER_CONCURRENCY=4`` (best of ``FAULTS_DRAIN_TRIALS``, 2) and reports
   tasks/s, speedup and where the CPU went.

Prints checks and a table and writes ``bench/results/multihost.json``. Exit status 1 if a
check failed. :func:`start_host_workers`, :class:`SweepLoop` and :func:`cut_mid_task` are
shared with ``tests/test_multihost.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from pathlib import Path
from statistics import mean
from typing import Any
from urllib.parse import urlsplit

import psutil
import psycopg
import redis
from sqlalchemy import func, select, text

from bench.faults.netns import Host, HostNetwork, check_available
from core import dispatch, lifecycle
from core.config import Settings
from core.models import Task, TaskEvent
from core.status import TaskStatus
from tests.support import (
    ROOT,
    Process,
    database_url_of,
    pg_admin_url,
    platform_env,
    wait_for,
)
from workers import sweeper

SLEEP = "/diagnostics/sleep"
RESULTS = ROOT / "bench" / "results" / "multihost.json"
# Steps of a task's audit trail counted per task: a re-run adds a start and a not_finished.
EVENTS = ("started", "not_finished", "completed", "failed")
# How much later than HEARTBEAT_TIMEOUT + SWEEP_INTERVAL after the cut a re-run may start:
# the sweep itself, then a free worker fetches the re-published message and claims it.
RESCUE_SLACK_S = 1.5


# -- workers on test hosts -------------------------------------------------------------
def host_env(host: Host, settings_env: dict[str, str], name: str, **extra: str) -> dict:
    """A worker's environment inside ``host``: the same settings, services via its gateway."""
    env = platform_env(settings_env, WORKER_NAME=f"{name}@%h", **extra)
    env["DATABASE_URL"] = host.rewrite(settings_env["DATABASE_URL"])
    env["BROKER_URL"] = host.rewrite(settings_env["BROKER_URL"])
    return env


def start_host_workers(hosts: Iterable[Host], settings_env: dict[str, str], log_dir: Path,
                       per_host: dict[int, dict[str, str]] | None = None, timeout: float = 90,
                       **extra: str) -> dict[str, Process]:
    """Start ``python -m workers.start`` in each host (named ``h<N>``), all at once.

    ``per_host`` adds environment for host ``N``. Returns when every worker is ready.
    """
    procs: dict[str, Process] = {}
    try:
        for host in hosts:
            name = f"h{host.index}"
            own = {**extra, **(per_host or {}).get(host.index, {})}
            env = host_env(host, settings_env, name, **own)
            procs[name] = Process(host.command([sys.executable, "-m", "workers.start"]), env,
                                  log_dir / f"worker-{name}.log")
        for name, proc in procs.items():
            wait_for(lambda p=proc: "ready." in p.output() or not p.alive(), timeout=timeout,
                     interval=0.1, message=f"worker {name} to start")
            if not proc.alive():
                raise AssertionError(f"worker {name} exited:\n" + proc.output()[-3000:])
    except BaseException:
        stop_workers(procs)
        raise
    return procs


def stop_workers(procs: dict[str, Process]) -> None:
    for proc in procs.values():
        proc.stop(timeout=10)


def node_name(worker: str) -> str:
    """``h2@box`` -> ``h2``."""
    return worker.split("@", 1)[0]


class SweepLoop:
    """The sweeper every ``SWEEP_INTERVAL`` seconds in a thread, as Celery beat runs it."""

    def __init__(self, db, celery_app, settings: Settings) -> None:
        self.db, self.celery_app, self.settings = db, celery_app, settings
        self.errors: list[str] = []
        self.not_finished = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="sweep-loop")

    def __enter__(self) -> SweepLoop:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def _run(self) -> None:
        self.celery_app.set_current()  # events published from this thread use this app
        while not self._stop.wait(self.settings.sweep_interval):
            try:
                report = sweeper.sweep(self.db, self.celery_app, self.settings)
                self.not_finished += report.not_finished
            except Exception as exc:  # recorded and reported; the loop goes on, as beat does
                self.errors.append(repr(exc))


# -- the cut ---------------------------------------------------------------------------
@dataclass
class CutReport:
    """What happened to the tasks of a host whose link was cut mid-task."""

    victim: str
    cut_tasks: list[str]
    other_tasks: list[str]
    bound_s: float
    rescue_delay_s: dict[str, float] = field(default_factory=dict)
    rescuers: dict[str, str] = field(default_factory=dict)
    outage_s: float = 0.0
    # How the cut worker's late write for each task was refused once the link was back.
    victim_outcome: dict[str, str] = field(default_factory=dict)
    # ... and whether the re-run was still running then (refused by attempt, not status).
    refused_during_rerun: dict[str, bool] = field(default_factory=dict)
    final: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: dict[str, dict[str, int]] = field(default_factory=dict)
    sweep_errors: list[str] = field(default_factory=list)

    def failures(self) -> list[str]:
        """Every broken promise, as a sentence; empty when the run behaved."""
        problems = []
        for tid in self.cut_tasks:
            row = self.final[tid]
            if (row["status"], row["attempts"], row["retry_count"]) != ("completed", 2, 1):
                problems.append(f"cut task {tid}: {row}")
            if row["worker"] == self.victim or row["result_worker"] != row["worker"]:
                problems.append(f"cut task {tid} finished on {row['worker']}")
            if self.rescue_delay_s[tid] > self.bound_s + RESCUE_SLACK_S:
                problems.append(f"cut task {tid} re-ran {self.rescue_delay_s[tid]:.1f}s after "
                                f"the cut (bound {self.bound_s:g}s + {RESCUE_SLACK_S}s)")
            if self.victim_outcome.get(tid) not in ("heartbeat refused", "completion refused"):
                problems.append(f"cut worker's late write for {tid}: "
                                f"{self.victim_outcome.get(tid)}")
        for tid in self.other_tasks:
            row = self.final[tid]
            if (row["status"], row["attempts"], row["retry_count"]) != ("completed", 1, 0):
                problems.append(f"untouched task {tid}: {row}")
        for tid, counts in self.events.items():
            reruns = 1 if tid in self.cut_tasks else 0
            expected = {"started": 1 + reruns, "not_finished": reruns, "completed": 1,
                        "failed": 0}
            if counts != expected:
                problems.append(f"events of {tid}: {counts}, expected {expected}")
        problems += [f"sweep error: {e}" for e in self.sweep_errors]
        return problems


def event_counts(db, task_ids: Iterable[str]) -> dict[str, dict[str, int]]:
    """Steps of each task's audit trail (``task_events``): one ``started`` per run."""
    ids = [uuid.UUID(t) for t in task_ids]
    counts: dict[str, dict[str, int]] = {str(t): dict.fromkeys(EVENTS, 0) for t in ids}
    with db.session() as session:
        rows = session.execute(
            select(TaskEvent.task_id, TaskEvent.type, func.count())
            .where(TaskEvent.task_id.in_(ids), TaskEvent.type.in_(EVENTS))
            .group_by(TaskEvent.task_id, TaskEvent.type)
        ).all()
    for task_id, kind, n in rows:
        counts[str(task_id)][kind] = n
    return counts


def task_rows(db, task_ids: Iterable[str]) -> dict[str, Task]:
    ids = [uuid.UUID(t) for t in task_ids]
    with db.session() as session:
        return {str(t.id): t for t in session.scalars(select(Task).where(Task.id.in_(ids)))}


def cut_mid_task(net: HostNetwork, workers: dict[str, Process], *, client,
                 headers: dict[str, str], db, settings: Settings, queue: str, tasks: int = 1,
                 seconds: float = 6.0, cut_after: float = 1.0) -> CutReport:
    """Run ``tasks`` sleep tasks on ``queue``, cut the host running most of them, recover.

    Needs a sweeper running (:class:`SweepLoop`) and free pool processes on the other
    hosts for the cut host's tasks. The cut host's link is back when this returns.
    """
    ids = []
    for _ in range(tasks):
        response = client.post(SLEEP + "?defer=true", headers=headers,
                               json={"seconds": seconds, "queue": queue})
        assert response.status_code == 202, response.get_json()
        ids.append(response.get_json()["task_id"])

    def all_running():
        rows = task_rows(db, ids)
        return len(rows) == len(ids) and all(r.status == "running" for r in rows.values()) and rows

    rows = wait_for(all_running, timeout=30, interval=0.05, message="tasks to start")
    victim = Counter(r.worker for r in rows.values()).most_common(1)[0][0]
    host = next(h for h in net.hosts if f"h{h.index}" == node_name(victim))
    report = CutReport(
        victim=victim,
        cut_tasks=[t for t, r in rows.items() if r.worker == victim],
        other_tasks=[t for t, r in rows.items() if r.worker != victim],
        bound_s=settings.heartbeat_timeout + settings.sweep_interval,
    )
    latest_start = max(r.started_at.timestamp() for r in rows.values())
    time.sleep(max(0.0, latest_start + cut_after - time.time()))
    cut_at = net.cut(host)
    try:
        def rescued():
            now = task_rows(db, report.cut_tasks)
            return all(r.attempts >= 2 and r.status != "not_finished" for r in now.values()) \
                and now

        rescue = wait_for(rescued, timeout=report.bound_s + 15, interval=0.05,
                          message="the cut host's tasks to re-run elsewhere")
    finally:
        net.restore(host)
    report.outage_s = time.time() - cut_at
    for tid, row in rescue.items():
        report.rescue_delay_s[tid] = round(row.started_at.timestamp() - cut_at, 3)
        report.rescuers[tid] = row.worker
    _watch_victim(report, workers[node_name(victim)], db, timeout=45)
    wait_for(lambda: all(r.status in ("completed", "failed") for r in task_rows(db, ids).values()),
             timeout=seconds + 30, interval=0.1, message="every task to finish")
    for tid, row in task_rows(db, ids).items():
        report.final[tid] = {
            "status": row.status, "attempts": row.attempts, "retry_count": row.retry_count,
            "worker": row.worker, "result_worker": (row.result or {}).get("worker"),
        }
    report.events = event_counts(db, ids)
    return report


def _watch_victim(report: CutReport, victim: Process, db, timeout: float) -> None:
    """Wait for the cut worker to give up each task; note whether the re-run still ran."""
    markers = {"heartbeat refused": "cancelled while running",
               "completion refused": "finished but was deleted meanwhile"}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(report.victim_outcome) < len(report.cut_tasks):
        log = victim.output()
        for tid in report.cut_tasks:
            if tid in report.victim_outcome:
                continue
            for outcome, marker in markers.items():
                if f"task {tid} {marker}" in log:
                    row = task_rows(db, [tid])[tid]
                    report.victim_outcome[tid] = outcome
                    report.refused_during_rerun[tid] = row.status == "running"
            if f"task {tid} completed" in log:
                report.victim_outcome[tid] = "COMPLETED AGAIN"
        time.sleep(0.05)
    for tid in report.cut_tasks:
        report.victim_outcome.setdefault(tid, "no write seen")


def cut_mid_transaction(net: HostNetwork, host: Host, db, celery_app, settings: Settings,
                        wait: float = 10.0) -> dict[str, Any]:
    """A host lost between a write and its COMMIT: does recovery of other tasks go on?

    A process on ``host`` updates a running task's row without committing (as a heartbeat
    does for a moment), then the link is cut. Its backend stays "idle in transaction",
    holding the row lock, until PostgreSQL notices the peer is gone. Measures how long a
    sweep takes meanwhile (at most ``wait`` seconds, then the link comes back).
    """
    with db.transaction() as session:
        task = lifecycle.create_task(session, owner="faults", endpoint=SLEEP,
                                     data={"seconds": 0}, queue="faults-nobody")
    with db.transaction() as session:  # running, and its last heartbeat long ago
        lifecycle.claim(session, task.id, worker=f"h{host.index}@lost", device="cpu")
        session.execute(text("UPDATE tasks SET heartbeat_at = now() - interval '1 hour' "
                             "WHERE id = :id"), {"id": task.id})
    code = (  # a heartbeat whose COMMIT never arrives
        "import psycopg, sys\n"
        "conn = psycopg.connect(sys.argv[1])\n"
        "conn.execute('UPDATE tasks SET heartbeat_at = heartbeat_at WHERE id = %s',"
        " (sys.argv[2],))\n"
        "print('written', flush=True)\n"
        "sys.stdin.readline()\n"
        "conn.commit()\n"
    )
    proc = subprocess.Popen(host.command([sys.executable, "-c", code,
                                          host.rewrite(settings.database_url), str(task.id)]),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    outcome: dict[str, Any] = {}

    def sweep():
        celery_app.set_current()
        started = time.monotonic()
        try:
            outcome["report"] = asdict(sweeper.sweep(db, celery_app, settings))
        except Exception as exc:
            outcome["error"] = repr(exc)
        outcome["seconds"] = round(time.monotonic() - started, 2)

    try:
        assert proc.stdout.readline().strip() == "written"
        net.cut(host)
        thread = threading.Thread(target=sweep, daemon=True)
        thread.start()
        thread.join(wait)
        blocked = thread.is_alive()
        second = sweeper.sweep(db, celery_app, settings)  # another beat tick meanwhile
    finally:
        net.restore(host)
        with contextlib.suppress(OSError, ValueError):
            proc.stdin.write("\n")
            proc.stdin.flush()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(30)
        proc.kill()
    thread.join(30)
    return {"sweep_blocked": blocked, "waited_s": wait, "sweep": outcome,
            "next_sweep_skipped": second.skipped}


# -- drain rate ------------------------------------------------------------------------
def drain(net: HostNetwork, count: int, *, settings_env: dict[str, str], log_dir: Path, db,
          celery_app, tasks: int, seconds: float, concurrency: int) -> dict[str, Any]:
    """Queue ``tasks`` sleep tasks, then let ``count`` hosts take them all at the same moment.

    The workers start first and stop consuming ``cpu`` (a control broadcast), the tasks
    are queued, then every worker consumes ``cpu`` again: the figure excludes start-up
    and publishing. Rate = tasks / (last ``completed_at`` - first ``started_at``).
    """
    with db.transaction() as session:
        session.execute(text("TRUNCATE tasks RESTART IDENTITY CASCADE"))
    hosts = net.hosts[:count]
    workers = start_host_workers(hosts, settings_env, log_dir, WORKER_DEVICE="cpu",
                                 WORKER_CONCURRENCY=str(concurrency))
    try:
        names = [f"h{h.index}@{socket.gethostname()}" for h in hosts]
        _control_all(celery_app, "cancel_consumer", names)
        for _ in range(tasks):
            dispatch.submit(db, celery_app, owner="bench", endpoint=SLEEP,
                            data={"seconds": seconds}, queue="cpu")
        before, machine_before = _cpu_snapshot(net, hosts), _machine_cpu()
        opened = time.time()
        _control_all(celery_app, "add_consumer", names)
        expected = tasks * seconds / (count * concurrency)

        def finished():
            with db.session() as session:
                done = session.scalar(select(func.count()).select_from(Task).where(
                    Task.status.in_([TaskStatus.COMPLETED.value, TaskStatus.FAILED.value])))
            return done == tasks

        wait_for(finished, timeout=expected * 4 + 60, interval=0.2, message="the drain")
        after, machine_after = _cpu_snapshot(net, hosts), _machine_cpu()
        window = time.time() - opened
    finally:
        stop_workers(workers)
    with db.session() as session:
        rows = list(session.scalars(select(Task)))
    figures = _drain_figures(rows, count, concurrency, seconds, opened, window, before, after)
    busy = (machine_after[0] - machine_before[0]) / max(1e-9, machine_after[1] - machine_before[1])
    figures["machine_busy"] = round(busy, 3)
    # CPU taken by everything else on this machine (other jobs share its cores).
    figures["other_busy"] = round(max(0.0, busy - figures["cpu_busy"]), 3)
    return figures


def _control_all(celery_app, command: str, names: list[str], timeout: float = 30) -> None:
    """``command`` ("cancel_consumer" or "add_consumer") for queue ``cpu`` on every worker.

    Workers answer control messages only once their consumer runs, a moment after "ready":
    ping until all answer, then send the command to whoever has not confirmed it yet.
    """
    control = celery_app.control
    pending = set(names)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        answered = {n for reply in control.ping(destination=sorted(pending), timeout=1)
                    for n in reply}
        if answered != pending:
            continue
        replies = getattr(control, command)("cpu", destination=sorted(pending), reply=True,
                                            timeout=2)
        pending -= {n for reply in replies for n in reply}
    if pending:
        raise AssertionError(f"{command}: no answer from {sorted(pending)}")


def _drain_figures(rows: list[Task], count: int, concurrency: int, seconds: float,
                   opened: float, window: float, before: dict, after: dict) -> dict[str, Any]:
    first = min(r.started_at for r in rows).timestamp()
    last = max(r.completed_at for r in rows).timestamp()
    makespan = last - first
    by_process: dict[Any, list[Task]] = defaultdict(list)
    for row in rows:
        by_process[(row.worker, (row.result or {}).get("pid"))].append(row)
    gaps = []
    for runs in by_process.values():
        runs.sort(key=lambda r: r.started_at)
        gaps += [(b.started_at - a.completed_at).total_seconds() for a, b in pairwise(runs)]
    cpu = {group: round(after.get(group, 0.0) - before.get(group, 0.0), 2)
           for group in sorted(set(after) | set(before))}
    cores = psutil.cpu_count() or 1
    return {
        "hosts": count,
        "processes": count * concurrency,
        "tasks": len(rows),
        "failed": sum(r.status != "completed" for r in rows),
        "seconds": round(makespan, 2),
        "tasks_per_s": round(len(rows) / makespan, 2),
        "ideal_tasks_per_s": round(count * concurrency / seconds, 2),
        "start_delay_s": round(first - opened, 3),
        "mean_task_s": round(mean((r.completed_at - r.started_at).total_seconds()
                                  for r in rows), 4),
        "mean_gap_s": round(mean(gaps), 4) if gaps else None,
        "per_worker": dict(sorted(Counter(node_name(r.worker) for r in rows).items())),
        "cpu_seconds": cpu,
        "cpu_busy": round(sum(cpu.values()) / (window * cores), 3),
    }


def _machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU time of the whole machine so far, from /proc/stat."""
    values = [float(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def _cpu_snapshot(net: HostNetwork, hosts: list[Host]) -> dict[str, float]:
    """CPU seconds used so far by workers, PostgreSQL, Redis, forwarders and this process."""
    workers = set()
    for host in hosts:
        workers.update(net.pids(host))
    totals: dict[str, float] = defaultdict(float)
    for proc in psutil.process_iter(["pid", "name", "cpu_times"]):
        times = proc.info["cpu_times"]
        if times is None:
            continue
        name = proc.info["name"] or ""
        if proc.info["pid"] in workers:
            group = "workers"
        elif name.startswith("postgres"):  # every database's backends, not only ours
            group = "postgres"
        elif name.startswith("redis"):
            group = "redis"
        elif name == "socat":
            group = "forwarders"
        elif proc.info["pid"] == os.getpid():
            group = "publisher"
        else:
            continue
        totals[group] += times.user + times.system
    return dict(totals)


# -- the scripted run ------------------------------------------------------------------
@contextlib.contextmanager
def platform(**extra: str) -> Iterator[dict[str, str]]:
    """A fresh migrated database and a private Redis key prefix; removed afterwards."""
    from app.commands import upgrade_database

    name = f"hark_faults_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_admin_url(durable=True), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    broker = f"redis://127.0.0.1:6379/{os.environ.get('FAULTS_REDIS_DB', '14')}"
    prefix = f"hark-faults-{uuid.uuid4().hex[:8]}:"
    data_dir = tempfile.mkdtemp(prefix="hark-faults-")
    env = {
        "DATABASE_URL": database_url_of(pg_admin_url(durable=True), name),
        "BROKER_URL": broker,
        "BROKER_KEY_PREFIX": prefix,
        "DATA_DIR": data_dir,
        "DIAGNOSTICS": "1",
        "KEY_CACHE_SECONDS": "0",
        **extra,
    }
    try:
        upgrade_database(env["DATABASE_URL"])
        yield env
    finally:
        with psycopg.connect(pg_admin_url(durable=True), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        client = redis.Redis.from_url(broker)
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            client.delete(key)
        client.close()


def probe_cut(net: HostNetwork, host: Host) -> dict[str, Any]:
    """An established connection from the host stalls while cut and resumes after."""
    code = (
        "import socket, sys\n"
        "s = socket.create_connection((sys.argv[1], 6379), timeout=3)\n"
        "s.sendall(b'PING\\r\\n'); print(s.recv(64) == b'+PONG\\r\\n', flush=True)\n"
        "sys.stdin.readline(); s.settimeout(2); s.sendall(b'PING\\r\\n')\n"
        "try:\n    print(repr(s.recv(64)), flush=True)\n"
        "except OSError as e:\n    print(type(e).__name__, flush=True)\n"
        "sys.stdin.readline(); s.settimeout(20)\n"
        "print(s.recv(64) == b'+PONG\\r\\n', flush=True)\n"
    )
    proc = subprocess.Popen(host.command([sys.executable, "-c", code, host.gateway]),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        before = proc.stdout.readline().strip() == "True"
        net.cut(host)
        proc.stdin.write("\n")
        proc.stdin.flush()
        during = proc.stdout.readline().strip()
        fresh = subprocess.run(host.command([sys.executable, "-c", (
            "import socket, sys\n"
            "try:\n    socket.create_connection((sys.argv[1], 6379), timeout=2); print('open')\n"
            "except OSError as e:\n    print(type(e).__name__)\n")]
            + [host.gateway]), capture_output=True, text=True, timeout=10).stdout.strip()
        net.restore(host)
        restored = time.monotonic()
        proc.stdin.write("\n")
        proc.stdin.flush()
        after = proc.stdout.readline().strip() == "True"
        resumed_s = time.monotonic() - restored
    finally:
        if net.is_cut(host):
            net.restore(host)
        proc.kill()
        proc.wait()
    return {"answered_before": before, "while_cut": during, "new_connection_while_cut": fresh,
            "answered_after_restore": after, "resumed_after_s": round(resumed_s, 2)}


def _routing(client, headers, db) -> dict[str, dict[str, str]]:
    """Where tasks aimed at a device class or a queue ran."""
    asks = {"device cpu": {"device": "cpu"}, "device gpu": {"device": "gpu"},
            "queue gpu.1": {"queue": "gpu.1"}, "queue h2 (WORKER_QUEUES)": {"queue": "only-h2"}}
    ids = {}
    for label, routing in asks.items():
        response = client.post(SLEEP + "?defer=true", headers=headers,
                               json={"seconds": 0, **routing})
        ids[label] = response.get_json()["task_id"]
    wait_for(lambda: all(r.status == "completed" for r in task_rows(db, ids.values()).values()),
             timeout=30, message="routed tasks")
    rows = task_rows(db, ids.values())
    return {label: {"worker": node_name(rows[t].worker), "device": rows[t].device}
            for label, t in ids.items()}


def _print_checks(checks: list[tuple[str, bool | None, str]]) -> None:
    for label, ok, detail in checks:
        mark = "ok" if ok else "KNOWN ISSUE" if ok is None else "FAIL"
        print(f"  [{mark}] {label}: {detail}", flush=True)


def _print_table(runs: list[dict[str, Any]]) -> None:
    print(f"  {'hosts':>5} {'procs':>5} {'tasks':>5} {'seconds':>8} {'tasks/s':>8} "
          f"{'ideal/s':>8} {'of ideal':>8} {'speedup':>8} {'scaling':>8} {'our CPU':>8} "
          f"{'other':>6}  trials (tasks/s)")
    for run in runs:
        print(f"  {run['hosts']:>5} {run['processes']:>5} {run['tasks']:>5} "
              f"{run['seconds']:>8.2f} {run['tasks_per_s']:>8.2f} "
              f"{run['ideal_tasks_per_s']:>8.2f} {run['of_ideal']:>8.0%} "
              f"{run['speedup']:>8.2f} {run['scaling_efficiency']:>8.0%} "
              f"{run['cpu_busy']:>8.0%} {run['other_busy']:>6.0%}  {run['trials']}")
    for run in runs:
        print(f"  {run['hosts']} host(s): per worker {run['per_worker']}; mean task "
              f"{run['mean_task_s']}s (sleeps {SLEEP_S}s), mean gap between a process's "
              f"tasks {run['mean_gap_s']}s; CPU seconds {run['cpu_seconds']}")


SLEEP_S = 0.2
DRAIN_CONCURRENCY = 4
# The cut scenario's liveness settings: a host is declared lost after HEARTBEAT_TIMEOUT
# without heartbeats, noticed at the next sweep.
CUT_SETTINGS = {"HEARTBEAT_INTERVAL": "1", "HEARTBEAT_TIMEOUT": "5", "SWEEP_INTERVAL": "2",
                "CREATED_GRACE": "2", "ASSIGNED_GRACE": "10"}
# The drain runs with the production defaults: heartbeats every 5 s, lost after 30 s.
DRAIN_SETTINGS = {"HEARTBEAT_INTERVAL": "5", "HEARTBEAT_TIMEOUT": "30"}


def _cut_phase(net: HostNetwork, env: dict[str, str], log_dir: Path, app, headers,
               results: dict[str, Any]) -> list[tuple[str, bool | None, str]]:
    """The probe, routing, and the cut of a host mid-task; returns printed checks."""
    db, celery_app = app.extensions["hark"]["db"], app.extensions["hark"]["celery"]
    settings, client = app.config["HARK"], app.test_client()
    probe = results["probe"] = probe_cut(net, net.hosts[0])
    checks = [("a cut stalls open connections",
               probe["answered_before"] and probe["while_cut"] == "TimeoutError"
               and probe["new_connection_while_cut"] != "open"
               and probe["answered_after_restore"],
               f"{probe['while_cut']} while cut, new connections "
               f"{probe['new_connection_while_cut']}, resumed {probe['resumed_after_s']}s "
               "after restore")]
    per_host = {2: {"WORKER_QUEUES": "only-h2"}, 4: {"WORKER_DEVICE": "cuda:1"}}
    workers = start_host_workers(net.hosts[:4], env, log_dir, per_host=per_host,
                                 WORKER_CONCURRENCY="2")
    try:
        routed = results["routing"] = _routing(client, headers, db)
        expect = {"device cpu": {"h1", "h2", "h3"}, "device gpu": {"h4"},
                  "queue gpu.1": {"h4"}, "queue h2 (WORKER_QUEUES)": {"h2"}}
        checks += [(f"routing: {label}", where["worker"] in expect[label],
                    f"ran on {where['worker']} ({where['device']})")
                   for label, where in routed.items()]
        with SweepLoop(db, celery_app, settings) as loop:
            report = cut_mid_task(net, workers, client=client, headers=headers, db=db,
                                  settings=settings, queue="cpu", tasks=4, seconds=10.0)
        report.sweep_errors = loop.errors
    finally:
        stop_workers(workers)
    results["cut"] = asdict(report)
    failures = report.failures()
    delays = ", ".join(f"{d:.2f}s" for d in report.rescue_delay_s.values())
    checks += [
        ("cut host's running tasks re-ran elsewhere", not failures,
         f"{node_name(report.victim)} ran {len(report.cut_tasks)} of "
         f"{len(report.cut_tasks) + len(report.other_tasks)}; re-run by "
         f"{sorted(set(map(node_name, report.rescuers.values())))}"),
        ("re-run started within HEARTBEAT_TIMEOUT + SWEEP_INTERVAL",
         all(d <= report.bound_s + RESCUE_SLACK_S for d in report.rescue_delay_s.values()),
         f"{delays} after the cut (bound {report.bound_s:g}s + {RESCUE_SLACK_S}s to claim)"),
        ("cut worker's late writes refused",
         all(o.endswith("refused") for o in report.victim_outcome.values()),
         f"{sorted(report.victim_outcome.values())}, "
         f"{sum(report.refused_during_rerun.values())} of {len(report.cut_tasks)} while the "
         f"re-run was still running (the attempt fence); link down {report.outage_s:.1f}s"),
        ("each task completed exactly once (task events)",
         all(c["completed"] == 1 for c in report.events.values()), _event_summary(report)),
    ]
    checks += [("problem", False, p) for p in failures]
    stuck = results["cut_mid_transaction"] = cut_mid_transaction(
        net, net.hosts[0], db, celery_app, settings)
    detail = (f"a sweep waited {stuck['waited_s']:g}s+ on the lost host's row lock and later "
              f"sweeps were skipped={stuck['next_sweep_skipped']}: recovery of every task stops "
              "until PostgreSQL drops the dead connection" if stuck["sweep_blocked"]
              else f"sweep took {stuck['sweep'].get('seconds')}s")
    # Reported, not failed: a platform issue this script documents (see the README).
    checks.append(("host lost mid-transaction does not stall the sweeper",
                   None if stuck["sweep_blocked"] else True, detail))
    return checks


def _drain_phase(net: HostNetwork, env: dict[str, str], log_dir: Path, app,
                 host_counts: list[int], tasks: int, trials: int) -> list[dict[str, Any]]:
    """Drain runs for each host count; keeps the best of ``trials`` (others share the CPU)."""
    db, celery_app = app.extensions["hark"]["db"], app.extensions["hark"]["celery"]
    runs = []
    for count in host_counts:
        attempts = []
        for _ in range(trials):
            run = drain(net, count, settings_env=dict(env, **DRAIN_SETTINGS), log_dir=log_dir,
                        db=db, celery_app=celery_app, tasks=tasks, seconds=SLEEP_S,
                        concurrency=DRAIN_CONCURRENCY)
            print(f"  drain, {count} host(s): {run['tasks_per_s']} tasks/s (mean task "
                  f"{run['mean_task_s']}s, gap {run['mean_gap_s']}s, our CPU "
                  f"{run['cpu_busy']:.0%}, other jobs {run['other_busy']:.0%})", flush=True)
            attempts.append(run)
        best = max(attempts, key=lambda r: r["tasks_per_s"])
        best["trials"] = [r["tasks_per_s"] for r in attempts]
        runs.append(best)
    base = runs[0]["tasks_per_s"] / runs[0]["hosts"]
    for run in runs:
        run["speedup"] = round(run["tasks_per_s"] / runs[0]["tasks_per_s"], 2)
        run["scaling_efficiency"] = round(run["tasks_per_s"] / (base * run["hosts"]), 3)
        run["of_ideal"] = round(run["tasks_per_s"] / run["ideal_tasks_per_s"], 3)
    return runs


def main() -> int:
    reason = check_available()
    if reason:
        print(f"multihost: skipped ({reason})")
        return 0
    tasks = int(os.environ.get("FAULTS_DRAIN_TASKS", "400"))
    trials = int(os.environ.get("FAULTS_DRAIN_TRIALS", "2"))
    host_counts = [int(n) for n in os.environ.get("FAULTS_DRAIN_HOSTS", "1,2,4").split(",")]
    log_dir = Path(tempfile.mkdtemp(prefix="hark-faults-logs-"))
    results: dict[str, Any] = {"machine": {"cpus": psutil.cpu_count(),
                                           "hostname": socket.gethostname()}}
    with platform(**CUT_SETTINGS) as env:
        os.environ.update(env)  # the sweeper and the app in this process read it
        from app import create_app
        from core.keys import create_key

        app = create_app(Settings.from_env())
        db = app.extensions["hark"]["db"]
        with db.transaction() as session:
            _, key = create_key(session, name="faults", owner="faults")
        services = [(u.hostname, u.port) for u in map(urlsplit, (env["DATABASE_URL"],
                                                                  env["BROKER_URL"]))]
        try:
            with HostNetwork(max(4, *host_counts), services) as net:
                print(f"multihost: {len(net.hosts)} hosts ("
                      + ", ".join(f"{h.name}={h.address}" for h in net.hosts)
                      + f"); worker logs in {log_dir}", flush=True)
                checks = _cut_phase(net, env, log_dir, app, {"x-api-key": key}, results)
                print("\ncut and recover:")
                _print_checks(checks)
                print()
                runs = results["drain"] = _drain_phase(net, env, log_dir, app, host_counts,
                                                       tasks, trials)
                checks.append(("drain: every task completed",
                               all(r["failed"] == 0 for r in runs),
                               f"{len(runs) * trials * tasks} tasks"))
        finally:
            app.extensions["hark"]["waiter"].close()
            db.dispose()
    print(f"\ndrain of {tasks} queued sleep tasks ({SLEEP_S}s each), "
          f"WORKER_CONCURRENCY={DRAIN_CONCURRENCY} per host, {psutil.cpu_count()} CPUs, "
          f"best of {trials}:")
    _print_table(runs)
    results["checks"] = [{"check": c, "ok": ok, "detail": d} for c, ok, d in checks]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, default=str))
    print(f"\nwrote {RESULTS.relative_to(ROOT)}")
    return 0 if all(ok is not False for _, ok, _ in checks) else 1


def _event_summary(report: CutReport) -> str:
    totals: Counter[str] = Counter()
    for counts in report.events.values():
        totals.update(counts)
    return ", ".join(f"{event} x{totals[event]}" for event in EVENTS)


if __name__ == "__main__":
    raise SystemExit(main())
