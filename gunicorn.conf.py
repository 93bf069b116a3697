"""Gunicorn settings for the API (``gunicorn --config gunicorn.conf.py "app:create_app()"``).

Threaded workers: a request waiting for its result (sync mode) holds a thread, not a process.
"""

import os

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
# Plus one thread per live stream an API process may hold (MAX_STREAMS, see
# app/api/task_stream.py): open streams never take the request threads.
threads = int(os.environ.get("WEB_THREADS", "16")) + int(os.environ.get("MAX_STREAMS", "150"))
timeout = int(os.environ.get("WEB_TIMEOUT", "330"))
graceful_timeout = 30
keepalive = 5
accesslog = os.environ.get("ACCESS_LOG") or None
errorlog = "-"
