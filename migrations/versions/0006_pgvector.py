"""The pgvector extension (vector columns and their indexes come in later revisions).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from alembic import op
from sqlalchemy import text

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

MISSING = (
    "PostgreSQL extension 'vector' (pgvector) is not available on this server. Hark needs "
    "pgvector 0.8 or later: use the pgvector/pgvector:pg18 image (docker-compose.yml), "
    "install your distribution's package (e.g. apt install postgresql-18-pgvector), or see "
    "https://github.com/pgvector/pgvector#installation; then run `flask db upgrade` again. "
    "(`make run` needs none of this: its embedded PostgreSQL bundles pgvector.)"
)


def upgrade() -> None:
    bind = op.get_bind()
    available = bind.execute(text(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")).scalar()
    if not available:
        raise RuntimeError(MISSING)
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")


def downgrade() -> None:
    op.execute("DROP EXTENSION IF EXISTS vector")
