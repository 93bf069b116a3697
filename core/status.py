"""Task statuses and the only legal moves between them."""

from __future__ import annotations

from enum import StrEnum


class TaskStatus(StrEnum):
    """Where a task is in its life."""

    CREATED = "created"
    """The row is committed; no queue has the task yet."""
    ASSIGNED = "assigned"
    """Handed to a broker queue, waiting for a worker."""
    RUNNING = "running"
    """A worker started it and is heartbeating."""
    COMPLETED = "completed"
    """Finished with a result."""
    FAILED = "failed"
    """Finished with an error, or gave up after too many retries."""
    NOT_FINISHED = "not_finished"
    """The worker running it died or stopped heartbeating; it will be re-run."""


ALLOWED_TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    TaskStatus.CREATED: frozenset({TaskStatus.ASSIGNED, TaskStatus.RUNNING, TaskStatus.FAILED}),
    TaskStatus.ASSIGNED: frozenset(
        {TaskStatus.RUNNING, TaskStatus.NOT_FINISHED, TaskStatus.FAILED}
    ),
    TaskStatus.RUNNING: frozenset(
        {TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.NOT_FINISHED}
    ),
    TaskStatus.NOT_FINISHED: frozenset(
        {TaskStatus.ASSIGNED, TaskStatus.RUNNING, TaskStatus.FAILED, TaskStatus.CREATED}
    ),
    TaskStatus.FAILED: frozenset({TaskStatus.CREATED}),
    TaskStatus.COMPLETED: frozenset(),
}

FINISHED = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED})
# The statuses that count toward an owner's MAX_ACTIVE_TASKS.
CAPPED = (TaskStatus.CREATED, TaskStatus.ASSIGNED, TaskStatus.RUNNING)
RETRYABLE = frozenset({TaskStatus.FAILED, TaskStatus.NOT_FINISHED})


class IllegalTransition(Exception):
    """A status change that the lifecycle does not allow."""

    def __init__(self, current: str, target: str) -> None:
        super().__init__(f"cannot move a task from {current!r} to {target!r}")
        self.current = current
        self.target = target


def sources_for(target: TaskStatus) -> list[str]:
    """Statuses from which ``target`` may be reached."""
    return [s.value for s, targets in ALLOWED_TRANSITIONS.items() if target in targets]


def check_transition(current: str, target: TaskStatus) -> None:
    """Raise :class:`IllegalTransition` unless ``current -> target`` is allowed."""
    if target not in ALLOWED_TRANSITIONS[TaskStatus(current)]:
        raise IllegalTransition(current, target.value)
