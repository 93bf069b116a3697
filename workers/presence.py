"""Each worker process announces itself: device, queues, current task, the models it can
run (the API accepts their union) and those it has loaded, and cumulative counters,
upserted into ``worker_presence`` every heartbeat interval.

``GET /workers`` and ``/metrics`` read these rows, so they see every worker on every
machine through the database alone.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import uuid
from typing import Any

from core.db import Database
from core.models import WorkerPresence, utcnow

log = logging.getLogger(__name__)

RUN_BUCKETS = [0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800]


class Presence:
    def __init__(self, db: Database, interval: float) -> None:
        self.db = db
        self.interval = interval
        self.node = os.environ.get("HARK_WORKER_NAME") or f"worker@{socket.gethostname()}"
        self.id = f"{self.node}:{os.getpid()}"
        self.role = os.environ.get("HARK_WORKER_ROLE", "model")
        self.queues = [q for q in os.environ.get("HARK_WORKER_QUEUES", "").split(",") if q]
        self.device = os.environ.get("WORKER_DEVICE", "cpu")
        self._running: list[uuid.UUID] = []  # a batching worker runs several at once
        self.started_at = utcnow()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._stats: dict[str, Any] = {
            "tasks": {}, "run_seconds": {"buckets": RUN_BUCKETS,
                                         "counts": [0] * (len(RUN_BUCKETS) + 1),
                                         "sum": 0.0, "count": 0}}
        self._thread = threading.Thread(target=self._run, daemon=True, name="hark-presence")

    def start(self) -> Presence:
        self.beat()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        try:
            with self.db.transaction() as session:
                row = session.get(WorkerPresence, self.id)
                if row is not None:
                    session.delete(row)
        except Exception as exc:  # shutting down; the row just goes stale
            log.debug("presence cleanup failed: %s", exc)

    @property
    def current_task(self) -> uuid.UUID | None:
        """The latest started of the tasks running now (reported by the next beat)."""
        with self._lock:
            return self._running[-1] if self._running else None

    def task_started(self, task_id: uuid.UUID) -> None:
        with self._lock:
            self._running.append(task_id)

    def task_finished(self, task_id: uuid.UUID, outcome: str, seconds: float) -> None:
        with self._lock:
            if task_id in self._running:
                self._running.remove(task_id)
            tasks = self._stats["tasks"]
            tasks[outcome] = tasks.get(outcome, 0) + 1
            run = self._stats["run_seconds"]
            index = next((i for i, b in enumerate(RUN_BUCKETS) if seconds <= b),
                         len(RUN_BUCKETS))
            run["counts"][index] += 1
            run["sum"] += seconds
            run["count"] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            stats = {"tasks": dict(self._stats["tasks"]),
                     "run_seconds": {**self._stats["run_seconds"],
                                     "counts": list(self._stats["run_seconds"]["counts"])}}
        models = loaded_models()
        stats["model_load_seconds"] = models
        stats["gpu_memory_bytes"] = gpu_memory_bytes()
        stats["cuda_visible_devices"] = os.environ.get("CUDA_VISIBLE_DEVICES")  # the pinning
        pools = sys.modules.get("workers.asr.window_pool")
        if pools is not None:
            stats["decoding"] = pools.decode_totals()
        return {"models": sorted(models), "available": self.available(), "stats": stats}

    def available(self) -> list[str]:
        """Models a model worker can run (its registry); none for an events worker."""
        if self.role != "model":
            return []
        from workers.asr.registry import available_models

        try:
            return available_models()
        except RuntimeError as exc:  # an unreadable MODELS_REGISTRY: report none
            log.warning("model registry: %s", exc)
            return []

    def beat(self) -> None:
        snap = self.snapshot()
        row = WorkerPresence(
            id=self.id, node=self.node, host=socket.gethostname(), pid=os.getpid(),
            role=self.role, device=self.device, queues=self.queues, models=snap["models"],
            available=snap["available"],
            current_task=self.current_task, stats=snap["stats"], started_at=self.started_at,
            last_seen=utcnow())
        try:
            with self.db.transaction() as session:
                session.merge(row)
        except Exception as exc:  # the database may be briefly down
            log.debug("presence update failed: %s", exc)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.beat()
            except Exception:  # one bad beat must not silence this process for good
                log.exception("presence beat failed")


def loaded_models() -> dict[str, float]:
    """Models loaded in this process, with their load time in seconds."""
    models: dict[str, float] = {}
    # A module another thread is still importing may lack its attributes yet.
    load_times = getattr(sys.modules.get("workers.asr.transcribe"), "model_load_times", None)
    if load_times is not None:
        for (name, _device), seconds in load_times().items():
            models[name] = round(seconds, 3)
    embedded = getattr(sys.modules.get("workers.embedding"), "loaded_models", None)
    if embedded is not None:
        models.update(embedded())
    return models


def gpu_memory_bytes() -> int | None:
    """Memory torch holds on this process's GPU; None without CUDA (or while another
    thread is still importing torch)."""
    cuda = getattr(sys.modules.get("torch"), "cuda", None)
    try:
        if cuda is None or not cuda.is_available() or not cuda.is_initialized():
            return None
        return int(cuda.memory_allocated())
    except Exception:
        return None
