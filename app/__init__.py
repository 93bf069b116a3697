"""The Flask API. ``create_app()`` builds it from small ``register_*`` steps."""

from __future__ import annotations

import logging

from flask import Flask
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from core.config import Settings
from core.logs import configure_logging


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask(__name__, static_folder=None)  # the web page serves its own assets
    register_config(app, settings)
    register_extensions(app)
    register_blueprints(app)
    register_errorhandlers(app)
    register_commands(app)
    ensure_bootstrap_key(app)
    return app


def register_config(app: Flask, settings: Settings) -> None:
    app.config["HARK"] = settings
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.json.sort_keys = False
    if settings.trusted_proxies > 0:  # the client address from X-Forwarded-For
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies)  # type: ignore[method-assign]
    configure_logging()


def register_extensions(app: Flask) -> None:
    from app.auth import init_auth
    from app.extensions import init_extensions
    from app.metrics import init_metrics
    from app.ratelimit import init_ratelimit

    settings: Settings = app.config["HARK"]
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    init_extensions(app, settings)
    init_auth(app)
    init_metrics(app)
    init_ratelimit(app)  # after the metrics timer starts, so 429s are observed too


def register_blueprints(app: Flask) -> None:
    from app import metrics
    from app.api import (
        analyze,
        collections,
        diagnostics,
        docs,
        health,
        index,
        me,
        openai_compat,
        search,
        task_edits,
        task_media,
        task_stream,
        tasks,
        webhooks,
        workers,
    )
    from app.web import bp as web_bp

    app.register_blueprint(health.bp)
    app.register_blueprint(tasks.bp)
    app.register_blueprint(task_media.bp)
    app.register_blueprint(task_edits.bp)
    app.register_blueprint(task_stream.bp)
    app.register_blueprint(analyze.bp)
    app.register_blueprint(index.bp)
    app.register_blueprint(collections.bp)
    app.register_blueprint(search.bp)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(workers.bp)
    app.register_blueprint(me.bp)
    app.register_blueprint(openai_compat.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(docs.bp)
    app.register_blueprint(web_bp)
    if app.config["HARK"].diagnostics:
        app.register_blueprint(diagnostics.bp)


def register_errorhandlers(app: Flask) -> None:
    from app.errors import register_errorhandlers as register

    register(app)


def register_commands(app: Flask) -> None:
    from app.commands import register_commands as register

    register(app)


def ensure_bootstrap_key(app: Flask) -> None:
    """With ``API_BOOTSTRAP_KEY`` set, make sure that admin key exists."""
    from core.keys import ensure_bootstrap_key as ensure

    raw = app.config["HARK"].api_bootstrap_key
    if not raw:
        return
    db = app.extensions["hark"]["db"]
    try:
        with db.transaction() as session:
            ensure(session, raw)
    except IntegrityError:  # another process created it at the same moment
        pass
    except (OperationalError, ProgrammingError) as exc:  # not migrated yet, or DB down
        logging.getLogger(__name__).info(
            "bootstrap key not ensured yet (%s); `flask db upgrade` ensures it",
            str(exc.orig).splitlines()[0],
        )
