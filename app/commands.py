"""``flask --app app ...`` commands: database migrations and API keys."""

from __future__ import annotations

from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import select

from app.extensions import db
from core.keys import create_key, ensure_bootstrap_key
from core.models import ApiKey, utcnow

ROOT = Path(__file__).resolve().parent.parent
db_cli = AppGroup("db", help="Database migrations.")
keys_cli = AppGroup("keys", help="API keys.")


def upgrade_database(url: str) -> None:
    """Apply every Alembic migration up to head."""
    from alembic import command
    from alembic.config import Config

    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["configure_logger"] = False
    command.upgrade(config, "head")


@db_cli.command("upgrade")
def db_upgrade() -> None:
    """Migrate the database to the latest schema (and ensure the bootstrap key)."""
    settings = current_app.config["HARK"]
    upgrade_database(settings.database_url)
    if settings.api_bootstrap_key:
        with db.transaction() as session:
            ensure_bootstrap_key(session, settings.api_bootstrap_key)
    click.echo("database is up to date")


@keys_cli.command("create")
@click.option("--name", required=True, help="A label for the key.")
@click.option("--owner", default=None, help="Who owns the key's tasks (default: the name).")
@click.option("--admin", is_flag=True, help="Allow admin-only operations.")
def keys_create(name: str, owner: str | None, admin: bool) -> None:
    """Create a key and print it (it is shown only once)."""
    with db.transaction() as session:
        _, raw = create_key(session, name=name, owner=owner, is_admin=admin)
    click.echo(raw)


@keys_cli.command("list")
def keys_list() -> None:
    """List keys (prefix, owner, admin, revoked); never the keys themselves."""
    with db.session() as session:
        for key in session.scalars(select(ApiKey).order_by(ApiKey.created_at)):
            state = "revoked" if key.revoked_at else "active"
            admin = "admin" if key.is_admin else "user"
            click.echo(f"{key.id}  {key.prefix}…  {key.name}  owner={key.owner}  {admin}  {state}")


@keys_cli.command("revoke")
@click.argument("key_id")
def keys_revoke(key_id: str) -> None:
    """Revoke a key by id."""
    import uuid

    with db.transaction() as session:
        key = session.get(ApiKey, uuid.UUID(key_id))
        if key is None:
            raise click.ClickException("no such key")
        key.revoked_at = utcnow()
    click.echo("revoked")


def register_commands(app: Flask) -> None:
    app.cli.add_command(db_cli)
    app.cli.add_command(keys_cli)
