"""Start a worker pinned to one device: ``WORKER_DEVICE=cuda:1 python -m workers.start``.

Environment: ``WORKER_ROLE`` (``model``, the default, ``events`` or ``embed``), ``WORKER_DEVICE``
(cpu | cuda:N), ``WORKER_QUEUES`` (extra queues), ``WORKER_BATCH_TASKS`` (model role: how
many tasks one process takes at once, decoding their windows together; default 8),
``WORKER_CONCURRENCY`` (pool size: for the model and embed roles, processes of one task
each, which for the model role turns batching off; 16 threads for events),
``WORKER_NAME`` (node name), ``PRELOAD_MODELS`` (models to load in each pool process at start).

A model worker with ``WORKER_BATCH_TASKS`` above 1 runs that many threads around one copy
of each model (:mod:`workers.asr.window_pool`): each thread runs its own task, and their
windows share decoding batches.

An ``events`` worker runs no models: it sends webhooks (queue ``webhooks``) and runs
maintenance, in a pool of threads, so slow subscribers wait on sockets, not on GPUs.
An ``embed`` worker embeds search queries (queue ``embed`` only, the embedding model
loaded in each pool process at start), so a search never waits behind a transcription.
"""

from __future__ import annotations

import os
import socket
import sys

from core.embed_queue import EMBED_QUEUE
from workers.device import events_queues, parse_device, pin_device, queues_for

ROLES = ("model", "events", "embed")
DEFAULT_BATCH_TASKS = 8


def model_pool(environ=os.environ) -> tuple[str, str]:
    """The model role's (pool, concurrency): ``WORKER_BATCH_TASKS`` threads sharing one
    copy of each model (the default), or, when only ``WORKER_CONCURRENCY`` is set (or
    ``WORKER_BATCH_TASKS=1``), that many processes of one task each."""
    batch, concurrency = environ.get("WORKER_BATCH_TASKS"), environ.get("WORKER_CONCURRENCY")
    if not batch:
        if concurrency:
            return "prefork", concurrency
        batch = str(DEFAULT_BATCH_TASKS)
    if not batch.isdigit() or int(batch) < 1:
        raise ValueError(f"WORKER_BATCH_TASKS must be a positive integer, got {batch!r}")
    if int(batch) == 1:
        return "prefork", concurrency or "1"
    if concurrency not in (None, "", "1"):
        raise ValueError("WORKER_CONCURRENCY > 1 needs WORKER_BATCH_TASKS=1 (processes of one "
                         "task each); with batching one process runs WORKER_BATCH_TASKS tasks")
    return "threads", batch


def worker_argv(environ=os.environ) -> list[str]:
    """Pin the device in ``environ`` and build the ``celery worker`` arguments."""
    role = (environ.get("WORKER_ROLE") or "model").strip().lower()
    if role not in ROLES:
        raise ValueError(f"WORKER_ROLE must be one of {', '.join(ROLES)}, got {role!r}")
    if role == "events":
        pin_device(parse_device("cpu"), environ)  # never opens a GPU context
        queues = events_queues(environ.get("WORKER_QUEUES", ""))
        name = environ.get("WORKER_NAME") or "events@%h"
        pool, concurrency = "threads", environ.get("WORKER_CONCURRENCY") or "16"
    elif role == "embed":
        spec = parse_device(environ.get("WORKER_DEVICE", "cpu"))
        pin_device(spec, environ)
        queues = [EMBED_QUEUE]
        name = environ.get("WORKER_NAME") or "embed@%h"
        pool, concurrency = "prefork", environ.get("WORKER_CONCURRENCY", "1")
        environ.setdefault("PRELOAD_MODELS", "minilm")
    else:
        spec = parse_device(environ.get("WORKER_DEVICE", "cpu"))
        pin_device(spec, environ)
        queues = queues_for(spec, environ.get("WORKER_QUEUES", ""))
        name = environ.get("WORKER_NAME") or f"{spec.label.replace(':', '')}@%h"
        pool, concurrency = model_pool(environ)
    # Pool processes read these to announce themselves (GET /workers, /metrics).
    environ["HARK_WORKER_ROLE"] = role
    environ["HARK_WORKER_POOL"] = pool
    environ["HARK_WORKER_QUEUES"] = ",".join(queues)
    environ["HARK_WORKER_NAME"] = name.replace("%h", socket.gethostname())
    return [
        "worker",
        "--queues",
        ",".join(queues),
        "--concurrency",
        concurrency,
        "--hostname",
        name,
        "--loglevel",
        environ.get("LOG_LEVEL", "INFO"),
        "--pool",
        pool,
    ]


def main(argv: list[str] | None = None) -> None:
    args = worker_argv() + list(sys.argv[1:] if argv is None else argv)
    from workers.celery_app import app  # after pinning: nothing has touched CUDA yet

    app.worker_main(args)


if __name__ == "__main__":
    main()
