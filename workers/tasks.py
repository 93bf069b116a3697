"""Celery tasks: thin wrappers that pass ids to plain functions."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict

from celery import current_app, shared_task
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from core.dispatch import EXECUTE_TASK, SWEEP_TASK
from workers import context, retention, runner, sweeper
from workers.retention import RETENTION_TASK

log = logging.getLogger(__name__)


# Pauses between attempts while the database is unreachable (about a minute in all).
DATABASE_RETRY_PAUSES = (0.5, 1, 2, 4, 8, 15, 30)


@shared_task(name=EXECUTE_TASK, bind=True, ignore_result=True)
def execute_task(self, task_id: str, notify: bool | str = True) -> str:
    """Run platform task ``task_id`` (the Celery task id is the same id). ``notify``:
    where to announce its end to waiting API requests (a sync submission names its API
    process's channel; deferred submissions send False).

    While the database is unreachable the pool process waits and tries again, holding
    the unacknowledged message, instead of dropping it: a short outage delays tasks, it
    does not turn the queue into re-runs. A try that fails after the claim finds the task
    already ``running`` and skips it (the sweeper re-runs it after ``HEARTBEAT_TIMEOUT``).
    """
    for pause in (*DATABASE_RETRY_PAUSES, None):
        try:
            return runner.execute(
                context.database(),
                task_id,
                worker=self.request.hostname or "unknown",
                device=context.device_label(),
                torch_device=context.torch_device(),
                settings=context.settings(),
                moves=context.status_moves(),
                notify=notify,
            )
        except (OperationalError, PoolTimeout) as exc:
            if pause is None:
                raise
            log.warning("database unreachable for task %s (%s); retrying in %gs", task_id,
                        type(exc).__name__, pause)
            time.sleep(pause)
    raise AssertionError("unreachable")


@shared_task(name=SWEEP_TASK, ignore_result=True)
def sweep_task() -> dict:
    """Repair lost publishes and dead workers' tasks."""
    return asdict(sweeper.sweep(context.database(), current_app, context.settings()))


@shared_task(name=RETENTION_TASK, ignore_result=True)
def retention_task() -> dict:
    """Delete expired finished tasks and stored media (see :mod:`workers.retention`)."""
    return retention.purge_expired(context.database(), context.settings())
