"""Pool checkout notices connections the server closed, without a ping round trip."""

from __future__ import annotations

import psycopg
from sqlalchemy import event, text

from core.db import make_engine


def _backend(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT pg_backend_pid()")).scalar()


def test_a_connection_the_server_closed_is_replaced_on_checkout(database_url, tmp_path):
    engine = make_engine(database_url, pool_size=1, max_overflow=0)
    trace = open(tmp_path / "libpq.trace", "w")  # every message each connection sends
    event.listen(engine, "connect", lambda dbapi, _rec: dbapi.pgconn.trace(trace.fileno()))
    try:
        first = _backend(engine)
        assert _backend(engine) == first  # the pool hands the same connection back
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (first,))
            admin.execute("SELECT pg_sleep(0.2)")  # the FATAL message reaches the client
        replaced = _backend(engine)  # no error: the dead connection never reached us
        assert replaced != first
        trace.flush()
        queries = [line.split("\t")[-1].strip() for line in
                   (tmp_path / "libpq.trace").read_text().splitlines()
                   if "\tF\t" in line and ("\tQuery\t" in line or "\tParse\t" in line)]
        # Three checkouts, three transactions: no ping (an empty query) before each.
        assert queries == ['"BEGIN"', '"SELECT pg_backend_pid()"', '"ROLLBACK"'] * 3, queries
    finally:
        engine.dispose()
        trace.close()
