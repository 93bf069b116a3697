"""The query-embedding queue shared by the API (sender) and the embed workers.

The API sends :data:`EMBED_TASK` by name to :data:`EMBED_QUEUE` with the query text and
where to reply: the requesting process's notification channel and a token
(:meth:`core.notify.CompletionWaiter.expect`). An embed worker (``WORKER_ROLE=embed``)
answers with ``pg_notify(channel, 'reply:<token>:[v1,...]')``, the query's unit vector as
a pgvector literal (about 5 KB, under NOTIFY's 8000-byte limit). Messages expire with the
request's deadline, so a worker that comes back late does not embed stale queries.
"""

from __future__ import annotations

EMBED_QUEUE = "embed"
EMBED_TASK = "hark.embed_query"
