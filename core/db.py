"""Engine and session factory shared by the API, the workers and the sweeper."""

from __future__ import annotations

import select
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str, **kwargs) -> Engine:
    """A PostgreSQL engine (psycopg 3) with the settings it needs to stay healthy."""
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme.startswith("postgres"):
        raise ValueError(f"DATABASE_URL must be a PostgreSQL URL, not {scheme}://...")
    if scheme in ("postgresql", "postgres"):
        url = "postgresql+psycopg://" + rest
    options = dict(
        hide_parameters=True,  # errors and logs never show a statement's values
        pool_size=10,
        max_overflow=20,
        pool_recycle=1800,
        connect_args={
            "connect_timeout": 3,
            # A host that dies mid-transaction must not hold row locks for hours: the
            # server ends idle transactions after a minute, and keepalives find dead peers.
            "options": "-c idle_in_transaction_session_timeout=60000",
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 10,
            "keepalives_count": 3,
        },
    )
    options.update(kwargs)
    engine = create_engine(url, **options)
    if not options.get("pool_pre_ping"):
        event.listen(engine, "checkout", _drop_if_closed_by_server)
    return engine


def _drop_if_closed_by_server(dbapi_connection, _record, _proxy) -> None:
    """Liveness check on pool checkout without a round trip.

    An idle connection has nothing to read: if its socket is readable, the server hung
    up (a restart, an idle timeout, ``pg_terminate_backend``: PostgreSQL sends its FATAL
    message and closes) and the pool replaces it before anyone uses it. This is what
    ``pool_pre_ping`` is for, minus the ``SELECT``-like ping each checkout would cost.
    """
    if dbapi_connection.closed or dbapi_connection.broken:
        raise DisconnectionError("connection closed")
    try:
        poller = select.poll()
        poller.register(dbapi_connection.fileno(), select.POLLIN)
        hung_up = bool(poller.poll(0))
    except (OSError, ValueError):  # no socket any more
        hung_up = True
    if hung_up:
        raise DisconnectionError("the server closed the connection")


class Database:
    """Holds one engine and its session factory; configured once per process."""

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.sessionmaker: sessionmaker[Session] | None = None
        self.url: str | None = None

    def configure(self, url: str, **kwargs) -> Database:
        if self.engine is not None:
            self.engine.dispose()
        self.url = url
        self.engine = make_engine(url, **kwargs)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)
        return self

    def session(self) -> Session:
        assert self.sessionmaker is not None, "Database.configure() was not called"
        return self.sessionmaker()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error."""
        session = self.session()
        try:
            with session.begin():
                yield session
        finally:
            session.close()

    def dispose(self) -> None:
        if self.engine is not None:
            self.engine.dispose()
