"""Collections, their indexed media and transcript segments with embeddings.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SEQ = sa.BigInteger()
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "collections",
        sa.Column("id", SEQ, primary_key=True, autoincrement=True),
        sa.Column("owner", sa.String(100), nullable=False),
        sa.Column("collection_id", sa.String(100), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("reset_version", sa.BigInteger(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("owner", "collection_id", name="uq_collections_owner_collection_id"),
    )
    op.create_table(
        "collection_media",
        sa.Column("id", SEQ, primary_key=True, autoincrement=True),
        sa.Column("collection_pk", sa.BigInteger(), nullable=False),
        sa.Column("media_id", sa.String(100), nullable=False),
        sa.Column("task_id", sa.Uuid(), nullable=True),
        sa.Column("duration", sa.Float(), nullable=True),
        sa.Column("language", sa.String(16), nullable=True),
        sa.Column("model", sa.String(64), nullable=True),
        sa.Column("filename", sa.String(255), nullable=True),
        sa.Column("url", sa.String(2048), nullable=True),
        sa.Column("segment_count", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["collection_pk"], ["collections.id"],
                                name="fk_collection_media_collection_pk", ondelete="CASCADE"),
        sa.UniqueConstraint("collection_pk", "media_id",
                            name="uq_collection_media_collection_pk_media_id"),
    )
    op.create_table(
        "segments",
        sa.Column("id", SEQ, primary_key=True, autoincrement=True),
        sa.Column("media_pk", sa.BigInteger(), nullable=False),
        sa.Column("collection_pk", sa.BigInteger(), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("start", sa.Float(), nullable=False),
        sa.Column("end", sa.Float(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["media_pk"], ["collection_media.id"],
                                name="fk_segments_media_pk", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["collection_pk"], ["collections.id"],
                                name="fk_segments_collection_pk", ondelete="CASCADE"),
        sa.UniqueConstraint("media_pk", "idx", name="uq_segments_media_pk_idx"),
    )
    op.create_index("ix_segments_collection_pk_id", "segments", ["collection_pk", "id"])


def downgrade() -> None:
    op.drop_table("segments")
    op.drop_table("collection_media")
    op.drop_table("collections")
