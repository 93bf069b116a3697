"""Worker hosts on other machines, for real: network namespaces, one link cut mid-task.

Two test hosts (:mod:`bench.faults.netns`) each run ``python -m workers.start`` against this
session's PostgreSQL and Redis, reached through forwarders on the host's gateway, exactly
as a worker on another machine would. A task runs on one host; that host's link goes
down; the sweeper (HEARTBEAT_TIMEOUT=3, SWEEP_INTERVAL=1 in tests) declares the task
``not_finished`` and the other host re-runs it; when the link returns, the first worker's
late writes are refused (fenced by attempt) and the task completes once.

Needs root and ``ip netns`` (skipped otherwise; CI runs it as root). ``make faults`` runs the
longer scenario and the drain-rate measurement (``bench/faults/multihost.py``).
"""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

import pytest

from bench.faults.multihost import (
    RESCUE_SLACK_S,
    SLEEP,
    SweepLoop,
    cut_mid_task,
    node_name,
    start_host_workers,
    stop_workers,
    task_rows,
)
from bench.faults.netns import HostNetwork, check_available
from tests.support import wait_for


@pytest.fixture()
def hosts(settings_env):
    """Two test hosts whose gateways forward to this session's database and broker."""
    reason = check_available()
    if reason:
        pytest.skip(f"multi-host test {reason}")
    urls = [urlsplit(settings_env[k]) for k in ("DATABASE_URL", "BROKER_URL")]
    with HostNetwork(2, services=[(u.hostname, u.port) for u in urls]) as net:
        yield net


def test_cut_host_task_reruns_elsewhere_and_completes_once(app, db, client, auth, settings,
                                                           settings_env, log_dir, hosts):
    # A queue of this test's own, so no other worker of the session takes its tasks.
    queue = f"mh-{uuid.uuid4().hex[:8]}"
    workers = start_host_workers(hosts.hosts, settings_env, log_dir, WORKER_CONCURRENCY="1",
                                 WORKER_QUEUES=queue,
                                 per_host={2: {"WORKER_QUEUES": f"{queue},{queue}.h2"}})
    try:
        # Routing: a queue only h2 consumes sends the task to h2.
        routed = client.post(SLEEP + "?defer=true", headers=auth,
                             json={"seconds": 0, "queue": f"{queue}.h2"}).get_json()["task_id"]
        row = wait_for(lambda: (r := task_rows(db, [routed])[routed]).status == "completed"
                       and r, message="the routed task")
        assert node_name(row.worker) == "h2"

        with SweepLoop(db, app.extensions["hark"]["celery"], settings) as loop:
            report = cut_mid_task(hosts, workers, client=client, headers=auth, db=db,
                                  settings=settings, queue=queue, tasks=1, seconds=8.0)
    finally:
        stop_workers(workers)

    assert loop.errors == []
    (task_id,) = report.cut_tasks
    final = report.final[task_id]
    # Re-run once, elsewhere, and its result is the rescuer's.
    assert (final["status"], final["attempts"], final["retry_count"]) == ("completed", 2, 1)
    assert final["worker"] != report.victim
    assert final["result_worker"] == final["worker"] == report.rescuers[task_id]
    # Within the heartbeat timeout plus one sweep of the cut (and the claim's round trips).
    bound = settings.heartbeat_timeout + settings.sweep_interval
    assert report.rescue_delay_s[task_id] <= bound + RESCUE_SLACK_S, report
    # Back on the network (well before the re-run ends), the cut worker's write was refused
    # although the task was running: refused by attempt, not by status.
    victim_log = workers[node_name(report.victim)].output()[-3000:]
    assert report.victim_outcome[task_id] in ("heartbeat refused", "completion refused"), (
        victim_log)
    assert report.refused_during_rerun[task_id], victim_log
    # The audit trail: two runs started, one declared lost, one completion.
    assert report.events[task_id] == {"started": 2, "not_finished": 1, "completed": 1,
                                      "failed": 0}
    assert report.failures() == []
