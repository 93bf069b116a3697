"""Task edits (speaker names, segment corrections) and live task streams: the watchers
table and the triggers that notify watched tasks.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

# One notification per watched task per transaction (PostgreSQL folds duplicates), its
# payload the task id: on each new task_events row, each change of progress, and the
# task's deletion.
NOTIFY_FUNCTIONS = """
CREATE FUNCTION hark_task_event_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM task_watchers WHERE task_id = NEW.task_id
               AND expires_at > now()) THEN
        PERFORM pg_notify('hark_task_events', NEW.task_id::text);
    END IF;
    RETURN NULL;
END $$;
CREATE FUNCTION hark_task_row_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM task_watchers WHERE task_id = OLD.id
               AND expires_at > now()) THEN
        PERFORM pg_notify('hark_task_events', OLD.id::text);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER task_events_notify AFTER INSERT ON task_events
    FOR EACH ROW EXECUTE FUNCTION hark_task_event_notify();
CREATE TRIGGER tasks_progress_notify AFTER UPDATE OF progress ON tasks
    FOR EACH ROW WHEN (OLD.progress IS DISTINCT FROM NEW.progress)
    EXECUTE FUNCTION hark_task_row_notify();
CREATE TRIGGER tasks_deleted_notify AFTER DELETE ON tasks
    FOR EACH ROW EXECUTE FUNCTION hark_task_row_notify();
"""


def upgrade() -> None:
    op.create_table(
        "task_watchers",
        sa.Column("task_id", sa.Uuid(), primary_key=True),
        sa.Column("watcher", sa.String(100), primary_key=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        prefixes=["UNLOGGED"],
    )
    op.execute(NOTIFY_FUNCTIONS)
    op.create_table(
        "task_edits",
        sa.Column("task_id", sa.Uuid(), primary_key=True),
        sa.Column("speaker_names", JSON, nullable=False),
        sa.Column("segments", JSON, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], ondelete="CASCADE",
                                name="fk_task_edits_task_id"),
    )


def downgrade() -> None:
    op.drop_table("task_edits")
    op.execute("DROP TRIGGER IF EXISTS tasks_progress_notify ON tasks")
    op.execute("DROP TRIGGER IF EXISTS tasks_deleted_notify ON tasks")
    op.execute("DROP TRIGGER IF EXISTS task_events_notify ON task_events")
    op.execute("DROP FUNCTION IF EXISTS hark_task_row_notify()")
    op.execute("DROP FUNCTION IF EXISTS hark_task_event_notify()")
    op.drop_table("task_watchers")
