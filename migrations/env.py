"""Alembic environment: the URL comes from ``sqlalchemy.url`` if a caller set it,
else from ``DATABASE_URL`` via the platform settings."""

from logging.config import fileConfig

from alembic import context

from core.config import Settings
from core.db import make_engine
from core.models import Base

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or Settings.from_env().database_url


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def _include(obj, name, type_, reflected, compare_to) -> bool:
    """Autogenerate ignores the collections' own HNSW indexes (core.vector_indexes: made
    and dropped at run time, not by migrations)."""
    from core.vector_indexes import INDEX_PREFIX

    return not (type_ == "index" and name and name.startswith(INDEX_PREFIX))


def run_migrations_online() -> None:
    engine = make_engine(_url())
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            compare_type=True,
            include_object=_include,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
