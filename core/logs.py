"""Structured logs: one JSON object per line, with the task id and owner on every line
logged while a task is being handled (``LOG_FORMAT=json``, the default; ``text`` for
humans at a terminal)."""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

_task: contextvars.ContextVar[dict | None] = contextvars.ContextVar("hark_task", default=None)


@contextmanager
def task_context(task_id: object, owner: str | None) -> Iterator[None]:
    """Tag every log line in this block (and threads started with its context)."""
    token = _task.set({"task_id": str(task_id), "owner": owner})
    try:
        yield
    finally:
        _task.reset(token)


CELERY_PER_TASK_LOGGERS = ("celery.worker.strategy", "celery.app.trace")
"""The loggers of Celery's per-task INFO lines, quiet below ``LOG_LEVEL=DEBUG``."""

_CELERY_TASK = re.compile(r"hark\.[a-z_.]+\[([0-9a-f-]{36})\]")


class TaskContextFilter(logging.Filter):
    """Adds ``task_id``/``owner`` from the bound context, or the id from Celery's own
    "Task hark.execute[<id>] received" lines (the Celery task id is the task id)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if hasattr(record, "task_id"):
            return True
        bound = _task.get()
        if bound:
            record.task_id, record.owner = bound["task_id"], bound["owner"]
        elif record.name.startswith("celery") and isinstance(record.msg, str):
            match = _CELERY_TASK.search(record.getMessage())
            if match:
                record.task_id = match.group(1)
        return True


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.processName,
            "pid": record.process,
        }
        for key in ("task_id", "owner"):
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(fmt: str | None = None, level: str | None = None) -> None:
    """Install one stderr handler on the root logger (idempotent)."""
    fmt = (fmt or os.environ.get("LOG_FORMAT") or "json").lower()
    level = (level or os.environ.get("LOG_LEVEL") or "INFO").upper()
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_hark", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._hark = True  # type: ignore[attr-defined]
    handler.addFilter(TaskContextFilter())
    if fmt == "json":
        handler.setFormatter(JSONFormatter())
    else:
        handler.setFormatter(logging.Formatter(
            "[%(asctime)s: %(levelname)s/%(processName)s] %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    # Celery's "Task ... received" / "... succeeded in" repeat, per task, what the runner
    # logs as "started" / "completed": two JSON lines per task saved (about 5% of a
    # trivial task's worker CPU); they come back at DEBUG. Errors are still logged.
    quiet = logging.NOTSET if root.level <= logging.DEBUG else logging.WARNING
    for name in CELERY_PER_TASK_LOGGERS:
        logging.getLogger(name).setLevel(quiet)
