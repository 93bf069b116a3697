"""Uploaded media kept in the database in 1 MiB chunks.

Workers on other machines need nothing but ``DATABASE_URL`` to read an upload, and a
task's media goes away with the task.
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.models import MediaBlob, MediaChunk

CHUNK_BYTES = 1024 * 1024


def store(
    session: Session,
    *,
    owner: str,
    stream: BinaryIO,
    filename: str | None = None,
    content_type: str | None = None,
    duration: float | None = None,
) -> MediaBlob:
    """Copy ``stream`` into a new blob; the caller commits."""
    blob = MediaBlob(id=uuid.uuid4(), owner=owner, filename=filename, content_type=content_type,
                     size=0, sha256="", duration=duration)
    session.add(blob)
    session.flush()
    digest, size, idx = hashlib.sha256(), 0, 0
    while chunk := stream.read(CHUNK_BYTES):
        session.add(MediaChunk(blob_id=blob.id, idx=idx, data=chunk))
        digest.update(chunk)
        size += len(chunk)
        idx += 1
        if idx % 16 == 0:
            session.flush()
    blob.size, blob.sha256 = size, digest.hexdigest()
    return blob


def write_to(session: Session, blob_id: uuid.UUID, path: Path) -> int:
    """Write the blob's bytes to ``path``; returns the size. KeyError if it is gone."""
    if session.get(MediaBlob, blob_id) is None:
        raise KeyError(str(blob_id))
    size = 0
    stmt = (select(MediaChunk.data).where(MediaChunk.blob_id == blob_id)
            .order_by(MediaChunk.idx).execution_options(yield_per=8))
    with open(path, "wb") as out:
        for data in session.scalars(stmt):
            out.write(data)
            size += len(data)
    return size


def delete_blob(session: Session, blob_id: uuid.UUID) -> None:
    session.execute(delete(MediaChunk).where(MediaChunk.blob_id == blob_id))
    session.execute(delete(MediaBlob).where(MediaBlob.id == blob_id))
