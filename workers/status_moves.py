"""Where a worker's status moves run: one autocommit connection, reconnected on loss."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from core.db import Database

log = logging.getLogger(__name__)
T = TypeVar("T")


class StatusMoves:
    """Runs a task's status moves (claim, then complete or fail) for
    :func:`workers.runner.execute`.

    On PostgreSQL each of those moves is a single statement (the move, its trail entry
    and the completion notify: :mod:`core.task_sql`), so they run in autocommit (no
    BEGIN and COMMIT round trips) on one connection. A worker process keeps its
    connection from task to task (:func:`workers.context.status_moves`): no pool
    checkout or liveness ping per task. If the connection died meanwhile (a database
    restart), the move is made again on a fresh one. Elsewhere each move is an ordinary
    transaction.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self._conn: Connection | None = None

    def __enter__(self) -> StatusMoves:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def run(self, move: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``move(session_or_connection, *args, **kwargs)``, committed."""
        if self.db.dialect != "postgresql":
            with self.db.transaction() as session:
                return move(session, *args, **kwargs)
        for last in (False, True):
            if self._conn is None:
                assert self.db.engine is not None
                self._conn = self.db.engine.connect()
                self._conn.execution_options(isolation_level="AUTOCOMMIT")
            try:
                return move(self._conn, *args, **kwargs)
            except DBAPIError as exc:
                self.close()
                if last or not exc.connection_invalidated:
                    raise
                log.warning("database connection lost; reconnecting")
        raise AssertionError("unreachable")
