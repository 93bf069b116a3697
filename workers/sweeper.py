"""The periodic repair pass (run by Celery beat every ``SWEEP_INTERVAL`` seconds).

- ``created`` rows older than ``CREATED_GRACE``: their publish was lost; publish them.
- ``running`` rows whose heartbeat is older than ``HEARTBEAT_TIMEOUT``: the worker died.
- ``assigned`` rows older than ``ASSIGNED_GRACE`` whose queue is empty: the broker lost
  the message (e.g. Redis restarted without persistence).
Both of the latter become ``not_finished`` and are published again, up to
``MAX_RETRIES``; then ``failed``. ``not_finished`` rows whose message went missing
again are re-published. Duplicate messages are harmless: a worker only runs a task it
can move to ``running``.

Every move is a compare-and-set on what the sweep read: a task is declared lost only if
it is still in the status and attempt it was read in and still stale
(:func:`core.lifecycle.declare_lost`), so a task claimed, finished or heartbeating since
it was read is left alone.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from celery import Celery
from kombu.exceptions import ChannelError
from sqlalchemy import delete, text
from sqlalchemy.exc import OperationalError

from core import dispatch, lifecycle
from core.config import Settings
from core.db import Database
from core.models import Task, WorkerPresence, utcnow
from core.status import TaskStatus

log = logging.getLogger(__name__)
_ADVISORY_LOCK = 0x4841524B  # "HARK"


@dataclass
class SweepReport:
    published: int = 0
    not_finished: int = 0
    failed: int = 0
    skipped: bool = False


def sweep(db: Database, celery_app: Celery, settings: Settings) -> SweepReport:
    """One repair pass; safe to run from several processes at once."""
    report = SweepReport()
    with _exclusive(db) as acquired:
        if not acquired:
            report.skipped = True
            return report
        now = utcnow()
        _publish_lost_created(db, celery_app, now - timedelta(seconds=settings.created_grace),
                              report)
        silent_before = now - timedelta(seconds=settings.heartbeat_timeout)
        with db.transaction() as session:
            dead = lifecycle.stale_running(session, silent_before)
        for task in dead:
            _recover_bounded(db, celery_app, settings, task, "worker stopped heartbeating",
                             silent_before, report)
        lost_before = now - timedelta(seconds=settings.assigned_grace)
        empty = _EmptyQueues(celery_app)
        with db.transaction() as session:
            assigned = lifecycle.pending_since(session, TaskStatus.ASSIGNED, lost_before)
            orphans = lifecycle.pending_since(session, TaskStatus.NOT_FINISHED, lost_before)
        for task in assigned:
            if empty(task.queue):
                _recover_bounded(db, celery_app, settings, task, "queued message was lost",
                                 lost_before, report)
        for task in orphans:
            if empty(task.queue) and dispatch.republish(db, celery_app, task):
                report.published += 1
        _forget_departed_workers(db, now)
    if report.published or report.not_finished or report.failed:
        log.info("sweep: %s", report)
    return report


def _forget_departed_workers(db: Database, now) -> None:
    """Presence rows of processes silent for an hour (killed without a goodbye)."""
    with db.transaction() as session:
        session.execute(delete(WorkerPresence)
                        .where(WorkerPresence.last_seen < now - timedelta(hours=1)))


def _publish_lost_created(db, celery_app, before, report: SweepReport) -> None:
    with db.transaction() as session:
        lost = lifecycle.pending_since(session, TaskStatus.CREATED, before)
    for task in lost:
        if dispatch.republish(db, celery_app, task):
            report.published += 1


def _recover_bounded(db: Database, celery_app: Celery, settings: Settings, task: Task,
                     reason: str, stale_before, report: SweepReport) -> None:
    """:func:`_recover`, skipping (until the next sweep) a row whose lock a vanished host
    still holds, so one dead connection cannot stall every other recovery."""
    try:
        _recover(db, celery_app, settings, task, reason, stale_before, report)
    except OperationalError as exc:
        log.warning("task %s is locked (%s); trying again next sweep", task.id,
                    str(exc.orig).splitlines()[0] if exc.orig else exc)


def _recover(db: Database, celery_app: Celery, settings: Settings, task: Task, reason: str,
             stale_before, report: SweepReport) -> None:
    """A task whose worker or message vanished, as read by this sweep: re-run it, or give
    up after max retries. Nothing happens if it moved or beat since it was read."""
    give_up = task.retry_count >= settings.max_retries
    if give_up:
        reason = f"{reason}; gave up after {task.retry_count} retries"
    with db.transaction() as session:
        _bound_lock_wait(session)
        moved = lifecycle.declare_lost(session, task, stale_before=stale_before,
                                       reason=reason, give_up=give_up)
    if moved is None:
        return
    if give_up:
        report.failed += 1
        return
    report.not_finished += 1
    log.warning("task %s is not_finished (%s); re-enqueueing", task.id, reason)
    task.status = moved.status
    if dispatch.republish(db, celery_app, task):
        report.published += 1


def _bound_lock_wait(session) -> None:
    session.execute(text("SET LOCAL lock_timeout = '2s'"))


class _EmptyQueues:
    """Asks the broker (once per queue per sweep) whether a queue holds no messages.

    A queue whose size cannot be read (the broker is down) counts as not empty: its
    tasks are not declared lost on a guess; the next sweep asks again.
    """

    def __init__(self, celery_app: Celery) -> None:
        self.celery_app = celery_app
        self.cache: dict[str, bool] = {}

    def __call__(self, queue: str | None) -> bool:
        queue = queue or "cpu"
        if queue not in self.cache:
            self.cache[queue] = self._count(queue) == 0
        return self.cache[queue]

    def _count(self, queue: str) -> int | None:
        try:
            with self.celery_app.connection_for_read() as conn:
                channel = conn.default_channel
                # kombu's virtual transports (Redis, filesystem) count every priority
                # list with _size. Not queue_declare(passive=True): on Redis it asks
                # EXISTS, which kombu does not prefix with BROKER_KEY_PREFIX (kombu 5.7),
                # so every queue looked empty and every waiting task was declared lost.
                size = getattr(channel, "_size", None)
                if size is not None:
                    return int(size(queue))
                try:
                    return channel.queue_declare(queue=queue, passive=True).message_count
                except ChannelError as exc:  # AMQP: a queue nobody declared holds nothing
                    log.debug("queue %s: %s", queue, exc)
                    return 0
        except Exception as exc:
            log.warning("could not count queue %s (%s); its tasks wait for the next sweep",
                        queue, exc)
            return None


@contextmanager
def _exclusive(db: Database):
    """A PostgreSQL advisory lock so concurrent sweeps do not race."""
    with db.engine.connect() as conn:
        acquired = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _ADVISORY_LOCK})
        acquired = bool(acquired.scalar())
        conn.commit()
        try:
            yield acquired
        finally:
            if acquired:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _ADVISORY_LOCK})
                conn.commit()
