"""Reading and writing collections, indexed media and segments (no Flask, no models).

Every change to a collection's segments locks its row first and bumps its ``version``
in the same transaction (``reset_version`` too when segments go away or their vectors
are replaced), so segment ids are allocated in commit order within a collection. Vectors
are written as pgvector literals (:mod:`core.vectors`): no numpy here. Searching is
:mod:`core.search_sql`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from core.models import utcnow
from core.models_collections import Collection, CollectionMedia, Segment
from core.vectors import text_search_config


class CollectionNotFound(Exception):
    """The collection does not exist (for this owner)."""


class MediaAlreadyIndexed(Exception):
    """The media id is already indexed in the collection and replacing was not asked for."""


def find_collection(session: Session, owner: str, collection_id: str) -> Collection | None:
    return session.scalar(
        select(Collection).where(Collection.owner == owner,
                                 Collection.collection_id == collection_id)
    )


def find_media(session: Session, collection_pk: int, media_id: str) -> CollectionMedia | None:
    return session.scalar(
        select(CollectionMedia).where(CollectionMedia.collection_pk == collection_pk,
                                      CollectionMedia.media_id == media_id)
    )


def _may_replace(existing: CollectionMedia, replace: bool, task_id: uuid.UUID | None) -> bool:
    """Replace when asked to, or when the row is an earlier attempt of the same task (a
    re-run after a worker died between storing and completing)."""
    return replace or (task_id is not None and existing.task_id == task_id)


def check_can_index(session: Session, owner: str, collection_id: str, media_id: str,
                    replace: bool, task_id: uuid.UUID | None = None) -> Collection:
    """Raise if indexing ``media_id`` into the collection would be refused at commit."""
    collection = find_collection(session, owner, collection_id)
    if collection is None:
        raise CollectionNotFound(collection_id)
    existing = find_media(session, collection.id, media_id)
    if existing is not None and not _may_replace(existing, replace, task_id):
        raise MediaAlreadyIndexed(media_id)
    return collection


def _lock_and_bump(session: Session, where: Any, *, reset: bool) -> int | None:
    """Bump the collection's counters (locking its row until commit); its pk or None."""
    values: dict[str, Any] = {"version": Collection.version + 1, "updated_at": utcnow()}
    if reset:
        values["reset_version"] = Collection.reset_version + 1
    stmt = (update(Collection).where(where).values(**values).returning(Collection.id)
            .execution_options(synchronize_session=False))
    return session.execute(stmt).scalar_one_or_none()


def save_media(
    session: Session,
    *,
    owner: str,
    collection_id: str,
    media_id: str,
    replace: bool,
    passages: Sequence[dict[str, Any]],
    vectors: Sequence[Any],
    task_id: uuid.UUID | None = None,
    duration: float | None = None,
    language: str | None = None,
    model: str | None = None,
    filename: str | None = None,
    url: str | None = None,
) -> CollectionMedia:
    """Store a media and its passages (``{"start", "end", "text"}``) with their vectors
    (unit-norm rows: arrays, float sequences or pgvector literals).

    With ``replace`` (or when the existing row came from this same ``task_id``) an existing
    media of that id is removed in the same transaction, so searches see the old segments
    or the new ones, never neither. The caller commits.
    """
    if len(passages) != len(vectors):
        raise ValueError("one vector per passage is needed")
    pk = _lock_and_bump(session, (Collection.owner == owner)
                        & (Collection.collection_id == collection_id), reset=False)
    if pk is None:
        raise CollectionNotFound(collection_id)
    existing = find_media(session, pk, media_id)
    if existing is not None:
        if not _may_replace(existing, replace, task_id):
            raise MediaAlreadyIndexed(media_id)
        _delete_media_rows(session, existing.id)
        _lock_and_bump(session, Collection.id == pk, reset=True)
    media = CollectionMedia(collection_pk=pk, media_id=media_id, task_id=task_id,
                            duration=duration, language=language, model=model,
                            filename=filename, url=url, segment_count=len(passages),
                            created_at=utcnow())
    session.add(media)
    session.flush()
    if passages:
        config = text_search_config(language)
        session.execute(Segment.__table__.insert(), [
            {"media_pk": media.id, "collection_pk": pk, "idx": i, "start": float(p["start"]),
             "end": float(p["end"]), "text": p["text"], "ts_config": config, "embedding": v}
            for i, (p, v) in enumerate(zip(passages, vectors, strict=True))
        ])
    return media


def _delete_media_rows(session: Session, media_pk: int) -> None:
    session.execute(delete(Segment).where(Segment.media_pk == media_pk))
    session.execute(delete(CollectionMedia).where(CollectionMedia.id == media_pk))


def delete_media(session: Session, collection: Collection, media: CollectionMedia) -> None:
    """Remove a media and its segments; the caller commits."""
    _lock_and_bump(session, Collection.id == collection.id, reset=True)
    _delete_media_rows(session, media.id)


def delete_collection(session: Session, collection: Collection) -> None:
    """Remove a collection with its media and segments; the caller commits."""
    # Wait for (and then block) any transaction storing segments into it.
    _lock_and_bump(session, Collection.id == collection.id, reset=True)
    session.execute(delete(Segment).where(Segment.collection_pk == collection.id))
    session.execute(delete(CollectionMedia).where(CollectionMedia.collection_pk == collection.id))
    session.execute(delete(Collection).where(Collection.id == collection.id))


def counts(session: Session, collection_pks: Iterable[int]) -> dict[int, tuple[int, int]]:
    """(media count, segment count) per collection pk."""
    pks = list(collection_pks)
    if not pks:
        return {}
    rows = session.execute(
        select(CollectionMedia.collection_pk, func.count(),
               func.coalesce(func.sum(CollectionMedia.segment_count), 0))
        .where(CollectionMedia.collection_pk.in_(pks))
        .group_by(CollectionMedia.collection_pk)
    )
    found = {pk: (int(media), int(segments)) for pk, media, segments in rows}
    return {pk: found.get(pk, (0, 0)) for pk in pks}


def segments_by_id(session: Session, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """``{id: {"media_id", "task_id", "start", "end", "text"}}`` for the segments that
    still exist (``task_id``: the task that indexed the media, None if none did)."""
    if not ids:
        return {}
    rows = session.execute(
        select(Segment.id, CollectionMedia.media_id, CollectionMedia.task_id, Segment.start,
               Segment.end, Segment.text)
        .join(CollectionMedia, CollectionMedia.id == Segment.media_pk)
        .where(Segment.id.in_([int(i) for i in ids]))
    )
    return {r.id: {"media_id": r.media_id, "task_id": str(r.task_id) if r.task_id else None,
                   "start": r.start, "end": r.end, "text": r.text} for r in rows}


def task_passages(session: Session, task_id: uuid.UUID) -> list[tuple[int, int, str]]:
    """``(segment id, collection pk, text)`` of the passages an ``/index`` task stored."""
    rows = session.execute(
        select(Segment.id, Segment.collection_pk, Segment.text)
        .join(CollectionMedia, CollectionMedia.id == Segment.media_pk)
        .where(CollectionMedia.task_id == task_id).order_by(Segment.id))
    return [(r.id, r.collection_pk, r.text) for r in rows]


def replace_vectors(session: Session, collection_pk: int,
                    updates: Sequence[tuple[int, str, Any]]) -> int:
    """Store new vectors ``(segment id, text embedded, vector)`` for segments whose text is
    still the one embedded (a later correction waits for its own pass). Bumps both
    counters. Returns the rows written; the caller commits."""
    if not updates or _lock_and_bump(session, Collection.id == collection_pk,
                                     reset=True) is None:
        return 0
    written = 0
    for seg_id, text, vector in updates:
        result = session.execute(
            update(Segment).where(Segment.id == seg_id, Segment.collection_pk == collection_pk,
                                  Segment.text == text)
            .values(embedding=vector)
            .execution_options(synchronize_session=False))
        written += result.rowcount
    return written
