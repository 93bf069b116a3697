"""Models load once per worker process, after fork, and stay loaded."""

import json

import pytest

from bench.speech import WEATHER, espeak_available, make_speech_clip
from tests.support import start_worker

pytestmark = pytest.mark.skipif(not espeak_available(), reason="espeak-ng not installed")


def test_model_preloaded_once_per_process_and_reused(client, auth, settings_env, log_dir,
                                                     tmp_path):
    clip = make_speech_clip(tmp_path / "w.wav", WEATHER)
    warm = start_worker(settings_env, log_dir, name="warm", WORKER_CONCURRENCY="1",
                        WORKER_QUEUES="warm", PRELOAD_MODELS="tiny.en")
    try:
        for _ in range(2):
            with open(clip, "rb") as fh:
                task = client.post("/analyze?timeout=120", headers=auth,
                                   data={"file": (fh, "w.wav"), "queue": "warm"}).get_json()
            assert task["status"] == "completed", task
        log = warm.output()
    finally:
        warm.stop()
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    loads = [e for e in lines if e["message"].startswith("model tiny.en loaded on cpu")]
    assert len(loads) == 1, log[-2000:]
    assert loads[0]["process"].startswith("ForkPoolWorker")
    # Loaded in the pool child (after fork) before that child started its first task.
    assert log.index("model tiny.en loaded") < log.index("started: /analyze")


def test_pool_processes_share_the_cpus_for_torch(settings_env, log_dir, monkeypatch):
    """Each pool process runs torch on cores / WORKER_CONCURRENCY threads (WORKER_THREADS
    overrides), so two processes do not both spin every core."""
    import os

    from core.config import worker_threads
    from tests.support import wait_for

    monkeypatch.delenv("WORKER_THREADS", raising=False)
    monkeypatch.setenv("WORKER_CONCURRENCY", "2")
    cpus = len(os.sched_getaffinity(0))
    assert worker_threads() == max(1, cpus // 2)
    monkeypatch.setenv("WORKER_CONCURRENCY", str(cpus * 4))
    assert worker_threads() == 1
    monkeypatch.setenv("WORKER_THREADS", "3")
    assert worker_threads() == 3
    monkeypatch.delenv("WORKER_THREADS")

    pool = start_worker(settings_env, log_dir, name="threads", WORKER_CONCURRENCY="2",
                        WORKER_QUEUES="threads")
    try:
        def lines():
            return [json.loads(line) for line in pool.output().splitlines()
                    if line.startswith("{") and "torch threads" in line]

        wait_for(lambda: len(lines()) == 2, timeout=60, message="both pool processes")
    finally:
        pool.stop()
    assert {e["message"].split(": ")[1] for e in lines()} == {f"{max(1, cpus // 2)} torch threads"}
    assert {e["process"][:14] for e in lines()} == {"ForkPoolWorker"}
