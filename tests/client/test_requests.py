"""The exact requests the client sends, and how it reads answers, for every operation."""

from __future__ import annotations

import asyncio
import io
from urllib.parse import parse_qs, urlsplit

import pytest

from hark_client import AsyncClient, Client, Collection, SearchHit, Webhook
from tests.client.fakeserver import FakeServer, Reply

ACCEPTED = Reply(202, {"task_id": "t-1", "status": "assigned"})


def query(seen) -> dict[str, list[str]]:
    return parse_qs(urlsplit(seen.path).query)


def test_analyze_url_is_json_and_deferred():
    with FakeServer(ACCEPTED) as server, Client(server.url, "key") as client:
        task = client.analyze(url="https://example.com/a.mp3", model="base", language="en",
                              task="translate", word_timestamps=True, priority=7,
                              webhook="https://hooks.example.com/h",
                              webhook_events=["task.completed"])
    seen = server.requests[0]
    assert (seen.method, urlsplit(seen.path).path) == ("POST", "/analyze")
    assert query(seen) == {"defer": ["true"]}
    assert seen.json() == {"media": {"url": "https://example.com/a.mp3"}, "model": "base",
                           "language": "en", "task": "translate", "word_timestamps": True,
                           "priority": 7, "webhook": "https://hooks.example.com/h",
                           "webhook_events": ["task.completed"]}
    assert seen.headers["x-api-key"] == "key"
    assert seen.headers["user-agent"].startswith("hark-client/")
    assert (task.id, task.status, task.endpoint, task.finished) == \
        ("t-1", "assigned", "/analyze", False)


def test_analyze_file_is_multipart_with_options_as_fields():
    with FakeServer(ACCEPTED) as server, Client(server.url, "key") as client:
        client.analyze(io.BytesIO(b"ID3data"), filename="song.mp3", word_timestamps=False,
                       priority=2, webhook_events=["task.completed", "task.failed"])
    seen = server.requests[0]
    assert seen.headers["content-type"].startswith("multipart/form-data; boundary=")
    body = seen.body
    assert b'name="file"; filename="song.mp3"' in body and b"Content-Type: audio/mpeg" in body
    assert b'name="word_timestamps"\r\n\r\nfalse\r\n' in body
    assert b'name="priority"\r\n\r\n2\r\n' in body
    assert body.count(b'name="webhook_events"') == 2
    assert b'name="model"' not in body  # options left out are not sent


def test_analyze_needs_exactly_one_source():
    with Client("http://127.0.0.1:9", "k") as client:
        with pytest.raises(ValueError):
            client.analyze()
        with pytest.raises(ValueError):
            client.analyze(b"x", url="https://example.com/a.mp3")
        with pytest.raises(ValueError):
            client.analyze(b"x", task="summarize")


def test_index_sends_collection_and_media_id():
    with FakeServer(ACCEPTED) as server, Client(server.url, "key") as client:
        task = client.index(url="https://example.com/a.mp3", collection="talks",
                            media_id="ep-1", reindex_if_exists=True)
    assert server.requests[0].json() == {"media": {"url": "https://example.com/a.mp3"},
                                         "collection": "talks", "media_id": "ep-1",
                                         "reindex_if_exists": True}
    assert task.endpoint == "/index"


def test_sync_sleep_passes_its_wait_to_the_server():
    done = {"id": "t-2", "task_id": "t-2", "status": "completed", "result": {"slept": 0.1},
            "progress": 100, "created_at": "2026-01-02T03:04:05.123456+00:00"}
    with FakeServer(Reply(200, done)) as server, Client(server.url, "k", timeout=1) as client:
        task = client.diagnostics_sleep(0.1, timeout=45, priority=3)
    seen = server.requests[0]
    assert query(seen) == {"defer": ["false"], "timeout": ["45"]}
    assert seen.json() == {"seconds": 0.1, "fail": False, "priority": 3}
    assert task.succeeded and task.result == {"slept": 0.1}
    assert task.created_at.utcoffset().total_seconds() == 0


def test_task_paths_and_transcript_formats():
    with FakeServer(Reply(200, b"1\n00:00:00,000 --> 00:00:01,000\nhi\n",
                          {"content-type": "text/plain"})) as server, \
            Client(server.url, "k") as client:
        text = client.transcript("t/../x", "srt")
        with pytest.raises(ValueError):
            client.transcript("t", "docx")
    assert text.startswith("1\n00:00:00,000")
    assert server.requests[0].path == "/tasks/t%2F..%2Fx/transcript?format=srt"


def test_collections_contract():
    collection = {"collection_id": "talks", "name": "Talks", "description": None,
                  "media_count": 1, "segment_count": 4,
                  "created_at": "2026-01-02T03:04:05+00:00", "extra": 1}
    media = {"media_id": "m1", "collection_id": "talks", "segment_count": 1}
    hits = {"results": [{"media_id": "m1", "start": 1.5, "end": 3.0, "text": "hello",
                         "score": 0.87}]}
    replies = [Reply(201, collection), Reply(200, {"collections": [collection]}),
               Reply(200, collection), Reply(200, {"media": [media]}),
               Reply(200, {**media, "segments": [{"id": 0, "start": 0, "end": 1,
                                                  "text": "hi"}]}),
               Reply(200, hits), Reply(200, collection), Reply(200, media)]
    with FakeServer(*replies) as server, Client(server.url, "k") as client:
        created = client.collections.create("talks", "Talks")
        listed = list(client.collections.list(per_page=5))
        updated = client.collections.update("talks", description="d")
        items = list(client.collections.media("talks", per_page=5))
        one = client.collections.get_media("talks", "m1")
        found = client.collections.search("talks", "greeting", top_k=3)
        assert client.collections.delete("talks").id == "talks"
        assert client.collections.delete_media("talks", "m1").id == "m1"
    assert isinstance(created, Collection) and created.id == "talks"
    assert created.raw["extra"] == 1 and created.created_at.year == 2026
    assert (created.media_count, created.segment_count) == (1, 4)
    assert [c.id for c in listed] == ["talks"] and updated.name == "Talks"
    assert items[0].id == "m1" and one.segments[0].text == "hi"
    assert found == [SearchHit("m1", 1.5, 3.0, "hello", 0.87, raw=hits["results"][0])]
    calls = [(r.method, r.path) for r in server.requests]
    assert calls == [("POST", "/collections"), ("GET", "/collections?page=1&per_page=5"),
                     ("PATCH", "/collections/talks"),
                     ("GET", "/collections/talks/media?page=1&per_page=5"),
                     ("GET", "/collections/talks/media/m1"),
                     ("POST", "/collections/talks/search"), ("DELETE", "/collections/talks"),
                     ("DELETE", "/collections/talks/media/m1")]
    assert server.requests[0].json() == {"collection_id": "talks", "name": "Talks"}
    assert server.requests[2].json() == {"description": "d"}
    assert server.requests[5].json() == {"query": "greeting", "top_k": 3}


def test_search_sends_mode_and_collections_and_reads_why_each_hit_matched():
    hit = {"collection_id": "calls", "media_id": "m1", "task_id": "t-9", "start": 1.5,
           "end": 3.0, "text": "invoice 4711", "score": 0.0328, "similarity": 0.61,
           "vector_rank": 1, "keyword_rank": 2}
    with FakeServer(*[Reply(200, {"results": [hit]})] * 4) as server, \
            Client(server.url, "k") as client:
        one = client.collections.search("talks", "q", 5, mode="keyword")
        every = client.search("q")
        some = client.search("q", 7, mode="semantic", collections=("talks", "calls"))
        asyncio.run(_async_search(server.url))
        with pytest.raises(ValueError):
            client.search("q", mode="fuzzy")
    calls = [(r.method, r.path, r.json()) for r in server.requests]
    assert calls == [
        ("POST", "/collections/talks/search", {"query": "q", "top_k": 5, "mode": "keyword"}),
        ("POST", "/search", {"query": "q", "top_k": 10}),  # mode left to the server
        ("POST", "/search", {"query": "q", "top_k": 7, "mode": "semantic",
                             "collections": ["talks", "calls"]}),
        ("POST", "/search", {"query": "q", "top_k": 2, "mode": "hybrid",
                             "collections": ["x"]})]
    assert one == every == some
    [found] = one
    assert (found.collection_id, found.media_id, found.task_id) == ("calls", "m1", "t-9")
    assert (found.score, found.similarity) == (0.0328, 0.61)
    assert (found.vector_rank, found.keyword_rank) == (1, 2)
    assert found.matched_by == ("meaning", "words") and found.raw == hit


async def _async_search(url: str) -> None:
    async with AsyncClient(url, "k") as client:
        hits = await client.search("q", 2, mode="hybrid", collections=["x"])
    assert hits[0].keyword_rank == 2


def test_webhooks_contract():
    hook = {"id": "w1", "url": "https://h.example.com", "events": ["task.completed"],
            "enabled": True, "secret": "whsec_c2VjcmV0"}
    attempt = {"id": 7, "delivery_id": "d1", "message_id": "msg_1", "event": "task.completed",
               "attempt": 3, "status_code": 500, "outcome": "failed",
               "delivery_status": "failed"}
    queued = {"delivery_id": "d1", "message_id": "msg_1", "status": "pending", "attempt": 4}
    replies = [Reply(201, hook), Reply(200, {"webhooks": [hook]}), Reply(200, hook),
               Reply(200, hook), Reply(200, {**hook, "secret": "whsec_bmV3"}),
               Reply(200, {"deliveries": [attempt], "next_cursor": "Nw"}), Reply(202, queued),
               Reply(200, hook), Reply(200, {"secret": "whsec_Y2I="}),
               Reply(200, {"deliveries": []}), Reply(202, queued)]
    with FakeServer(*replies) as server, Client(server.url, "k") as client:
        created = client.webhooks.create("https://h.example.com", ["task.completed"])
        assert [w.id for w in client.webhooks.list()] == ["w1"]
        client.webhooks.get("w1")
        client.webhooks.update("w1", events=["task.failed"], enabled=False)
        rotated = client.webhooks.rotate_secret("w1", grace_seconds=60)
        log = client.webhooks.deliveries("w1", per_page=10)
        again = client.webhooks.redeliver("w1", "d1")
        assert client.webhooks.delete("w1").id == "w1"
        assert client.webhooks.callback_secret().secret == "whsec_Y2I="
        assert len(client.webhooks.deliveries(None, cursor="Nw")) == 0
        client.webhooks.redeliver(None, "d1")
        with pytest.raises(ValueError):
            client.webhooks.update("w1")
    assert isinstance(created, Webhook) and created.secret == "whsec_c2VjcmV0"
    assert rotated.secret == "whsec_bmV3" and log.next_cursor == "Nw"
    assert (log.items[0].status_code, log.items[0].outcome) == (500, "failed")
    assert (again.delivery_id, again.delivery_status, again.attempt) == ("d1", "pending", 4)
    calls = [(r.method, r.path) for r in server.requests]
    assert calls == [("POST", "/webhooks"), ("GET", "/webhooks"), ("GET", "/webhooks/w1"),
                     ("PUT", "/webhooks/w1"), ("POST", "/webhooks/w1/rotate-secret"),
                     ("GET", "/webhooks/w1/deliveries?per_page=10&page=1"),
                     ("POST", "/webhooks/w1/deliveries/d1/redeliver"),
                     ("DELETE", "/webhooks/w1"), ("GET", "/webhooks/callback-secret"),
                     ("GET", "/webhooks/callbacks/deliveries?per_page=50&cursor=Nw"),
                     ("POST", "/webhooks/callbacks/deliveries/d1/redeliver")]
    assert server.requests[3].json() == {"events": ["task.failed"], "enabled": False}
    assert server.requests[4].json() == {"grace_seconds": 60}


def test_async_client_sends_the_same_requests():
    async def scenario(url: str) -> None:
        async with AsyncClient(url, "key") as client:
            await client.analyze(b"RIFF", filename="a.wav", language="en")
            await client.index(url="https://example.com/a.mp3", collection="c")

    with FakeServer(ACCEPTED) as server:
        asyncio.run(scenario(server.url))
    upload, indexed = server.requests
    assert b'filename="a.wav"' in upload.body and b'name="language"\r\n\r\nen' in upload.body
    assert indexed.json() == {"media": {"url": "https://example.com/a.mp3"}, "collection": "c"}


def test_environment_supplies_url_and_key(monkeypatch):
    monkeypatch.setenv("HARK_URL", "http://example.invalid:1234/")
    monkeypatch.setenv("HARK_API_KEY", "from-env")
    with Client() as client:
        assert client.base_url == "http://example.invalid:1234"
        assert client.headers["x-api-key"] == "from-env"
    monkeypatch.delenv("HARK_URL")
    with Client(api_key="explicit") as client:
        assert client.base_url == "http://127.0.0.1:8000"
        assert client.headers["x-api-key"] == "explicit"


SPEECH = {"vad": False, "vad_threshold": 0.35, "vad_min_speech_ms": 100,
          "vad_min_silence_ms": 500, "vad_speech_pad_ms": 200,
          "prompt": "A talk about vector search.", "hotwords": ["Siobhan Nguyen", "Qdrant"],
          "diarize": True, "min_speakers": 2, "max_speakers": 3}


def test_speech_options_reach_analyze_and_index():
    with FakeServer(ACCEPTED) as server, Client(server.url, "k") as client:
        client.analyze(url="https://example.com/a.mp3", **SPEECH)
        client.index(url="https://example.com/a.mp3", collection="c", diarize=True,
                     num_speakers=2, vad=True, hotwords=("Qdrant",))
        client.index(io.BytesIO(b"RIFF"), filename="a.wav", collection="c", **SPEECH)
        client.analyze(url="https://example.com/a.mp3")
    as_json, counted, upload, plain = server.requests
    assert as_json.json() == {"media": {"url": "https://example.com/a.mp3"}, **SPEECH}
    assert counted.json() == {"media": {"url": "https://example.com/a.mp3"}, "collection": "c",
                              "vad": True, "hotwords": ["Qdrant"], "diarize": True,
                              "num_speakers": 2}
    body = upload.body
    for name, text in (("vad", b"false"), ("vad_threshold", b"0.35"),
                       ("vad_min_speech_ms", b"100"), ("vad_min_silence_ms", b"500"),
                       ("vad_speech_pad_ms", b"200"), ("prompt", b"A talk about vector search."),
                       ("diarize", b"true"), ("min_speakers", b"2"), ("max_speakers", b"3"),
                       ("collection", b"c")):
        assert f'name="{name}"\r\n\r\n'.encode() + text + b"\r\n" in body, name
    # hotwords: the form field repeated, once per term.
    assert b'name="hotwords"\r\n\r\nSiobhan Nguyen\r\n' in body
    assert b'name="hotwords"\r\n\r\nQdrant\r\n' in body and body.count(b'"hotwords"') == 2
    assert b'name="num_speakers"' not in body
    assert plain.json() == {"media": {"url": "https://example.com/a.mp3"}}  # defaults unsent


def test_speech_options_are_checked_before_sending():
    with Client("http://127.0.0.1:9", "k") as client:
        with pytest.raises(ValueError, match="num_speakers"):
            client.analyze(b"x", num_speakers=2, max_speakers=3)
        with pytest.raises(ValueError, match="hotwords"):
            client.index(b"x", collection="c", hotwords="Qdrant")


def test_async_client_sends_the_speech_options():
    async def scenario(url: str) -> None:
        async with AsyncClient(url, "key") as client:
            await client.analyze(url="https://example.com/a.mp3", **SPEECH)
            await client.index(url="https://example.com/a.mp3", collection="c", prompt="Hi.")

    with FakeServer(ACCEPTED) as server:
        asyncio.run(scenario(server.url))
    analyzed, indexed = server.requests
    assert analyzed.json() == {"media": {"url": "https://example.com/a.mp3"}, **SPEECH}
    assert indexed.json() == {"media": {"url": "https://example.com/a.mp3"}, "collection": "c",
                              "prompt": "Hi."}


def test_cli_speech_flags_build_the_request(capsys):
    from hark_client.cli import main

    flags = ["--no-vad", "--vad-threshold", "0.35", "--vad-min-speech-ms", "100",
             "--vad-min-silence-ms", "500", "--vad-speech-pad-ms", "200", "--prompt",
             "A talk about vector search.", "--hotword", "Siobhan Nguyen", "--hotword",
             "Qdrant", "--min-speakers", "2", "--max-speakers", "3"]
    with FakeServer(ACCEPTED) as server:
        assert main(["--url", server.url, "--api-key", "k", "analyze",
                     "https://example.com/a.mp3", *flags]) == 0
        assert main(["--url", server.url, "--api-key", "k", "index",
                     "https://example.com/a.mp3", "--collection", "c", "--speakers", "2"]) == 0
        assert main(["--url", server.url, "--api-key", "k", "analyze",
                     "https://example.com/a.mp3", "--diarize"]) == 0
    analyzed, indexed, diarized = (r.json() for r in server.requests)
    assert analyzed == {"media": {"url": "https://example.com/a.mp3"}, **SPEECH}
    assert indexed == {"media": {"url": "https://example.com/a.mp3"}, "collection": "c",
                       "diarize": True, "num_speakers": 2}  # --speakers implies --diarize
    assert diarized == {"media": {"url": "https://example.com/a.mp3"}, "diarize": True}
    capsys.readouterr()
    for bad in (["--speakers", "2", "--max-speakers", "3"], ["--min-speakers", "3",
                "--max-speakers", "2"], ["--vad-threshold", "1"], ["--speakers", "21"],
                ["--vad-speech-pad-ms", "-1"]):
        with pytest.raises(SystemExit) as caught:
            main(["--url", "http://127.0.0.1:9", "analyze", "https://example.com/a.mp3",
                  *bad])
        assert caught.value.code == 2, bad
    assert "--speakers or --min-speakers" in capsys.readouterr().err
