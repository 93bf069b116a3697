"""Collection, media and segment tables. Imported by ``core.models``.

A *collection* is an owner's searchable set of indexed media; each *segment* is one
passage of a media's transcript with its sentence embedding (a pgvector ``vector(384)``
with an HNSW index for cosine distance) and its words for full-text search (``tsv``, a
``tsvector`` generated from ``text`` with the segment's ``ts_config``, GIN-indexed). Both
counters on a collection change in the transaction that changes its segments:
``version`` on every change, ``reset_version`` only when segments were removed.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Computed,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy import text as sql_text
from sqlalchemy.dialects.postgresql import REGCONFIG, TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

from core.models import Base, SeqType, UTCDateTime, utcnow
from core.vectors import DIMENSIONS, Vector

ID_PATTERN = r"^[A-Za-z0-9_-]{1,100}$"
URL_MAX = 2048


class Collection(Base):
    """An owner's set of indexed media. ``collection_id`` is the name clients use."""

    __tablename__ = "collections"

    id: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    owner: Mapped[str] = mapped_column(String(100))
    collection_id: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Bumped (row locked first) in every transaction that adds or removes segments.
    version: Mapped[int] = mapped_column(BigInteger, default=0)
    # Bumped when segments are removed.
    reset_version: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("owner", "collection_id", name="uq_collections_owner_collection_id"),
    )


class CollectionMedia(Base):
    """One indexed media item of a collection (its transcript lives in ``segments``)."""

    __tablename__ = "collection_media"

    id: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    collection_pk: Mapped[int] = mapped_column(
        BigInteger,
        ForeignKey("collections.id", name="fk_collection_media_collection_pk",
                   ondelete="CASCADE"),
    )
    media_id: Mapped[str] = mapped_column(String(100))
    # The /index task that produced it (the task may since have been deleted).
    task_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    duration: Mapped[float | None] = mapped_column(Float, nullable=True)
    language: Mapped[str | None] = mapped_column(String(16), nullable=True)
    model: Mapped[str | None] = mapped_column(String(64), nullable=True)
    filename: Mapped[str | None] = mapped_column(String(255), nullable=True)
    url: Mapped[str | None] = mapped_column(String(URL_MAX), nullable=True)
    segment_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("collection_pk", "media_id",
                         name="uq_collection_media_collection_pk_media_id"),
    )


class Segment(Base):
    """One passage of a media's transcript, with its normalized embedding."""

    __tablename__ = "segments"

    # Allocated while the collection row is locked: within a collection ids grow in
    # commit order.
    id: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    media_pk: Mapped[int] = mapped_column(
        BigInteger,
        ForeignKey("collection_media.id", name="fk_segments_media_pk", ondelete="CASCADE"),
    )
    # Copied from the media: searches filter on it.
    collection_pk: Mapped[int] = mapped_column(
        BigInteger,
        ForeignKey("collections.id", name="fk_segments_collection_pk", ondelete="CASCADE"),
    )
    idx: Mapped[int] = mapped_column(Integer)
    start: Mapped[float] = mapped_column(Float)
    end: Mapped[float] = mapped_column(Float)
    text: Mapped[str] = mapped_column(Text)
    # Unit norm, so cosine distance ``<=>`` is 1 - dot product.
    embedding: Mapped[list[float]] = mapped_column(Vector(DIMENSIONS))
    # 'english' for media in English, 'simple' otherwise (core.vectors.text_search_config).
    ts_config: Mapped[str] = mapped_column(REGCONFIG,
                                           server_default=sql_text("'simple'::regconfig"))
    tsv: Mapped[str] = mapped_column(TSVECTOR, Computed("to_tsvector(ts_config, text)",
                                                        persisted=True))

    __table_args__ = (
        UniqueConstraint("media_pk", "idx", name="uq_segments_media_pk_idx"),
        Index("ix_segments_collection_pk_id", "collection_pk", "id"),
        Index("ix_segments_embedding_hnsw", "embedding", postgresql_using="hnsw",
              postgresql_ops={"embedding": "vector_cosine_ops"}),
        Index("ix_segments_tsv", "tsv", postgresql_using="gin"),
    )
