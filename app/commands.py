"""``flask --app app ...`` commands: migrations, SQLite import, backups, API keys, retention."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import select

from app.extensions import db
from core.keys import create_key, ensure_bootstrap_key
from core.models import ApiKey, utcnow

ROOT = Path(__file__).resolve().parent.parent
db_cli = AppGroup("db", help="Database migrations, import, backup and restore.")
keys_cli = AppGroup("keys", help="API keys.")
retention_cli = AppGroup("retention", help="Expiry of old results and media.")


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


@db_cli.command("import-sqlite")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def db_import_sqlite(path: Path) -> None:
    """Copy an older Hark's SQLite database (var/hark.db) into this database, once.

    On success the file is renamed to PATH.imported, so it is not imported twice."""
    from app.sqlite_import import ImportRefused, import_sqlite

    upgrade_database(current_app.config["HARK"].database_url)
    try:
        with db.engine.begin() as conn:
            copied = import_sqlite(path, conn)
    except ImportRefused as exc:
        raise click.ClickException(f"{path}: {exc}") from None
    done = path.with_name(path.name + ".imported")
    path.rename(done)
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            side.rename(done.with_name(done.name + suffix))
    click.echo(", ".join(f"{n} {t}" for t, n in copied.items() if n) or "nothing to copy")
    click.echo(f"imported; the SQLite file is now {done}")


def pg_program(name: str) -> str:
    """The bundled ``pg_dump``/``pg_restore`` (same major as the embedded server), else
    the one on PATH."""
    try:
        from core.embedded import EmbeddedError, pg_bin

        return pg_bin(name)
    except EmbeddedError:
        found = shutil.which(name)
        if found is None:
            raise click.ClickException(f"{name} not found: pip install -e '.[embedded]' "
                                       "or install the PostgreSQL client") from None
        return found


def _libpq_url() -> str:
    scheme, _, rest = current_app.config["HARK"].database_url.partition("://")
    return "postgresql://" + rest


def _run_pg(args: list[str]) -> None:
    result = subprocess.run(args, capture_output=True, text=True)
    if result.returncode != 0:
        raise click.ClickException(result.stderr.strip() or f"{args[0]} failed")


@db_cli.command("backup")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def db_backup(path: Path) -> None:
    """Write the whole database to PATH (``pg_dump`` custom format)."""
    _run_pg([pg_program("pg_dump"), "--format=custom", "--no-owner", f"--file={path}",
             f"--dbname={_libpq_url()}"])
    click.echo(f"backed up to {path} ({path.stat().st_size} bytes)")


@db_cli.command("restore")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def db_restore(path: Path) -> None:
    """Replace the database's contents with the backup at PATH (stop the platform first)."""
    db.dispose()
    _run_pg([pg_program("pg_restore"), "--clean", "--if-exists", "--no-owner",
             "--single-transaction", "--exit-on-error", f"--dbname={_libpq_url()}", str(path)])
    click.echo(f"restored from {path}")


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


@retention_cli.command("purge")
@click.option("--batch-size", default=1000, show_default=True, type=click.IntRange(min=1),
              help="Rows deleted per transaction.")
def retention_purge(batch_size: int) -> None:
    """Delete what RESULT_RETENTION_DAYS and MEDIA_RETENTION_HOURS let expire, now."""
    from core.retention import enabled, purge_expired

    settings = current_app.config["HARK"]
    if not enabled(settings):
        raise click.ClickException(
            "no retention configured: set RESULT_RETENTION_DAYS or MEDIA_RETENTION_HOURS")
    counts = purge_expired(db, settings, batch_size=batch_size)
    click.echo(f"deleted {counts['tasks']} tasks and {counts['media']} media")


def register_commands(app: Flask) -> None:
    app.cli.add_command(db_cli)
    app.cli.add_command(keys_cli)
    app.cli.add_command(retention_cli)
