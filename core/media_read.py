"""Reading a stored media blob back by byte range, a chunk at a time.

Chunk sizes are read from the database (``length(data)``, which PostgreSQL answers from
the value's header without detoasting), so any chunking :mod:`core.media_store` used is
served correctly; only the chunks overlapping the range are read, one per query.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import func, select

from core.db import Database
from core.models import MediaBlob, MediaChunk


@dataclass(frozen=True)
class BlobLayout:
    """A blob's metadata and where each of its chunks starts."""

    id: uuid.UUID
    owner: str
    size: int
    content_type: str | None
    filename: str | None
    chunks: list[tuple[int, int, int]]  # (idx, first byte, length)


def layout(db: Database, blob_id: uuid.UUID) -> BlobLayout | None:
    """The blob's layout, or None if it is gone (deleted or purged by retention)."""
    with db.session() as session:
        blob = session.get(MediaBlob, blob_id)
        if blob is None:
            return None
        rows = session.execute(select(MediaChunk.idx, func.length(MediaChunk.data))
                               .where(MediaChunk.blob_id == blob_id)
                               .order_by(MediaChunk.idx)).all()
        chunks, offset = [], 0
        for idx, length in rows:
            chunks.append((idx, offset, int(length)))
            offset += int(length)
        return BlobLayout(id=blob.id, owner=blob.owner, size=offset,
                          content_type=blob.content_type, filename=blob.filename,
                          chunks=chunks)


def read_range(db: Database, blob: BlobLayout, first: int, last: int) -> Iterator[bytes]:
    """Bytes ``first..last`` (inclusive) of the blob, one chunk (or part) per query and
    per database session, so a slow client holds no connection between chunks."""
    for idx, start, length in blob.chunks:
        end = start + length - 1
        if end < first or start > last:
            continue
        lo, hi = max(first, start) - start, min(last, end) - start
        with db.session() as session:
            data = session.scalar(
                select(func.substr(MediaChunk.data, lo + 1, hi - lo + 1))
                .where(MediaChunk.blob_id == blob.id, MediaChunk.idx == idx))
        if data is None:  # deleted while being read
            return
        yield bytes(data)
