"""Uploaded media kept in the database in 1 MiB chunks.

Workers on other machines need nothing but ``DATABASE_URL`` to read an upload. An upload
is written in the transaction that writes its task and belongs to it (``task_id``,
foreign key with cascade): a refused submission leaves no blob, and a task's media goes
away with the task.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.orm import Session

from core.models import MediaBlob, MediaChunk

CHUNK_BYTES = 1024 * 1024


@dataclass
class Upload:
    """A request's media file, checked and waiting to be stored with its task (the
    submission writes both in one transaction, so no blob outlives a refused one)."""

    file: BinaryIO
    owner: str
    size: int
    blob_id: uuid.UUID = field(default_factory=uuid.uuid4)
    filename: str | None = None
    content_type: str | None = None
    duration: float | None = None

    def close(self) -> None:
        self.file.close()


def store(conn: Connection, upload: Upload, task_id: uuid.UUID | None = None) -> str:
    """Copy ``upload`` into a new blob of ``task_id``, on ``conn`` (in the caller's
    transaction). Returns the content's SHA-256."""
    conn.execute(insert(MediaBlob).values(
        id=upload.blob_id, task_id=task_id, owner=upload.owner, filename=upload.filename,
        content_type=upload.content_type, size=0, sha256="", duration=upload.duration))
    digest, size, idx, pending = hashlib.sha256(), 0, 0, []
    upload.file.seek(0)
    while chunk := upload.file.read(CHUNK_BYTES):
        pending.append({"blob_id": upload.blob_id, "idx": idx, "data": chunk})
        digest.update(chunk)
        size += len(chunk)
        idx += 1
        if len(pending) == 16:
            conn.execute(insert(MediaChunk), pending)
            pending = []
    if pending:
        conn.execute(insert(MediaChunk), pending)
    conn.execute(update(MediaBlob).where(MediaBlob.id == upload.blob_id)
                 .values(size=size, sha256=digest.hexdigest()))
    return digest.hexdigest()


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
