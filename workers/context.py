"""Per-process worker state: settings, database, device and loaded models.

Created lazily in the process that uses it, so a prefork child never inherits the
parent's database connections or a CUDA context.
"""

from __future__ import annotations

import logging
import os
import threading

from core.config import Settings
from core.db import Database

log = logging.getLogger(__name__)

_settings: Settings | None = None
_database: Database | None = None
_lock = threading.Lock()
_presence = None
_local = threading.local()


def settings() -> Settings:
    global _settings
    if _settings is None:
        _settings = Settings.from_env()
    return _settings


def database() -> Database:
    global _database
    if _database is None:
        with _lock:  # thread-pool workers (events role) start many threads at once
            if _database is None:
                _database = Database().configure(settings().database_url)
    return _database


def torch_device() -> str:
    """The device this process runs models on ("cpu" or "cuda:0" after pinning)."""
    return os.environ.get("HARK_TORCH_DEVICE", "cpu")


def device_label() -> str:
    """The device as the operator named it (e.g. "cuda:1"), recorded on each task."""
    return os.environ.get("WORKER_DEVICE", "cpu")


def status_moves():
    """This thread's :class:`~workers.status_moves.StatusMoves`: its database connection
    is kept from one task to the next."""
    from workers.status_moves import StatusMoves

    moves = getattr(_local, "moves", None)
    if moves is None or moves.db is not database():
        moves = _local.moves = StatusMoves(database())
    return moves


def presence():
    """This process's :class:`~workers.presence.Presence`, once started."""
    return _presence


def start_presence() -> None:
    global _presence
    from workers.presence import Presence

    if _presence is None:
        _presence = Presence(database(), settings().heartbeat_interval).start()


def stop_presence() -> None:
    if _presence is not None:
        _presence.stop()


_relay = None


def start_relay() -> None:
    """Start this process's webhook delivery relay (events workers)."""
    global _relay
    from workers.relay import DeliveryRelay
    from workers.webhook_tasks import delivery_settings

    if _relay is None:
        concurrency = int(os.environ.get("WORKER_CONCURRENCY") or 16)
        _relay = DeliveryRelay(database(), delivery_settings(), concurrency).start()


def stop_relay() -> None:
    global _relay
    if _relay is not None:
        _relay.stop()
        _relay = None


def set_threads() -> None:
    """Give this pool process its share of the CPUs for torch (``core.config.worker_threads``)."""
    from core.config import worker_threads

    try:
        import torch
    except ImportError:  # a host without the model stack runs no model
        return
    threads = worker_threads()
    torch.set_num_threads(threads)
    log.info("pool process %d: %d torch threads", os.getpid(), threads)


def after_fork() -> None:
    """Runs in each pool child: fresh connections, announce, warm the configured models."""
    global _database, _presence
    _local.__dict__.pop("moves", None)  # the parent's connection is not ours
    if _database is not None:
        _database.dispose()
        _database = None
    _presence = None
    start_in_process()


def start_in_process() -> None:
    """Set torch's threads, announce this process and warm the configured models (a
    prefork child after :func:`after_fork`, or a thread-pool worker once ready)."""
    set_threads()
    start_presence()
    preload = [m for m in os.environ.get("PRELOAD_MODELS", "").split(",") if m.strip()]
    if preload:
        from workers.models import preload_models

        preload_models(preload, torch_device())
