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

JSON = postgresql.JSONB()
SEQ = sa.BigInteger()
ACTIVE = sa.text("status IN ('created', 'assigned', 'running', 'not_finished')")
TS = sa.DateTime(timezone=True)

# Counts are kept per statement (transition tables), not per row: one aggregated upsert
# per statement, on a random shard of 16 so concurrent writers rarely share a row, with
# rows locked in (owner, status) order so no two statements can deadlock. A count is the
# sum over shards (a shard may go negative; the sum is exact).
PG_COUNT_FUNCTION = """
CREATE OR REPLACE FUNCTION tasks_maintain_counts() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bucket smallint := floor(random() * 16);
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO task_counts (owner, status, shard, n)
        SELECT owner, status, bucket, count(*) FROM new_rows
        GROUP BY owner, status ORDER BY owner, status
        ON CONFLICT (owner, status, shard) DO UPDATE SET n = task_counts.n + EXCLUDED.n;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO task_counts (owner, status, shard, n)
        SELECT owner, status, bucket, -count(*) FROM old_rows
        GROUP BY owner, status ORDER BY owner, status
        ON CONFLICT (owner, status, shard) DO UPDATE SET n = task_counts.n + EXCLUDED.n;
    ELSE
        INSERT INTO task_counts (owner, status, shard, n)
        SELECT owner, status, bucket, sum(delta) FROM (
            SELECT owner, status, 1 AS delta FROM new_rows
            UNION ALL
            SELECT owner, status, -1 AS delta FROM old_rows
        ) AS changes
        GROUP BY owner, status HAVING sum(delta) <> 0 ORDER BY owner, status
        ON CONFLICT (owner, status, shard) DO UPDATE SET n = task_counts.n + EXCLUDED.n;
    END IF;
    RETURN NULL;
END;
$$;
"""

PG_TRIGGERS = [
    "CREATE TRIGGER tasks_counts_insert AFTER INSERT ON tasks "
    "REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION tasks_maintain_counts()",
    "CREATE TRIGGER tasks_counts_delete AFTER DELETE ON tasks "
    "REFERENCING OLD TABLE AS old_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION tasks_maintain_counts()",
    "CREATE TRIGGER tasks_counts_update AFTER UPDATE ON tasks "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION tasks_maintain_counts()",
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
    op.execute(PG_COUNT_FUNCTION)
    for statement in PG_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    op.drop_table("api_keys")
    op.drop_table("task_counts")
    op.drop_table("tasks")
    op.execute("DROP FUNCTION IF EXISTS tasks_maintain_counts()")
