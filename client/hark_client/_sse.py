"""Server-Sent Events: the wire format (parsed as the HTML standard says), and what
``tasks.stream(id)`` keeps between its connections (shared by the sync and async code).

A message is the ``event:``, ``data:`` and ``id:`` lines before a blank line; lines end
in CR, LF or CRLF (split anywhere between chunks); ``:`` lines are comments (the server's
pings); ``retry:`` sets the reconnection delay. An incomplete message at the end of a
connection is dropped.
"""

from __future__ import annotations

import codecs
import json
import re
import time
from dataclasses import dataclass
from typing import Any

from ._logging import log
from .errors import WaitTimeoutError
from .models import Task
from .models_platform import TaskEvent, TaskUpdate

_EOL = re.compile(r"\r\n|\r|\n")
EVENT_STREAM = "text/event-stream"
KINDS = ("task_event", "progress", "end")
DEFAULT_RETRY_MS = 1000
MAX_RETRY_MS = 30000


@dataclass
class SSEMessage:
    """One dispatched message: ``id`` is the ``id:`` of its own lines (None without one),
    ``last_event_id`` the stream's last id so far (what a reconnection sends)."""

    event: str
    data: str
    id: str | None
    last_event_id: str


class SSEDecoder:
    """Bytes in, messages out, whatever the chunking."""

    def __init__(self, last_event_id: str = "") -> None:
        self._text = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._skip_lf = False  # a chunk ended in CR: a LF that follows ends no line
        self._started = False
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None  # this message's own id: line
        self._id_buffer = last_event_id
        self.last_event_id = last_event_id
        """Set when a message is dispatched (an incomplete one's id does not count)."""
        self.retry: int | None = None
        """The server's ``retry:`` (milliseconds), once it sent one."""

    def feed(self, chunk: bytes) -> list[SSEMessage]:
        text = self._text.decode(chunk)
        if not text:
            return []
        if not self._started:
            self._started = True
            text = text.removeprefix("\ufeff")
        if self._skip_lf and text.startswith("\n"):
            text = text[1:]
        self._skip_lf = False
        buffer, start, messages = self._buffer + text, 0, []
        for end in _EOL.finditer(buffer):
            if end.group() == "\r" and end.end() == len(buffer):
                self._skip_lf = True
            message = self._line(buffer[start:end.start()])
            if message is not None:
                messages.append(message)
            start = end.end()
        self._buffer = buffer[start:]
        return messages

    def _line(self, line: str) -> SSEMessage | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._id = value
            self._id_buffer = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry = int(value)
        return None

    def _dispatch(self) -> SSEMessage | None:
        data, event, own_id = self._data, self._event, self._id
        self._data, self._event, self._id = [], "", None
        self.last_event_id = self._id_buffer
        if not data:
            return None
        return SSEMessage(event or "message", "\n".join(data), own_id, self.last_event_id)


def is_event_stream(status: int, content_type: str) -> bool:
    return status == 200 and content_type.split(";")[0].strip().lower() == EVENT_STREAM


class StreamState:
    """One ``tasks.stream(id)``: what was delivered (so that nothing is delivered twice
    across reconnections), where to resume, and the deadline."""

    def __init__(self, task_id: str, timeout: float | None, idle_timeout: float) -> None:
        if idle_timeout <= 0:
            raise ValueError("idle_timeout must be > 0")
        self.task_id = task_id
        self.timeout = timeout
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.idle_timeout = idle_timeout
        self.decoder = SSEDecoder()
        self.connections = 0
        self.received = False
        self.ended = False
        self._event_id = 0  # the highest task_event id delivered
        self._state: tuple[Any, Any, Any] | None = None
        self.task = Task(task_id)
        """The task as last seen (status, progress, error; all of it when polled)."""

    def connect(self) -> dict[str, str]:
        """Start a connection: its headers (``Last-Event-ID`` once there is one)."""
        previous = self.decoder
        self.decoder = SSEDecoder(previous.last_event_id)
        self.decoder.retry = previous.retry
        self.connections += 1
        self.received = False
        headers = {"accept": EVENT_STREAM, "cache-control": "no-cache"}
        if self.decoder.last_event_id:
            headers["last-event-id"] = self.decoder.last_event_id
        return headers

    @property
    def retry_ms(self) -> int | None:
        return self.decoder.retry

    def reconnect_delay(self) -> float:
        """The server's ``retry:`` (1 s without one, at most 30 s), within the deadline."""
        delay = min(MAX_RETRY_MS, self.retry_ms or DEFAULT_RETRY_MS) / 1000
        left = self.left()
        return delay if left is None else max(0.0, min(delay, left))

    def left(self) -> float | None:
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    def read_timeout(self) -> float:
        """Silence longer than this means a dropped connection (the server pings every
        15 s) or a proxy that buffers; never past the deadline."""
        left = self.left()
        return self.idle_timeout if left is None else max(0.01, min(self.idle_timeout, left))

    def timed_out(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def timeout_error(self) -> WaitTimeoutError:
        return WaitTimeoutError(self.task, self.timeout or 0.0)

    def feed(self, chunk: bytes) -> list[TaskUpdate]:
        """The updates in a chunk of the stream, less those delivered before."""
        if chunk:
            self.received = True
        updates = []
        for message in self.decoder.feed(chunk):
            update = self._update(message)
            if update is not None and not self.ended:
                self.ended = update.kind == "end"
                updates.append(update)
        return updates

    def _update(self, message: SSEMessage) -> TaskUpdate | None:
        if message.event not in KINDS:
            return None
        try:
            data = json.loads(message.data)
        except ValueError:
            log.info("ignored a %s message whose data is not JSON", message.event)
            return None
        if not isinstance(data, dict):
            return None
        if message.event == "task_event":
            event_id = int(message.id) if message.id and message.id.isdigit() else None
            if event_id is not None:
                if event_id <= self._event_id:
                    return None  # replayed after a reconnection
                self._event_id = event_id
            return TaskUpdate("task_event", self.task, TaskEvent.from_dict(data),
                              message.id, raw=data)
        self.task = Task.from_dict({"id": self.task_id, **data})
        return self._changed(message.event, data)

    def _changed(self, kind: str, raw: Any, polled: bool = False) -> TaskUpdate | None:
        state = (self.task.status, self.task.progress, self.task.error)
        if kind == "progress" and state == self._state:
            return None  # the state again, as sent first on each connection
        self._state = state
        return TaskUpdate(kind, self.task, polled=polled, raw=raw)

    def polled(self, task: Task) -> list[TaskUpdate]:
        """Updates from a polled task: ``progress`` on a change, then ``end`` once finished."""
        self.task = task
        updates = []
        progress = self._changed("progress", task.raw, polled=True)
        if progress is not None:
            updates.append(progress)
        if task.finished and not self.ended:
            self.ended = True
            updates.append(TaskUpdate("end", task, polled=True, raw=task.raw))
        return updates
