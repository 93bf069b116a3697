"""Segments move their embeddings into a pgvector ``vector(384)`` column with an HNSW
index (cosine), and get a ``tsvector`` generated from their text (GIN index) for keyword
search: ``ts_config`` is 'english' for media in English, 'simple' otherwise.

The stored float32 bytes are converted in batches. The HNSW build runs with
``maintenance_work_mem`` sized to the index (:func:`core.vector_indexes.build_memory`:
about 2 KB per segment, up to a quarter of the host's memory; ``HNSW_BUILD_MEMORY``, e.g.
``2GB``, overrides), so it is built in memory, not on disk.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy import text

from core.vector_indexes import build_memory
from core.vectors import DIMENSIONS, Vector, as_literal, parse_vector

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

BATCH = 2000


def _convert(bind, source: str, target: str, array_type: str, convert) -> None:
    """Copy ``source`` into ``target`` for every segment, ``convert``-ing each value."""
    last = 0
    while True:
        rows = bind.execute(text(
            f"SELECT id, {source} FROM segments WHERE id > :last ORDER BY id LIMIT :n"),
            {"last": last, "n": BATCH}).all()
        if not rows:
            return
        bind.execute(text(f"UPDATE segments SET {target} = v.value FROM "
                          f"(SELECT unnest(CAST(:ids AS bigint[])) AS id, "
                          f"unnest(CAST(:values AS {array_type})) AS value) v "
                          f"WHERE segments.id = v.id"),
                     {"ids": [r[0] for r in rows], "values": [convert(r[1]) for r in rows]})
        last = rows[-1][0]


def upgrade() -> None:
    bind = op.get_bind()
    op.add_column("segments", sa.Column("embedding_vector", Vector(DIMENSIONS), nullable=True))
    _convert(bind, "embedding", "embedding_vector", "vector[]", as_literal)
    op.drop_column("segments", "embedding")
    op.alter_column("segments", "embedding_vector", new_column_name="embedding",
                    nullable=False)
    op.execute("ALTER TABLE segments ADD COLUMN ts_config regconfig NOT NULL "
               "DEFAULT 'simple'::regconfig")
    op.execute("UPDATE segments SET ts_config = 'english' FROM collection_media m "
               "WHERE m.id = segments.media_pk AND (lower(m.language) = 'en' "
               "OR lower(m.language) LIKE 'en-%' OR lower(m.language) LIKE 'en\\_%')")
    op.execute("ALTER TABLE segments ADD COLUMN tsv tsvector "
               "GENERATED ALWAYS AS (to_tsvector(ts_config, text)) STORED")
    rows = bind.execute(text("SELECT count(*) FROM segments")).scalar_one()
    bind.execute(text("SELECT set_config('maintenance_work_mem', :m, true)"),
                 {"m": build_memory(rows)})
    op.execute("CREATE INDEX ix_segments_embedding_hnsw ON segments "
               "USING hnsw (embedding vector_cosine_ops)")
    op.execute("CREATE INDEX ix_segments_tsv ON segments USING gin (tsv)")


def _to_bytes(literal) -> bytes:
    import struct

    values = literal if isinstance(literal, list) else parse_vector(literal)
    return struct.pack(f"<{len(values)}f", *values)


def downgrade() -> None:
    bind = op.get_bind()
    op.drop_index("ix_segments_tsv", "segments")
    op.drop_index("ix_segments_embedding_hnsw", "segments")
    op.drop_column("segments", "tsv")
    op.drop_column("segments", "ts_config")
    op.add_column("segments", sa.Column("embedding_bytes", sa.LargeBinary(), nullable=True))
    _convert(bind, "embedding::text", "embedding_bytes", "bytea[]", _to_bytes)
    op.drop_column("segments", "embedding")
    op.alter_column("segments", "embedding_bytes", new_column_name="embedding",
                    nullable=False)
