"""Parts (b) and (c) of the GPU check: the platform end to end on one device.

A private PostgreSQL and Redis from the carried wheels (``core.embedded``), the API
in-process, and one model worker started with ``WORKER_DEVICE=cuda:0`` (the dry run:
``cpu``) that preloads the synthetic model (``bench/gpu_synthetic.py``) from a checkpoint
file named in a ``MODELS_REGISTRY``. ``n`` clips of 30 s are posted at once (a barrier
releases the requests together); the figure is audio seconds per wall second from the
release to the last completion. Then what the worker reports: its presence row (device,
models, the memory torch holds) and, on CUDA, ``nvidia-smi``'s view of its process (the
GPU it runs on and the memory it holds there, CUDA context included).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import psycopg

SAMPLE_RATE = 16000


def nvidia_smi_apps() -> list[dict]:
    """Compute processes on the GPUs: pid, GPU index, MiB held (empty without the tool)."""
    try:
        gpus = subprocess.run(["nvidia-smi", "--query-gpu=index,uuid", "--format=csv,noheader"],
                              capture_output=True, text=True, check=True).stdout
        apps = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,gpu_uuid,used_memory",
                               "--format=csv,noheader,nounits"],
                              capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    index = {u.strip(): int(i) for i, u in (line.split(",") for line in gpus.splitlines() if line)}
    rows = []
    for line in apps.splitlines():
        try:
            pid, uuid, mib = (x.strip() for x in line.split(","))
            rows.append({"pid": int(pid), "gpu": index.get(uuid), "used_mib": float(mib)})
        except ValueError:  # a blank line, or "[N/A]" where the driver does not say
            continue
    return rows


def run(model_name: str, checkpoint: Path, audios: list[np.ndarray], expected: str,
        device: str, batch: int) -> dict:
    """Post every clip at once to a platform whose one worker runs on ``device``."""
    from bench.corpus import write_wav
    from bench.harness import platform, post_together
    from core.embedded import EmbeddedRedis
    from tests.support import free_port, stop_private_pg

    work = Path(tempfile.mkdtemp(prefix="hark-gpu-platform-"))
    registry = checkpoint.parent / "platform-registry.json"
    registry.write_text(json.dumps({model_name: {"checkpoint": checkpoint.name}}))
    paths = [write_wav(work / f"clip{i}.wav", a) for i, a in enumerate(audios)]
    audio_s = sum(len(a) for a in audios) / SAMPLE_RATE
    redis = EmbeddedRedis(work / "redis", free_port())
    redis.start()
    try:
        with platform(work / "platform", redis_url=redis.url, MODELS_REGISTRY=str(registry),
                      PRELOAD_MODELS=model_name) as bench:
            started = time.perf_counter()
            worker = bench.worker("gpu0", ready_timeout=300, WORKER_DEVICE=device,
                                  WORKER_BATCH_TASKS=str(batch), WORKER_DECODE_BATCH=str(batch))
            ready_s = time.perf_counter() - started
            queue = "cpu" if device == "cpu" else "gpu"
            # no VAD: silero-vad is not carried (the synthetic model ignores the audio anyway)
            fields = {"model": model_name, "language": "en", "queue": queue, "vad": "false"}
            check(post_together(bench, paths[:1], fields, 900)[1], expected)  # warm-up
            seconds, texts = post_together(bench, paths, fields, 900)
            check(texts, expected)
            presence = reported(bench.env["DATABASE_URL"], worker.pid, model_name)
            apps = [a for a in nvidia_smi_apps() if a["pid"] == worker.pid]
            stats = (presence[2] or {}) if presence else {}
            memory = stats.get("gpu_memory_bytes")
            return {"device": device, "clips": len(paths), "audio_s": round(audio_s, 1),
                    "worker_batch_tasks": batch, "worker_ready_s": round(ready_s, 2),
                    "wall_s": round(seconds, 3), "audio_s_per_s": round(audio_s / seconds, 2),
                    "worker_device": presence[0] if presence else None,
                    "worker_models": presence[1] if presence else None,
                    "worker_torch_mib": round(memory / 2**20, 1) if memory else None,
                    "worker_gpus": sorted({a["gpu"] for a in apps}),
                    "worker_nvidia_smi_mib": sum(a["used_mib"] for a in apps) if apps else None,
                    "worker_cuda_visible_devices": stats.get("cuda_visible_devices"),
                    "pinned": pinned(device, presence[0] if presence else None, apps,
                                     stats.get("cuda_visible_devices"))}
    finally:
        redis.stop()
        stop_private_pg()


def reported(database_url: str, pid: int, model_name: str, timeout: float = 30.0):
    """The worker's presence row (device, models, stats) once it lists the model loaded
    (rows are rewritten every heartbeat interval)."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(database_url) as conn:
        while True:
            row = conn.execute("SELECT device, models, stats FROM worker_presence "
                               "WHERE pid = %s", (pid,)).fetchone()
            conn.rollback()
            if (row and model_name in (row[1] or [])) or time.monotonic() > deadline:
                return row
            time.sleep(0.5)


def pinned(device: str, reported: str | None, apps: list[dict],
           visible: str | None) -> bool:
    """Did ``WORKER_DEVICE`` hold: the worker reports that device and, on CUDA, runs on
    that GPU alone (by ``nvidia-smi``; where it does not show processes, as under gVisor,
    by the ``CUDA_VISIBLE_DEVICES`` the worker reports)."""
    if reported != device:
        return False
    if device == "cpu":
        return visible == ""
    index = int(device.partition(":")[2] or 0)
    if apps:
        return {a["gpu"] for a in apps} == {index}
    return visible == str(index)


def check(texts: list[str], expected: str) -> None:
    wrong = [t for t in texts if t.strip() != expected]
    if wrong:
        raise AssertionError(f"the platform's transcript {wrong[0][:80]!r} is not {expected!r}")
