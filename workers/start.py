"""Start a worker pinned to one device: ``WORKER_DEVICE=cuda:1 python -m workers.start``.

Environment: ``WORKER_DEVICE`` (cpu | cuda:N), ``WORKER_QUEUES`` (extra queues),
``WORKER_CONCURRENCY`` (pool size, default 1), ``WORKER_NAME`` (node name),
``PRELOAD_MODELS`` (models to load in each pool process at start).
"""

from __future__ import annotations

import os
import sys

from workers.device import parse_device, pin_device, queues_for


def worker_argv(environ=os.environ) -> list[str]:
    """Pin the device in ``environ`` and build the ``celery worker`` arguments."""
    spec = parse_device(environ.get("WORKER_DEVICE", "cpu"))
    pin_device(spec, environ)
    queues = queues_for(spec, environ.get("WORKER_QUEUES", ""))
    name = environ.get("WORKER_NAME") or f"{spec.label.replace(':', '')}@%h"
    return [
        "worker",
        "--queues",
        ",".join(queues),
        "--concurrency",
        environ.get("WORKER_CONCURRENCY", "1"),
        "--hostname",
        name,
        "--loglevel",
        environ.get("LOG_LEVEL", "INFO"),
        "--pool",
        "prefork",
    ]


def main(argv: list[str] | None = None) -> None:
    args = worker_argv() + list(sys.argv[1:] if argv is None else argv)
    from workers.celery_app import app  # after pinning: nothing has touched CUDA yet

    app.worker_main(args)


if __name__ == "__main__":
    main()
