"""Transactional outbox and compare-and-set moves.

- ``webhook_deliveries`` rows are written by the status move itself: they carry the
  task's attempt and no payload (the body is built from the task row when it is sent).
- ``tasks.claim_token``: the token of the run that claimed the task, so a claim retried
  after a lost answer recognises its own commit.
- ``media_blobs.task_id``: an upload belongs to its task (deleted with it), and is
  written in the transaction that writes the task.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("webhook_deliveries", sa.Column("task_attempt", sa.Integer(), nullable=True))
    op.drop_column("webhook_deliveries", "payload")
    op.add_column("tasks", sa.Column("claim_token", sa.Uuid(), nullable=True))
    op.add_column("media_blobs", sa.Column("task_id", sa.Uuid(), nullable=True))
    # Uploads of existing tasks join their task (others stay until media retention).
    op.execute("""
        UPDATE media_blobs b SET task_id = t.id FROM tasks t
        WHERE t.data -> 'media' ->> 'blob_id' = b.id::text""")
    op.create_foreign_key("fk_media_blobs_task_id", "media_blobs", "tasks", ["task_id"], ["id"],
                          ondelete="CASCADE")
    op.create_index("ix_media_blobs_task_id", "media_blobs", ["task_id"])


def downgrade() -> None:
    op.drop_index("ix_media_blobs_task_id", "media_blobs")
    op.drop_constraint("fk_media_blobs_task_id", "media_blobs", type_="foreignkey")
    op.drop_column("media_blobs", "task_id")
    op.drop_column("tasks", "claim_token")
    op.add_column("webhook_deliveries",
                  sa.Column("payload", sa.Text(), nullable=False, server_default="{}"))
    op.alter_column("webhook_deliveries", "payload", server_default=None)
    op.drop_column("webhook_deliveries", "task_attempt")
