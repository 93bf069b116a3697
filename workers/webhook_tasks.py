"""Celery tasks for webhooks: thin wrappers around :mod:`workers.webhooks`.

Deliveries themselves are sent by the relay (:mod:`workers.relay`) that every
``WORKER_ROLE=events`` worker runs; beat still sends ``recover`` to the ``webhooks``
queue, which only events workers consume, so a relay that died mid-attempt is noticed
even where no other relay runs.
"""

from __future__ import annotations

from dataclasses import asdict
from functools import cache

from celery import shared_task

from core.events import RECOVER_TASK
from workers import context, webhooks


@cache
def delivery_settings() -> webhooks.WebhookSettings:
    return webhooks.WebhookSettings.from_env()


@shared_task(name=RECOVER_TASK, bind=True, ignore_result=True)
def recover_task(self) -> dict:
    """Count attempts of dead relays as failed; drop old finished deliveries."""
    return asdict(webhooks.recover(context.database(), delivery_settings()))
