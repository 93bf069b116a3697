"""Celery tasks: thin wrappers that pass ids to plain functions."""

from __future__ import annotations

import logging
import uuid
from dataclasses import asdict

from celery import current_app, shared_task

from core import retention, vector_indexes
from core.dispatch import EXECUTE_TASK, SWEEP_TASK
from core.retention import RETENTION_TASK
from core.search_sql import SearchTuning
from core.task_edits import REEMBED_TASK
from workers import context, runner, sweeper

log = logging.getLogger(__name__)


@shared_task(name=EXECUTE_TASK, bind=True, ignore_result=True)
def execute_task(self, task_id: str, notify: bool | str = True) -> str:
    """Run platform task ``task_id`` (the Celery task id is the same id). ``notify``:
    where to announce its end to waiting API requests (a sync submission names its API
    process's channel; deferred submissions send False).

    While the database is unreachable each status move waits and tries again in place
    (:class:`~workers.status_moves.StatusMoves`), holding the unacknowledged message: a
    short outage delays tasks; it re-runs none and loses no result.
    """
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


@shared_task(name=SWEEP_TASK, ignore_result=True)
def sweep_task() -> dict:
    """Repair lost publishes and dead workers' tasks."""
    return asdict(sweeper.sweep(context.database(), current_app, context.settings()))


@shared_task(name=RETENTION_TASK, ignore_result=True)
def retention_task() -> dict:
    """Delete expired finished tasks and stored media (see :mod:`core.retention`)."""
    return retention.purge_expired(context.database(), context.settings())


@shared_task(name=vector_indexes.MAINTAIN_TASK, ignore_result=True)
def vector_indexes_task() -> dict:
    """Own HNSW indexes for collections above ``SEARCH_EXACT_MAX`` segments."""
    return vector_indexes.maintain(context.settings().database_url,
                                   SearchTuning.from_env().exact_max)


@shared_task(name=REEMBED_TASK, ignore_result=True)
def reembed_task(task_id: str) -> int:
    """Re-embed the passages of an ``/index`` task whose text was corrected."""
    from workers import indexing  # the pipeline's imports, on first use only

    return indexing.reembed_passages(context.database(), uuid.UUID(task_id),
                                     context.torch_device())
