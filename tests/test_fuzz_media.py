"""Hostile media and hostile URLs: every bad input is a clear 4xx JSON error at the API or
a task that ends ``failed`` with a readable error, and the worker keeps serving.

- Uploads: garbage bytes, truncated audio, mislabeled files, empty and oversize bodies,
  media longer than ``MAX_MEDIA_SECONDS``, through a real worker.
- URL downloads (``workers.media.download``): redirects into private networks, redirect
  loops, size caps, stalled and trickling servers, DNS answers that change between the
  check and the connection; and the address forms ``core.netguard`` must refuse.
"""

from __future__ import annotations

import base64
import http.server
import io
import random
import socket
import threading
import time
import uuid
from dataclasses import replace

import pytest
import redis

from app import create_app
from bench.speech import WEATHER, espeak_available, make_speech_clip
from core import netguard
from core.netguard import UnsafeURLError, check_url, pin
from tests.conftest import BROKER_URL
from tests.support import start_worker, wait_for
from workers.media import MediaFetchError, download

needs_speech = pytest.mark.skipif(not espeak_available(), reason="espeak-ng not installed")


# --- fixtures ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, bytes]:
    """Real speech (WAV, MP3, FLAC) and hostile variants of it, as bytes."""
    if not espeak_available():
        pytest.skip("espeak-ng not installed")
    folder = tmp_path_factory.mktemp("fuzz-media")
    wav = make_speech_clip(folder / "weather.wav", WEATHER).read_bytes()
    mp3 = make_speech_clip(folder / "weather.mp3", WEATHER).read_bytes()
    silence = folder / "silence.flac"
    import subprocess

    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "anullsrc=r=16000:cl=mono", "-t", "60", "-c:a", "flac", str(silence)],
                   check=True)
    return {"wav": wav, "mp3": mp3, "lying_flac": _lying_flac(silence.read_bytes(), 1.0)}


def _lying_flac(flac: bytes, seconds: float) -> bytes:
    """A FLAC whose STREAMINFO claims ``seconds`` (at 16 kHz), whatever it holds."""
    data = bytearray(flac)
    assert data[:4] == b"fLaC"
    start = 8 + 10  # "fLaC", the block header, then 10 bytes before the sample count
    packed = int.from_bytes(data[start:start + 8], "big")
    packed = (packed & ~((1 << 36) - 1)) | int(seconds * 16000)
    data[start:start + 8] = packed.to_bytes(8, "big")
    return bytes(data)


class MediaServer:
    """A local HTTP server whose paths are functions of the request handler."""

    def __init__(self) -> None:
        self.routes: dict = {}
        self.requests: list[tuple[str, str]] = []  # (path, Host header)
        self.stop = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Host", "")))
                route = server.routes.get(self.path)
                if route is None:
                    self.send_error(404)
                    return
                route(self)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.handle_error = lambda *args: None  # clients that hang up early
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def body(self, path: str, data: bytes, content_type: str = "application/octet-stream"):
        def answer(h):
            h.send_response(200)
            h.send_header("Content-Type", content_type)
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
        self.routes[path] = answer

    def redirect(self, path: str, location: str) -> None:
        def answer(h):
            h.send_response(302)
            h.send_header("Location", location)
            h.send_header("Content-Length", "0")
            h.end_headers()
        self.routes[path] = answer

    def close(self) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server():
    s = MediaServer()
    yield s
    s.close()


def finished(client, auth, task_id: str, timeout: float = 120) -> dict:
    return wait_for(lambda: (b := client.get(f"/tasks/{task_id}", headers=auth).get_json())
                    ["status"] in ("completed", "failed") and b, timeout=timeout,
                    message=f"task {task_id} to finish")


def assert_readable_failure(task: dict, *fragments: str) -> None:
    """Failed, with a short message in words: no traceback, no server-side path."""
    assert task["status"] == "failed", task
    error = task["error"]
    assert set(error) == {"type", "message"}
    message = error["message"]
    assert 10 < len(message) < 300 and "Traceback" not in message, message
    assert "/tmp" not in message and "hark-task-" not in message, message
    for fragment in fragments:
        assert fragment in message, message


def assert_api_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    body = response.get_json()
    assert body["error"] == code and body["message"], body
    assert "Traceback" not in response.get_data(as_text=True)
    return body


def upload(client, auth, data: bytes, filename: str, content_type: str | None = None,
           path: str = "/analyze?defer=true"):
    file = (io.BytesIO(data), filename, content_type) if content_type else \
        (io.BytesIO(data), filename)
    return client.post(path, headers=auth, data={"file": file})


# --- uploads through a real worker ---------------------------------------------------


@needs_speech
def test_hostile_uploads_fail_cleanly_and_the_worker_keeps_serving(client, auth, worker,
                                                                    media, server):
    garbage = random.Random(8).randbytes(64 * 1024)
    wav, mp3 = media["wav"], media["mp3"]
    server.body("/notes.wav", b"just some text, not audio\n" * 50, "audio/wav")
    server.body("/empty.wav", b"", "audio/wav")
    server.body("/garbage.mp3", garbage, "audio/mpeg")
    must_fail = {  # name -> (request, fragments of the error message)
        "garbage bytes": (lambda: upload(client, auth, garbage, "clip.wav", "audio/wav"),
                          ["could not decode media"]),
        "WAV header only": (lambda: upload(client, auth, wav[:44], "cut.wav"),
                            ["could not decode media", "no audio"]),
        "WAV cut inside its header": (lambda: upload(client, auth, wav[:20], "cut.wav"),
                                      ["could not decode media"]),
        "MP3 cut to 100 bytes": (lambda: upload(client, auth, mp3[:100], "cut.mp3"),
                                 ["could not decode media"]),
        "text named .wav": (lambda: upload(client, auth, b"hello, I am text\n" * 40,
                                           "speech.wav", "audio/wav"),
                            ["could not decode media", "text"]),
        "MP4 box, garbage inside": (lambda: upload(client, auth, b"\x00\x00\x00\x18ftypmp42"
                                                   + garbage[:4096], "v.mp4", "video/mp4"),
                                    ["could not decode media"]),
        "base64 garbage": (lambda: client.post("/analyze?defer=true", headers=auth, json={
            "media": {"base64": base64.b64encode(garbage).decode(), "filename": "x.ogg"}}),
                           ["could not decode media"]),
        "URL to text": (lambda: client.post("/analyze?defer=true", headers=auth, json={
            "media": {"url": server.url("/notes.wav")}}), ["text"]),
        "URL to an empty body": (lambda: client.post("/analyze?defer=true", headers=auth, json={
            "media": {"url": server.url("/empty.wav")}}), ["empty"]),
        "URL to garbage": (lambda: client.post("/analyze?defer=true", headers=auth, json={
            "media": {"url": server.url("/garbage.mp3")}}), ["could not decode media"]),
        "URL answering 404": (lambda: client.post("/analyze?defer=true", headers=auth, json={
            "media": {"url": server.url("/missing.wav")}}), ["404"]),
    }
    submitted = {}
    for name, (send, _) in must_fail.items():
        response = send()
        assert response.status_code == 202, (name, response.get_json())
        submitted[name] = response.get_json()["task_id"]
    # Labels lie, content decides: audio named and typed as video is transcribed.
    as_video = upload(client, auth, wav, "clip.mp4", "video/mp4").get_json()["task_id"]
    half = upload(client, auth, wav[: len(wav) // 2], "half.wav").get_json()["task_id"]
    for name, task_id in submitted.items():
        assert_readable_failure(finished(client, auth, task_id), *must_fail[name][1])
    mislabeled = finished(client, auth, as_video)
    assert mislabeled["status"] == "completed", mislabeled["error"]
    assert "sunny" in mislabeled["result"]["text"].lower()
    truncated = finished(client, auth, half)  # what is there is transcribed
    assert truncated["status"] == "completed", truncated["error"]
    assert 2 < truncated["result"]["duration"] < 3
    assert worker.alive()
    after = upload(client, auth, wav, "weather.wav").get_json()["task_id"]
    task = finished(client, auth, after)
    assert task["status"] == "completed" and "sunny" in task["result"]["text"].lower()
    assert "Traceback" not in worker.output()


def test_empty_uploads_are_400(client, auth):
    assert_api_error(upload(client, auth, b"", "a.wav"), 400, "empty_media")
    assert_api_error(upload(client, auth, b"", "a.wav", path="/index?defer=true"), 400,
                     "validation_error")  # no collection given: refused before the file
    empty_b64 = client.post("/analyze?defer=true", headers=auth,
                            json={"media": {"base64": ""}})
    assert_api_error(empty_b64, 400, "validation_error")
    assert client.get("/tasks/count", headers=auth).get_json()["total"] == 0


@pytest.fixture()
def small_app(settings):
    """The API with MAX_REQUEST_MB scaled down to 64 KiB and MAX_MEDIA_SECONDS to 2."""
    app = create_app(replace(settings, max_request_bytes=64 * 1024, max_media_seconds=2.0))
    yield app
    app.extensions["hark"]["waiter"].close()
    app.extensions["hark"]["db"].dispose()


@needs_speech
def test_oversize_and_overlong_uploads_are_413(small_app, api_key, media, db):
    from sqlalchemy import func, select

    from core.models import MediaBlob

    client, auth = small_app.test_client(), {"x-api-key": api_key}
    big = random.Random(1).randbytes(100 * 1024)
    assert_api_error(upload(client, auth, big, "big.wav"), 413, "request_entity_too_large")
    as_json = client.post("/analyze?defer=true", headers=auth,
                          json={"media": {"base64": base64.b64encode(big).decode()}})
    assert_api_error(as_json, 413, "request_entity_too_large")
    mp3 = media["mp3"]  # 5 s of speech in 15 KB: under the size cap, over the duration
    assert len(mp3) < 64 * 1024
    body = assert_api_error(upload(client, auth, mp3, "long.mp3"), 413, "media_too_long")
    assert "limit is 2 s" in body["message"]
    as_b64 = client.post("/analyze?defer=true", headers=auth, json={
        "media": {"base64": base64.b64encode(mp3).decode(), "filename": "long.mp3"}})
    assert_api_error(as_b64, 413, "media_too_long")
    assert client.get("/tasks/count", headers=auth).get_json()["total"] == 0
    with db.session() as session:  # nothing refused was kept
        assert session.scalar(select(func.count()).select_from(MediaBlob)) == 0


@pytest.fixture(scope="module")
def limited(settings, settings_env, log_dir, app):
    """A worker with small limits (1 MiB downloads, 2 s of media, 2 s per download) and
    an API that publishes to it only (its own broker namespace)."""
    prefix = f"hark-limits-{uuid.uuid4().hex[:8]}:"
    proc = start_worker({**settings_env, "BROKER_KEY_PREFIX": prefix}, log_dir, name="limits",
                        MAX_REQUEST_MB="1", MAX_MEDIA_SECONDS="2", MEDIA_DOWNLOAD_TIMEOUT="2",
                        WORKER_CONCURRENCY="1")
    limited_app = create_app(replace(settings, broker_key_prefix=prefix))
    yield limited_app, proc
    proc.stop()
    limited_app.extensions["hark"]["waiter"].close()
    limited_app.extensions["hark"]["db"].dispose()
    broker = redis.Redis.from_url(BROKER_URL)
    for key in broker.scan_iter(match=f"{prefix}*", count=1000):
        broker.delete(key)


@needs_speech
def test_url_media_over_the_worker_limits_fails(limited, api_key, media, server):
    """The API cannot measure a URL's media: the worker enforces the same limits."""
    limited_app, proc = limited
    client, auth = limited_app.test_client(), {"x-api-key": api_key}
    server.body("/long.mp3", media["mp3"], "audio/mpeg")
    server.body("/huge.bin", b"\x00" * (2 * 1024 * 1024))

    def stall(h):  # headers, a first byte, then nothing
        h.send_response(200)
        h.send_header("Content-Length", "1000")
        h.end_headers()
        h.wfile.write(b"\x00")
        h.wfile.flush()
        server.stop.wait(10)
    server.routes["/stall.wav"] = stall
    cases = {"/long.mp3": ["media lasts more than 2 s", "limit is 2 s"],
             "/huge.bin": ["larger than the 1048576 byte limit"],
             "/stall.wav": ["could not download media"]}
    ids = {}
    for path in cases:
        response = client.post("/analyze?defer=true", headers=auth,
                               json={"media": {"url": server.url(path)}})
        assert response.status_code == 202, response.get_json()
        ids[path] = response.get_json()["task_id"]
    for path, fragments in cases.items():
        assert_readable_failure(finished(client, auth, ids[path], timeout=60), *fragments)
    assert proc.alive()


@needs_speech
def test_media_that_lies_about_its_duration_is_refused(limited, api_key, media):
    """A 60 s FLAC whose header claims 1 s passes the API's probe; the worker counts what
    it decodes, not what the container claims."""
    limited_app, _ = limited
    client, auth = limited_app.test_client(), {"x-api-key": api_key}
    response = upload(client, auth, media["lying_flac"], "short.flac")
    assert response.status_code == 202, response.get_json()
    task = finished(client, auth, response.get_json()["task_id"], timeout=120)
    assert_readable_failure(task, "limit is 2 s")


# --- URL downloads, unit by unit -----------------------------------------------------


@pytest.fixture()
def strict(settings):
    """Worker settings with private addresses refused, 64 KiB and 1 s per download."""
    return replace(settings, media_allow_private=False, max_request_bytes=64 * 1024,
                   media_download_timeout=1.0)


@pytest.fixture()
def loopback_is_public(monkeypatch):
    """Let the test server on 127.0.0.1 stand in for a public host; every other private,
    loopback or link-local address is still refused."""
    real = netguard._is_public
    monkeypatch.setattr(netguard, "_is_public", lambda a: a == "127.0.0.1" or real(a))


@pytest.mark.parametrize("location", [
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://10.0.0.1/a.wav", "http://[::1]/a.wav", "http://[fd00::1]/a.wav",
    "http://[::ffff:10.0.0.1]/a.wav", "http://metadata.google.internal/computeMetadata/v1/",
    "file:///etc/passwd", "gopher://127.0.0.1:6379/_FLUSHALL", "ftp://example.com/a.wav",
    "http://user:pass@93.184.215.14/a.wav",
])
def test_redirects_into_private_networks_are_refused(server, strict, loopback_is_public,
                                                     tmp_path, location):
    server.redirect("/a.wav", location)
    with pytest.raises(MediaFetchError, match="refused media URL"):
        download(server.url("/a.wav"), tmp_path / "media", strict)
    assert [path for path, _ in server.requests] == ["/a.wav"]


def test_redirect_chains_are_capped(server, strict, loopback_is_public, tmp_path):
    server.redirect("/loop", "/loop")
    with pytest.raises(MediaFetchError, match="too many redirects"):
        download(server.url("/loop"), tmp_path / "media", strict)
    assert len(server.requests) == 6
    server.redirect("/hop", "/ok")
    server.body("/ok", b"RIFF" + b"\x00" * 100)
    assert download(server.url("/hop"), tmp_path / "media", strict) == 104


def test_downloads_are_capped_in_size(server, strict, loopback_is_public, tmp_path):
    limit = strict.max_request_bytes

    def declared(h):  # says too much up front: refused before reading the body
        h.send_response(200)
        h.send_header("Content-Length", str(limit * 1000))
        h.end_headers()
        h.wfile.write(b"\x00" * 1024)

    def chunked(h):  # no length at all: refused once the limit is passed
        h.send_response(200)
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        chunk = b"\x00" * 8192
        for _ in range(limit // len(chunk) + 4):
            h.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        h.wfile.write(b"0\r\n\r\n")

    server.routes.update({"/declared": declared, "/chunked": chunked})
    server.body("/exact", b"\x01" * limit)
    for path in ("/declared", "/chunked"):
        with pytest.raises(MediaFetchError, match=f"larger than the {limit} byte limit"):
            download(server.url(path), tmp_path / "media", strict)
    assert download(server.url("/exact"), tmp_path / "media", strict) == limit


def test_downloads_are_capped_in_time(server, strict, loopback_is_public, tmp_path):
    def silent(h):  # never answers
        server.stop.wait(10)

    def trickle(h):  # a byte every 0.1 s: each read is quick, the whole never ends
        h.send_response(200)
        h.send_header("Content-Length", "1000")
        h.end_headers()
        for _ in range(1000):
            if server.stop.wait(0.1):
                return
            h.wfile.write(b"\x00")
            h.wfile.flush()

    server.routes.update({"/silent": silent, "/trickle": trickle})
    for path, message in (("/silent", "could not download media"),
                          ("/trickle", "took longer than 1 s")):
        started = time.monotonic()
        with pytest.raises(MediaFetchError, match=message):
            download(server.url(path), tmp_path / "media", strict)
        assert time.monotonic() - started < 3, path


def test_the_checked_address_is_the_one_connected_to(server, strict, loopback_is_public,
                                                     tmp_path, monkeypatch):
    """DNS rebinding: the name resolves to an allowed address when checked, to a private
    one a moment later. The download must connect to the address that was checked."""
    server.body("/a.wav", b"RIFF" + b"\x00" * 60)
    real = socket.getaddrinfo
    answers = iter(["127.0.0.1"] + ["10.255.255.1"] * 10)
    asked = []

    def rebinding(host, port, *args, **kwargs):
        if host != "media.example":
            return real(host, port, *args, **kwargs)
        asked.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    url = server.url("/a.wav", host="media.example")
    assert download(url, tmp_path / "media", strict) == 64
    assert asked == ["media.example"]  # resolved once, at the check
    assert server.requests == [("/a.wav", f"media.example:{server.port}")]
    with pytest.raises(MediaFetchError, match="non-public address"):  # the next answer
        download(url, tmp_path / "media", strict)


def test_pinning_keeps_the_host_name_for_http_and_tls(monkeypatch):
    def public(host, port, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port))]

    monkeypatch.setattr(socket, "getaddrinfo", public)
    target = pin("https://media.example/a b.wav?x=1")
    assert target.url == "https://93.184.215.14:443/a b.wav?x=1"
    assert target.headers == {"Host": "media.example"}
    assert target.extensions == {"sni_hostname": "media.example"}
    assert pin("http://93.184.215.14:8080/a.wav").url == "http://93.184.215.14:8080/a.wav"
    assert pin("http://10.0.0.1/a.wav", allow_private=True).url == "http://10.0.0.1/a.wav"


@pytest.mark.parametrize("url", [
    # Other spellings of loopback and of "this host".
    "http://127.1/", "http://2130706433/", "http://0x7f000001/", "http://017700000001/",
    "http://0.0.0.0/", "http://[::]/", "http://[::ffff:7f00:1]/", "http://LOCALHOST/",
    # Private, shared (CGNAT), link-local, unique-local, multicast, benchmark ranges.
    "http://100.64.0.1/", "http://198.18.0.1/", "http://[fc00::1]/", "http://[fe80::1]/",
    "http://224.0.0.1/", "http://255.255.255.255/",
    # Cloud metadata, directly, IPv4-mapped, NAT64, 6to4, and by name (trailing dot too).
    "http://[::ffff:169.254.169.254]/", "http://[64:ff9b::a9fe:a9fe]/",
    "http://[2002:a9fe:a9fe::]/", "http://[2002:7f00:1::]/",
    "http://metadata.google.internal./", "http://instance-data/",
])
def test_disguised_private_addresses_are_refused(url):
    with pytest.raises(UnsafeURLError):
        check_url(url)
    with pytest.raises(UnsafeURLError):
        pin(url)
    assert check_url(url, allow_private=True)  # the operator may allow them


def test_public_addresses_pass():
    for url in ("http://93.184.215.14/a.wav", "HTTPS://93.184.215.14/a.wav",
                "https://[2606:2800:220:1:248:1893:25c8:1946]/", "http://[2002:5db8:d70e::1]/"):
        assert check_url(url)


def test_private_media_and_webhook_urls_are_refused_at_the_api(client, auth, app, monkeypatch):
    """With MEDIA_ALLOW_PRIVATE / WEBHOOK_ALLOW_PRIVATE off the API refuses them before any
    task exists (test_analyze covers the plain spellings, here are disguised ones)."""
    monkeypatch.setitem(app.config, "HARK", replace(app.config["HARK"], media_allow_private=False,
                                                    webhook_allow_private=False))
    for url in ("http://2130706433/a.wav", "http://[::ffff:169.254.169.254]/",
                "http://metadata.google.internal./", "http://[2002:7f00:1::]/a.wav"):
        media = client.post("/analyze", headers=auth, json={"media": {"url": url}})
        assert_api_error(media, 400, "invalid_media_url")
        hook = client.post("/analyze", headers=auth, json={
            "media": {"url": "http://93.184.215.14/a.wav"}, "webhook": url})
        assert_api_error(hook, 400, "invalid_webhook_url")
    assert client.get("/tasks/count", headers=auth).get_json()["total"] == 0
