"""Retried submissions never duplicate: the client against a proxy that drops the first
response after the server acted on the request."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from hark_client import RetryConfig

FAST = RetryConfig(max_retries=2, backoff_base=0.01, jitter=0)
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class DroppingProxy:
    """Forwards every request upstream; the first POST's answer is thrown away and the
    connection closed, as a proxy or network failing at the worst moment would."""

    def __init__(self, upstream: str) -> None:
        self.dropped: list[httpx.Response] = []
        self.forwarded: list[tuple[str, str | None]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in HOP_BY_HOP}
                answer = httpx.request(self.command, upstream + self.path, headers=headers,
                                       content=body, timeout=60)
                proxy.forwarded.append((self.command, self.headers.get("idempotency-key")))
                if self.command == "POST" and not proxy.dropped:
                    proxy.dropped.append(answer)
                    self.close_connection = True  # no answer at all
                    return
                self.send_response(answer.status_code)
                for key, value in answer.headers.items():
                    if key.lower() not in HOP_BY_HOP | {"content-encoding"}:
                        self.send_header(key, value)
                self.send_header("content-length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_POST = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def proxy(api_url):
    p = DroppingProxy(api_url)
    yield p
    p.close()


@pytest.mark.parametrize("defer", [True, False], ids=["deferred", "server-wait"])
def test_a_retry_after_a_lost_response_makes_no_second_task(proxy, api_key, hark, defer):
    from hark_client import Client

    with Client(proxy.url, api_key, retries=FAST) as client:
        task = client.diagnostics_sleep(0.2, defer=defer, timeout=30)
    [lost] = proxy.dropped
    assert lost.status_code in (200, 202)  # the server made the task; the client never heard
    assert task.id == lost.json()["task_id"]
    assert hark.tasks.count().total == 1
    posts = [key for method, key in proxy.forwarded if method == "POST"]
    assert len(posts) == 2 and posts[0] == posts[1] and posts[0].startswith("hark-")
    if not defer:
        assert task.succeeded  # the replay waited for the first request's task


def test_an_upload_retried_after_a_lost_response_is_stored_once(proxy, api_key, hark, db):
    from sqlalchemy import func, select

    from core.models import MediaBlob
    from hark_client import Client

    with Client(proxy.url, api_key, retries=FAST) as client:
        task = client.analyze(b"RIFF0000WAVEdata" * 64, filename="a.wav", language="en")
    try:
        assert task.id == proxy.dropped[0].json()["task_id"]
        assert hark.tasks.count().total == 1
        with db.session() as session:
            assert session.scalar(select(func.count()).select_from(MediaBlob)) == 1
    finally:
        hark.tasks.delete(task.id)
