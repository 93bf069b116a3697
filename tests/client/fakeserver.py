"""A tiny scripted HTTP server on loopback, for what a real server will not do on demand
(fail transiently, answer 429, cut an event stream mid-message, buffer it) and for looking
at the exact requests the client sends."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    body: Any = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    """Seconds to wait before answering (to make the client's request time out)."""
    stream: list[bytes] | None = None
    """An event stream instead of ``body``: these chunks, sent one by one (HTTP/1.1,
    chunked), then the end of the body."""
    cut: bool = False
    """With ``stream``: drop the connection after the chunks, without ending the body."""
    hold: bool = False
    """With ``stream``: after the chunks, send nothing more until the server closes
    (a proxy that buffers the stream)."""


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class FakeServer:
    """Answers with ``replies`` in order; the last one repeats once the others are used."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies) or [Reply()]
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        self.closing = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                reply = server._record(Seen(self.command, self.path,
                                            {k.lower(): v for k, v in self.headers.items()},
                                            body))
                raw = reply.body if isinstance(reply.body, bytes) else \
                    json.dumps(reply.body).encode()
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.stream is not None:
                    return self._stream(reply)
                self.send_response(reply.status)
                headers = {"content-type": "application/json", **reply.headers}
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _stream(self, reply: Reply) -> None:
                self.protocol_version = "HTTP/1.1"
                self.send_response(reply.status)
                headers = {"content-type": "text/event-stream", "cache-control": "no-cache",
                           **reply.headers}
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                for chunk in reply.stream:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
                self.close_connection = True
                if reply.hold:
                    server.closing.wait(60)
                if not reply.cut:
                    self.wfile.write(b"0\r\n\r\n")

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,),
                                        daemon=True)

    def _record(self, seen: Seen) -> Reply:
        with self._lock:
            self.requests.append(seen)
            return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]

    def __enter__(self) -> FakeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.closing.set()
        self.httpd.shutdown()
        self.httpd.server_close()
