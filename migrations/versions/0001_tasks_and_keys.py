"""Tasks, per-status task counts kept by triggers, and API keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ACTIVE = sa.text("status IN ('created', 'assigned', 'running', 'not_finished')")
TS = sa.DateTime(timezone=True)

# Counts are sharded by seq % 16 so concurrent writers rarely share a row. Rows are
# locked in status-name order so two transitions can never deadlock each other.
PG_COUNT_FUNCTION = """
CREATE OR REPLACE FUNCTION tasks_maintain_counts() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bucket smallint;
BEGIN
    IF TG_OP = 'INSERT' THEN
        bucket := NEW.seq % 16;
        INSERT INTO task_counts (owner, status, shard, n) VALUES (NEW.owner, NEW.status, bucket, 1)
        ON CONFLICT (owner, status, shard) DO UPDATE SET n = task_counts.n + 1;
    ELSIF TG_OP = 'DELETE' THEN
        bucket := OLD.seq % 16;
        UPDATE task_counts SET n = n - 1
        WHERE owner = OLD.owner AND status = OLD.status AND task_counts.shard = bucket;
    ELSE
        bucket := NEW.seq % 16;
        IF OLD.status < NEW.status THEN
            UPDATE task_counts SET n = n - 1
            WHERE owner = OLD.owner AND status = OLD.status AND task_counts.shard = bucket;
        END IF;
        INSERT INTO task_counts (owner, status, shard, n) VALUES (NEW.owner, NEW.status, bucket, 1)
        ON CONFLICT (owner, status, shard) DO UPDATE SET n = task_counts.n + 1;
        IF OLD.status > NEW.status THEN
            UPDATE task_counts SET n = n - 1
            WHERE owner = OLD.owner AND status = OLD.status AND task_counts.shard = bucket;
        END IF;
    END IF;
    RETURN NULL;
END;
$$;
"""

PG_TRIGGERS = [
    "CREATE TRIGGER tasks_counts_insert AFTER INSERT ON tasks "
    "FOR EACH ROW EXECUTE FUNCTION tasks_maintain_counts()",
    "CREATE TRIGGER tasks_counts_delete AFTER DELETE ON tasks "
    "FOR EACH ROW EXECUTE FUNCTION tasks_maintain_counts()",
    "CREATE TRIGGER tasks_counts_update AFTER UPDATE OF status ON tasks "
    "FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) "
    "EXECUTE FUNCTION tasks_maintain_counts()",
]

SQLITE_TRIGGERS = [
    """CREATE TRIGGER tasks_counts_insert AFTER INSERT ON tasks BEGIN
        INSERT INTO task_counts (owner, status, shard, n) VALUES (NEW.owner, NEW.status, 0, 1)
        ON CONFLICT (owner, status, shard) DO UPDATE SET n = n + 1;
    END""",
    """CREATE TRIGGER tasks_counts_delete AFTER DELETE ON tasks BEGIN
        UPDATE task_counts SET n = n - 1
        WHERE owner = OLD.owner AND status = OLD.status AND shard = 0;
    END""",
    """CREATE TRIGGER tasks_counts_update AFTER UPDATE OF status ON tasks
    WHEN OLD.status IS NOT NEW.status BEGIN
        UPDATE task_counts SET n = n - 1
        WHERE owner = OLD.owner AND status = OLD.status AND shard = 0;
        INSERT INTO task_counts (owner, status, shard, n) VALUES (NEW.owner, NEW.status, 0, 1)
        ON CONFLICT (owner, status, shard) DO UPDATE SET n = n + 1;
    END""",
]


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner", sa.String(100), nullable=False),
        sa.Column("endpoint", sa.String(100), nullable=False),
        sa.Column("data", JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("result", JSON, nullable=True),
        sa.Column("error", JSON, nullable=True),
        sa.Column("progress", sa.SmallInteger(), nullable=False),
        sa.Column("priority", sa.SmallInteger(), nullable=False),
        sa.Column("retry_count", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("queue", sa.String(100), nullable=True),
        sa.Column("device", sa.String(50), nullable=True),
        sa.Column("worker", sa.String(255), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("assigned_at", TS, nullable=True),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("completed_at", TS, nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("heartbeat_at", TS, nullable=True),
        sa.UniqueConstraint("id", name="uq_tasks_id"),
    )
    op.create_index("ix_tasks_owner_seq", "tasks", ["owner", "seq"])
    op.create_index("ix_tasks_owner_status_seq", "tasks", ["owner", "status", "seq"])
    op.create_index(
        "ix_tasks_active",
        "tasks",
        ["status", "updated_at"],
        postgresql_where=ACTIVE,
        sqlite_where=ACTIVE,
    )
    op.create_table(
        "task_counts",
        sa.Column("owner", sa.String(100), primary_key=True),
        sa.Column("status", sa.String(16), primary_key=True),
        sa.Column("shard", sa.SmallInteger(), primary_key=True),
        sa.Column("n", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("owner", sa.String(100), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("revoked_at", TS, nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_COUNT_FUNCTION)
        for statement in PG_TRIGGERS:
            op.execute(statement)
    else:
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    op.drop_table("api_keys")
    op.drop_table("task_counts")
    op.drop_table("tasks")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS tasks_maintain_counts()")
