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
