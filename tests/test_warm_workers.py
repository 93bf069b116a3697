"""Models load once per worker process, after fork, and stay loaded."""

import json
import uuid

import pytest
from sqlalchemy import select

from bench.speech import OTHER_SENTENCES, WEATHER, espeak_available, make_speech_clip
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
    monkeypatch.setenv("WORKER_CONCURRENCY", "1")
    monkeypatch.setenv("HARK_WORKER_ROLE", "embed")  # latency-bound single queries
    assert worker_threads() == 1
    monkeypatch.setenv("WORKER_THREADS", "3")
    assert worker_threads() == 3
    monkeypatch.delenv("WORKER_THREADS")
    monkeypatch.delenv("HARK_WORKER_ROLE")

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


def test_batching_worker_runs_queued_tasks_together_on_one_model(client, auth, settings_env,
                                                                  log_dir, tmp_path, db,
                                                                  admin_key):
    """The default model worker (WORKER_BATCH_TASKS threads, one process, one copy of the
    model) takes several queued tasks at once: they run side by side and each completes
    with its own transcript (their windows share batches: tests/asr/test_window_pool.py)."""
    from core.models import Task
    from tests.support import wait_for

    texts = [WEATHER, *OTHER_SENTENCES[:3]]
    ids = []
    for k, text in enumerate(texts):  # queued before the worker starts: it finds all four
        clip = make_speech_clip(tmp_path / f"c{k}.wav", text)
        with open(clip, "rb") as fh:
            answer = client.post("/analyze?defer=true", headers=auth,
                                 data={"file": (fh, f"c{k}.wav"), "queue": "batching"})
        assert answer.status_code == 202, answer.get_json()
        ids.append(answer.get_json()["task_id"])
    worker = start_worker(settings_env, log_dir, name="batching", WORKER_CONCURRENCY="",
                          WORKER_BATCH_TASKS="4", WORKER_QUEUES="batching",
                          PRELOAD_MODELS="tiny.en")
    try:
        def finished():
            found = [client.get(f"/tasks/{i}", headers=auth).get_json() for i in ids]
            return all(t["status"] == "completed" for t in found) and found

        tasks = wait_for(finished, timeout=180, message="the four tasks")

        def decoded():  # the worker's next beat reports its decoding batches
            text = client.get("/metrics", headers={"Authorization": f"Bearer {admin_key}"}) \
                .get_data(as_text=True)
            found = {name: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                     for name in ("hark_decode_batches", "hark_decode_windows")
                     if line.startswith(name + "{") and "batching@" in line}
            return len(found) == 2 and found["hark_decode_windows"] >= 4 and found

        decoding = wait_for(decoded, timeout=30, message="decoding counts in /metrics")
        log = worker.output()
    finally:
        worker.stop()
    for task, text in zip(tasks, texts, strict=True):
        said = {w.strip(".,").lower() for w in text.split()}
        heard = {w.strip(".,!?").lower() for w in task["result"]["text"].split()}
        assert len(said & heard) >= len(said) // 2, (text, task["result"]["text"])
    with db.session() as session:
        rows = session.scalars(select(Task).where(Task.id.in_([uuid.UUID(i) for i in ids])))
        rows = list(rows)
    assert len(rows) == 4
    # one window each; announced tasks' windows were gathered into shared batches
    assert decoding["hark_decode_batches"] < decoding["hark_decode_windows"], decoding
    assert max(r.started_at for r in rows) < min(r.completed_at for r in rows)  # side by side
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert len([e for e in lines if e["message"].startswith("model tiny.en loaded")]) == 1
    assert {e["process"] for e in lines if "torch threads" in e["message"]} == {"MainProcess"}
