"""The query-embedding task of ``embed`` workers (see :mod:`core.embed_queue`)."""

from __future__ import annotations

from celery import shared_task
from sqlalchemy import text

from core.config import worker_threads
from core.embed_queue import EMBED_TASK
from core.notify import reply_payload
from core.vectors import vector_literal
from workers import context


@shared_task(name=EMBED_TASK, ignore_result=True, acks_late=False)
def embed_query(query: str, channel: str, token: str) -> None:
    """Embed ``query`` and notify ``channel`` with its vector."""
    from workers.embedding import get_embedder

    # one thread (``WORKER_THREADS`` for the embed role): a query is too small to split
    vector = get_embedder(context.torch_device(), threads=worker_threads()).embed([query])[0]
    with context.database().engine.connect() as conn:
        conn.execute(text("SELECT pg_notify(:channel, :payload)"),
                     {"channel": channel, "payload": reply_payload(token, vector_literal(vector))})
        conn.commit()
