"""GPU pinning and routing, shown on CPU: a worker for cuda:1 sees only GPU 1."""

import pytest

from tests.support import start_worker, wait_for
from workers.device import DeviceSpec, parse_device, pin_device, queues_for
from workers.start import model_pool, worker_argv


@pytest.mark.parametrize("value,spec", [("cpu", DeviceSpec("cpu")), ("cuda", DeviceSpec("cuda", 0)),
                                        ("cuda:3", DeviceSpec("cuda", 3)),
                                        ("GPU:1", DeviceSpec("cuda", 1))])
def test_parse_device(value, spec):
    assert parse_device(value) == spec


def test_bad_device_is_refused():
    with pytest.raises(ValueError):
        parse_device("tpu:0")


def test_pinning_sets_visible_devices():
    env = {}
    assert pin_device(DeviceSpec("cuda", 2), env) == "cuda:0"
    assert env["CUDA_VISIBLE_DEVICES"] == "2" and env["WORKER_DEVICE"] == "cuda:2"
    env = {}
    assert pin_device(DeviceSpec("cpu"), env) == "cpu" and env["CUDA_VISIBLE_DEVICES"] == ""


def test_queues_per_device():
    assert queues_for(DeviceSpec("cpu")) == ["cpu", "maintenance"]
    assert queues_for(DeviceSpec("cuda", 1), "special") == ["gpu", "gpu.1", "maintenance",
                                                           "special"]


def test_worker_argv_pins_before_start():
    env = {"WORKER_DEVICE": "cuda:1", "WORKER_CONCURRENCY": "1"}
    args = worker_argv(env)
    assert env["CUDA_VISIBLE_DEVICES"] == "1"
    assert args[args.index("--queues") + 1] == "gpu,gpu.1,maintenance"
    assert "--pool" in args and "prefork" in args


@pytest.mark.parametrize(("env", "pool"), [
    ({}, ("threads", "8")),  # the default: one process batching 8 tasks
    ({"WORKER_BATCH_TASKS": "4"}, ("threads", "4")),
    ({"WORKER_CONCURRENCY": "3"}, ("prefork", "3")),  # processes of one task each
    ({"WORKER_BATCH_TASKS": "1"}, ("prefork", "1")),
    ({"WORKER_BATCH_TASKS": "1", "WORKER_CONCURRENCY": "2"}, ("prefork", "2")),
    ({"WORKER_BATCH_TASKS": "4", "WORKER_CONCURRENCY": "1"}, ("threads", "4")),
])
def test_model_pool_batches_unless_told_to_run_processes(env, pool):
    assert model_pool(env) == pool
    args = worker_argv(dict(env))
    assert (args[args.index("--pool") + 1], args[args.index("--concurrency") + 1]) == pool


@pytest.mark.parametrize("env", [{"WORKER_BATCH_TASKS": "4", "WORKER_CONCURRENCY": "2"},
                                 {"WORKER_BATCH_TASKS": "0"}, {"WORKER_BATCH_TASKS": "x"}])
def test_model_pool_refuses_contradictions(env):
    with pytest.raises(ValueError, match="WORKER_"):
        model_pool(env)


def test_tasks_route_to_the_pinned_worker(client, auth, settings_env, log_dir):
    gpu1 = start_worker(settings_env, log_dir, name="gpu1", WORKER_DEVICE="cuda:1",
                        WORKER_CONCURRENCY="1")
    try:
        by_device = client.post("/diagnostics/sleep?defer=true",
                                json={"seconds": 0, "device": "gpu"}, headers=auth)
        by_queue = client.post("/diagnostics/sleep?defer=true",
                               json={"seconds": 0, "queue": "gpu.1"}, headers=auth)
        for response, queue in ((by_device, "gpu"), (by_queue, "gpu.1")):
            task_id = response.get_json()["task_id"]
            done = wait_for(lambda t=task_id: (b := client.get(f"/tasks/{t}", headers=auth)
                                               .get_json())["status"] == "completed" and b)
            assert done["queue"] == queue
            assert done["device"] == "cuda:1"
            assert done["worker"].startswith("gpu1@")
            assert done["result"]["cuda_visible_devices"] == "1"
    finally:
        gpu1.stop()
