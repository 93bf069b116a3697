"""Celery tasks for webhooks: thin wrappers around :mod:`workers.webhooks`.

Both run on the ``webhooks`` queue, which only ``WORKER_ROLE=events`` workers consume,
so a slow subscriber never holds up a model worker.
"""

from __future__ import annotations

from dataclasses import asdict
from functools import cache

from celery import shared_task

from workers import context, webhooks
from workers.events import DELIVER_TASK, RECOVER_TASK

RECOVER_INTERVAL = 30.0


@cache
def delivery_settings() -> webhooks.WebhookSettings:
    return webhooks.WebhookSettings.from_env()


@shared_task(name=DELIVER_TASK, bind=True, ignore_result=True)
def deliver_task(self, delivery_id: str, attempt: int) -> str:
    """Make attempt ``attempt`` of webhook delivery ``delivery_id``."""
    return webhooks.deliver(context.database(), self.app, delivery_id, int(attempt),
                            delivery_settings())


@shared_task(name=RECOVER_TASK, bind=True, ignore_result=True)
def recover_task(self) -> dict:
    """Re-queue deliveries whose message or worker was lost; drop old finished ones."""
    return asdict(webhooks.recover(context.database(), self.app, delivery_settings()))

