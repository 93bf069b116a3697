"""Extensions: one set of objects per app, reached through ``current_app``.

The factory creates and configures them (``init_extensions``); routes use the proxies
below, so two apps in one process (tests) never share a database or broker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from flask import Flask, current_app
from werkzeug.local import LocalProxy

from core.config import Settings
from core.db import Database
from core.keys import PrincipalCache
from core.notify import CompletionWaiter

if TYPE_CHECKING:
    from celery import Celery


def _extension(name: str):
    return LocalProxy(lambda: current_app.extensions["hark"][name])


db = cast(Database, _extension("db"))
celery = cast("Celery", _extension("celery"))
waiter = cast(CompletionWaiter, _extension("waiter"))
principals = cast(PrincipalCache, _extension("principals"))


def init_extensions(app: Flask, settings: Settings) -> None:
    from app.online import OnlineCache
    from core.celery_config import make_celery

    waiter_ = CompletionWaiter()
    waiter_.configure(settings.database_url)
    database = Database().configure(settings.database_url)
    app.extensions["hark"] = {
        "db": database,
        # Publishes by task name; the API never imports task code or models.
        "celery": make_celery(settings),
        "waiter": waiter_,
        "principals": PrincipalCache(ttl=settings.key_cache_seconds),
        "online": OnlineCache(ttl=settings.presence_cache_seconds),
    }
