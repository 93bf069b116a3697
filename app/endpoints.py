"""Analysis endpoints and their defer option, as Aana's ``Endpoint`` has.

An endpoint is deferred (202 + ``task_id``) or synchronous (waits for the result up to a
timeout, then answers like a deferred call). ``DeferOption`` says which a client may ask
for with ``?defer=true|false``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from flask import current_app, jsonify

from app.auth import current_principal
from app.bodies import load_args
from app.errors import APIError
from app.extensions import celery, db, waiter
from app.online import check_queue
from app.schemas import SubmitArgs, TaskSchema
from core import dispatch
from core.idempotency import Keyed
from core.media_store import Upload
from core.models import Task
from core.status import FINISHED
from core.task_reads import read_task, task_from_notify

_task_schema = TaskSchema()
_submit_args = SubmitArgs()


class DeferOption(StrEnum):
    ALWAYS = "always"
    """Always deferred; ``?defer=false`` is refused."""
    NEVER = "never"
    """Always waits for the result; ``?defer=true`` is refused."""
    OPTIONAL = "optional"
    """Waits unless the client sends ``?defer=true``."""


@dataclass(frozen=True)
class Outcome:
    """A submitted task: its id and last seen status, and its record if it finished."""

    task_id: uuid.UUID
    status: str
    finished: Any | None


@dataclass(frozen=True)
class Endpoint:
    """An analysis route whose requests become tasks."""

    name: str
    path: str
    summary: str
    defer_option: DeferOption = DeferOption.OPTIONAL

    def submit(self, data: dict[str, Any], *, priority: int = 0, device: str | None = None,
               queue: str | None = None, status: int = 202, upload: Upload | None = None,
               keyed: Keyed | None = None):
        """Create the task (``keyed``: with its id, claiming its key unless claimed
        already; with ``upload``, stored in the same transaction) and answer: deferred,
        or waiting for the result."""
        args = load_args(_submit_args)
        defer = self._resolve_defer(args["defer"])
        wait = None if defer else self._timeout(args)
        outcome = self.run(data, wait=wait, priority=priority, device=device, queue=queue,
                           upload=upload, keyed=keyed)
        return _answer(outcome, status if defer else 202)

    def run(self, data: dict[str, Any], *, wait: float | None, priority: int = 0,
            device: str | None = None, queue: str | None = None,
            upload: Upload | None = None, keyed: Keyed | None = None) -> Outcome:
        """Create the task (with ``upload``, stored in the same transaction, then closed);
        with ``wait`` (seconds), wait that long for it to finish (notified, see
        :mod:`core.notify`). The one submission path of every caller."""
        try:
            return self._run(data, wait=wait, priority=priority, device=device, queue=queue,
                             upload=upload, keyed=keyed)
        finally:
            if upload is not None:
                upload.close()

    def _run(self, data: dict[str, Any], *, wait: float | None, priority: int,
             device: str | None, queue: str | None, upload: Upload | None,
             keyed: Keyed | None) -> Outcome:
        settings = current_app.config["HARK"]
        queue = dispatch.resolve_queue(settings.default_device, device, queue)
        check_queue(queue)

        def submit_task(task_id: uuid.UUID | None, notify: bool | str = True) -> Task:
            return dispatch.submit(
                db,
                celery,
                owner=current_principal().owner,
                endpoint=self.path,
                data=data,
                queue=queue,
                priority=priority,
                max_active=settings.max_active_tasks,
                task_id=task_id,
                notify=notify,
                upload=upload,
                key=keyed.claim_params() if keyed is not None else None,
            )

        task_id = keyed.task_id if keyed is not None else None
        if wait is None:  # nobody waits on it: no completion NOTIFY
            task = submit_task(task_id, notify=False)
            return Outcome(task.id, task.status, None)
        task_id = task_id or uuid.uuid4()
        # Subscribed before the row exists: the completion cannot slip by unheard, and
        # the row is read (if its notify did not carry it) once it finished, not before.
        with waiter.subscribe(str(task_id)) as subscription:
            submit_task(task_id, notify=subscription.channel or True)
            return self._wait(task_id, wait, subscription)

    def replay(self, task_id: uuid.UUID):
        """Answer a repeated submission (same ``Idempotency-Key``) with the task the
        first one made: at once if deferred or finished, else once it finishes. Its
        finish is announced to the first request's API process, or to none: while it
        waits, this process watches the task's changes (as a live stream does), and
        re-reads it at least every 2 s."""
        args = load_args(_submit_args)
        defer = self._resolve_defer(args["defer"])
        with waiter.subscribe(str(task_id)) as subscription:
            current = read_task(db, task_id)
            if current is None:
                raise APIError(404, "not_found", "task was deleted")
            if defer:
                return jsonify({"task_id": str(task_id), "status": current.status}), 202
            if current.status in FINISHED:
                return _finished(current)
            from app.api.task_stream import task_watch  # app.api imports this module

            with task_watch().watch(task_id, subscription.event):
                subscription.event.set()  # re-read once watched: no finish slips by
                return _answer(self._wait(task_id, self._timeout(args), subscription), 202)

    def _timeout(self, args: dict[str, Any]) -> float:
        settings = current_app.config["HARK"]
        return min(args["timeout"] if args["timeout"] is not None else settings.sync_timeout,
                   settings.max_sync_timeout)

    def _wait(self, task_id: uuid.UUID, timeout: float, subscription: Any) -> Outcome:
        seen: list[Any] = []  # the last read of the row, reused for the answer

        def is_finished() -> bool:
            announced = subscription.row  # the finished row, if the notify carried it
            seen[:] = [task_from_notify(announced) if announced else read_task(db, task_id)]
            return seen[0] is None or seen[0].status in FINISHED

        finished = subscription.wait(timeout, is_finished)
        current = seen[0] if seen else read_task(db, task_id)
        if current is None:  # deleted while we waited
            raise APIError(404, "not_found", "task was deleted before it finished")
        return Outcome(task_id, current.status, current if finished else None)

    def _resolve_defer(self, requested: bool | None) -> bool:
        if self.defer_option is DeferOption.ALWAYS:
            if requested is False:
                raise APIError(400, "defer_required", f"{self.path} always runs deferred")
            return True
        if self.defer_option is DeferOption.NEVER:
            if requested:
                raise APIError(400, "defer_not_allowed", f"{self.path} cannot be deferred")
            return False
        return bool(requested)


def _finished(task: Any):
    body = _task_schema.dump(task)
    body["task_id"] = str(task.id)
    return jsonify(body), 200


def _answer(outcome: Outcome, pending_status: int):
    """The finished task (200), or its id and status (``pending_status``)."""
    if outcome.finished is None:
        return jsonify({"task_id": str(outcome.task_id), "status": outcome.status}), \
            pending_status
    return _finished(outcome.finished)
