"""Task event names (``task.started``, ``task.completed``, ``task.failed``,
``task.not_finished``). The status moves write each event's webhook deliveries in their
own statement (:mod:`core.task_sql`); the relay sends them (:mod:`workers.relay`).
"""

from __future__ import annotations

STARTED = "task.started"
COMPLETED = "task.completed"
FAILED = "task.failed"
NOT_FINISHED = "task.not_finished"
ALL_EVENTS = (STARTED, COMPLETED, FAILED, NOT_FINISHED)

# Webhook deliveries run on their own queue, consumed by ``WORKER_ROLE=events`` workers.
WEBHOOKS_QUEUE = "webhooks"
RECOVER_TASK = "hark.webhooks.recover"
