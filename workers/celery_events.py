"""Celery task events (for Flower), published in batches at most every 0.1 s.

A worker with ``worker_send_task_events`` buffers each task's ``task-received``,
``task-started`` and ``task-succeeded`` events and, on the very next turn of its event
loop, publishes the buffer as one ``task.multi`` message, waiting for Redis to answer.
Under a backlog of short tasks that is a round trip every turn, ~40% of the worker's main
process, the process that hands tasks to the pool: the pool sat idle behind it. Here a
flush within ``EVENT_FLUSH_INTERVAL`` of the previous one is put off to a timer on the same
event loop, so events leave in batches, at most ~0.1 s late; a full buffer
(``buffer_limit``) still goes at once, and a reconnect carries them over. A dispatcher
outside an event loop flushes as Celery's does. At shutdown up to 0.1 s of task events
may go unsent (Celery's own dispatcher loses one loop turn's worth).
"""

from __future__ import annotations

import threading
import time

from celery.app.events import Events
from celery.events.dispatcher import EventDispatcher
from kombu.asynchronous import get_event_loop

EVENT_FLUSH_INTERVAL = 0.1
"""Seconds between two publishes of buffered task events."""
BUFFER_LIMIT = 500
"""Buffered task events that are published at once, whatever the interval."""


class BatchingEventDispatcher(EventDispatcher):
    """An :class:`EventDispatcher` that publishes buffered events at most every 0.1 s."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.on_send_buffered is not None:
            self.buffer_limit = BUFFER_LIMIT
        self._last_flush = 0.0
        self._timer = None

    def flush(self, errors: bool = True, groups: bool = True) -> None:
        in_loop = self.on_send_buffered is not None and threading.current_thread() is \
            threading.main_thread()  # where the worker's event loop runs
        hub = get_event_loop() if in_loop else None
        wait = self._last_flush + EVENT_FLUSH_INTERVAL - time.monotonic()
        full = any(len(events) >= self.buffer_limit for events in self._group_buffer.values())
        if hub is None or wait <= 0 or full or not (errors and groups):
            self._flush_now(errors, groups)
        elif self._timer is None:
            self._timer = hub.call_later(wait, self._flush_now)

    def extend_buffer(self, other: EventDispatcher) -> None:
        """On a broker reconnect Celery's consumer hands the old dispatcher's unsent events
        to the new one: the buffered task events too, which may wait up to 0.1 s here."""
        super().extend_buffer(other)
        for group, events in other._group_buffer.items():
            self._group_buffer[group].extend(events)
            events.clear()

    def _flush_now(self, errors: bool = True, groups: bool = True) -> None:
        self._timer = None
        self._last_flush = time.monotonic()
        super().flush(errors=errors, groups=groups)


class WorkerEvents(Events):
    """``app.events`` of the worker's Celery app (see :data:`Celery.events_cls`)."""

    dispatcher_cls = f"{__name__}:BatchingEventDispatcher"
