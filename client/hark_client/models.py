"""What the API returns, as dataclasses.

Parsing is lenient: a missing optional field is None, and every object keeps the JSON it
was built from in ``.raw``, so fields the server adds later are not lost.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, Self, TypeVar

T = TypeVar("T")


class TaskStatus(StrEnum):
    """Where a task is in its life (compares equal to the plain strings)."""

    CREATED = "created"
    """Stored; not yet on a queue."""
    ASSIGNED = "assigned"
    """On a queue, waiting for a worker."""
    RUNNING = "running"
    """A worker is running it."""
    COMPLETED = "completed"
    """Finished with a result."""
    FAILED = "failed"
    """Finished with an error."""
    NOT_FINISHED = "not_finished"
    """Its worker died; it will be run again."""


FINISHED_STATUSES = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED})


def parse_datetime(value: Any) -> datetime | None:
    """An ISO 8601 timestamp as an aware datetime; None for anything else."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


class _Model:
    """``from_dict`` for dataclasses: fields by name, ``*_at`` parsed, the rest in ``raw``."""

    _aliases: dict[str, tuple[str, ...]] = {}
    _nested: dict[str, Callable[[Any], Any]] = {}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Self:
        data = data if isinstance(data, dict) else {}
        values: dict[str, Any] = {}
        for f in fields(cls):  # type: ignore[arg-type]
            if f.name == "raw":
                continue
            value = None
            for key in (f.name, *cls._aliases.get(f.name, ())):
                if data.get(key) is not None:
                    value = data[key]
                    break
            if f.name in cls._nested:
                value = cls._nested[f.name](value)
            elif f.name.endswith("_at"):
                value = parse_datetime(value)
            values[f.name] = value
        return cls(**values, raw=data)


def _list_of(model: type[_Model]) -> Callable[[Any], list]:
    return lambda items: [model.from_dict(i) for i in items] if isinstance(items, list) else []


@dataclass
class Word(_Model):
    word: str | None = None
    start: float | None = None
    end: float | None = None
    probability: float | None = None
    speaker: str | None = None
    """``SPEAKER_00``, ``SPEAKER_01``, … when the task was diarized."""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Segment(_Model):
    id: int | None = None
    start: float | None = None
    end: float | None = None
    text: str | None = None
    words: list[Word] = field(default_factory=list)
    speaker: str | None = None
    """``SPEAKER_00``, ``SPEAKER_01``, … when the task was diarized."""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    _nested = {"words": _list_of(Word)}


@dataclass
class Transcript(_Model):
    """The result of an ``/analyze`` task."""

    text: str | None = None
    language: str | None = None
    duration: float | None = None
    model: str | None = None
    segments: list[Segment] = field(default_factory=list)
    speakers: list[dict[str, Any]] | None = None
    """With ``diarize``: ``[{"speaker": "SPEAKER_00", "speaking_time": 12.2}, …]``."""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    _nested = {"segments": _list_of(Segment)}

    @property
    def words(self) -> Iterator[Word]:
        for segment in self.segments:
            yield from segment.words


@dataclass
class Task(_Model):
    """A unit of work and, once finished, its ``result`` or ``error`` (``{type, message}``).

    Timestamps are aware datetimes. A task returned by a deferred submission carries only
    ``id`` and ``status`` (and ``endpoint``); ``client.tasks.get(id)`` fetches the rest.
    """

    id: str
    endpoint: str | None = None
    data: Any = None
    status: str | None = None
    result: Any = None
    error: dict[str, Any] | None = None
    progress: int | None = None
    priority: int | None = None
    retry_count: int | None = None
    attempts: int | None = None
    queue: str | None = None
    device: str | None = None
    worker: str | None = None
    created_at: datetime | None = None
    assigned_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    updated_at: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    _aliases = {"id": ("task_id",)}

    @property
    def finished(self) -> bool:
        """Completed or failed: it will not change again (unless retried)."""
        return self.status in FINISHED_STATUSES

    @property
    def succeeded(self) -> bool:
        return self.status == TaskStatus.COMPLETED

    @property
    def failed(self) -> bool:
        return self.status == TaskStatus.FAILED

    @property
    def transcript(self) -> Transcript | None:
        """The transcript of a completed ``/analyze`` (or ``/index``) task, else None."""
        result = self.result
        if isinstance(result, dict) and isinstance(result.get("transcript"), dict):
            result = result["transcript"]  # /index nests it next to the indexing summary
        if not isinstance(result, dict) or "segments" not in result:
            return None
        return Transcript.from_dict(result)


@dataclass
class TaskCounts(_Model):
    """Tasks per status, from ``GET /tasks/count``."""

    created: int = 0
    assigned: int = 0
    completed: int = 0
    running: int = 0
    failed: int = 0
    not_finished: int = 0
    total: int = 0
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> TaskCounts:
        counts = super().from_dict(data)
        for f in fields(counts):
            if f.name != "raw" and getattr(counts, f.name) is None:
                setattr(counts, f.name, 0)
        return counts


@dataclass
class Health(_Model):
    """``GET /health``: the API's status and that of its database and broker."""

    status: str | None = None
    database: dict[str, Any] | None = None
    broker: dict[str, Any] | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass
class Collection(_Model):
    """A named set of indexed media, searchable by meaning."""

    id: str
    name: str | None = None
    description: str | None = None
    media_count: int | None = None
    segment_count: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    _aliases = {"id": ("collection_id",)}


@dataclass
class Media(_Model):
    """A media item indexed in a collection; ``segments`` only from ``collections.get_media``."""

    id: str
    collection_id: str | None = None
    task_id: str | None = None
    duration: float | None = None
    language: str | None = None
    model: str | None = None
    filename: str | None = None
    url: str | None = None
    segment_count: int | None = None
    segments: list[Segment] = field(default_factory=list)
    created_at: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    _aliases = {"id": ("media_id",)}
    _nested = {"segments": _list_of(Segment)}


SEARCH_MODES = ("semantic", "keyword", "hybrid")
"""How a search matches: by meaning, by words (full-text), or both fused (the default)."""


@dataclass
class SearchHit(_Model):
    """A passage of a collection's media that matches a query (best ``score`` first).

    Why it matched: ``vector_rank`` (by meaning) and ``keyword_rank`` (by words), from 1,
    None where it is not in that list; ``similarity`` is the cosine similarity (None when
    not vector-ranked). ``score`` depends on the mode: semantic, the cosine similarity;
    keyword, ``ts_rank_cd``; hybrid, the reciprocal rank fusion sum of ``1/(60 + rank)``.
    """

    media_id: str | None = None
    start: float | None = None
    end: float | None = None
    text: str | None = None
    score: float | None = None
    collection_id: str | None = None
    task_id: str | None = None
    """The ``/index`` task that indexed the media (its transcript and media)."""
    similarity: float | None = None
    vector_rank: int | None = None
    keyword_rank: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def matched_by(self) -> tuple[str, ...]:
        """``("meaning", "words")``, or the one of them the hit was ranked by."""
        return tuple(name for name, rank in (("meaning", self.vector_rank),
                                             ("words", self.keyword_rank)) if rank is not None)


@dataclass
class Webhook(_Model):
    """A webhook subscription. ``secret`` is present only when created or rotated.

    ``events`` None means every event. A webhook whose URL keeps failing is disabled by the
    server (``enabled`` False, ``disabled_reason`` says why).
    """

    id: str
    url: str | None = None
    events: list[str] | None = None
    description: str | None = None
    enabled: bool | None = None
    disabled_reason: str | None = None
    secret: str | None = None
    previous_secret_expires_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class CallbackSecret(_Model):
    """The secret that signs a task's one-off ``webhook`` callbacks for this API key's owner."""

    secret: str | None = None
    previous_secret_expires_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Delivery(_Model):
    """One attempt to deliver an event (from the delivery log), or a queued redelivery.

    ``delivery_id`` names the message (``message_id`` is its ``webhook-id`` header) across
    its attempts; ``outcome`` is succeeded, retry, failed or disabled.
    """

    id: int | None = None
    delivery_id: str | None = None
    message_id: str | None = None
    event: str | None = None
    task_id: str | None = None
    attempt: int | None = None
    status_code: int | None = None
    duration_ms: int | None = None
    error: str | None = None
    outcome: str | None = None
    delivery_status: str | None = None
    created_at: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    _aliases = {"delivery_status": ("status",)}


@dataclass
class Page(Generic[T]):
    """One page of a listing; ``next_cursor`` fetches the next (None on the last page)."""

    items: list[T]
    next_cursor: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)
