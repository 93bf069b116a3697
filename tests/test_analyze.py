"""POST /analyze end to end: real speech, real tiny.en weights, a real worker."""

import base64
import http.server
import threading
from dataclasses import replace
from functools import partial

import pytest

from bench.speech import COOKING, WEATHER, espeak_available, make_speech_clip
from tests.support import wait_for

pytestmark = pytest.mark.skipif(not espeak_available(), reason="espeak-ng not installed")


def words(text: str) -> set[str]:
    return {w.strip(".,!?;:").lower() for w in text.split()}


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("speech")
    return {"weather": make_speech_clip(folder / "weather.wav", WEATHER),
            "cooking": make_speech_clip(folder / "cooking.mp3", COOKING),
            "folder": folder}


def finished(client, auth, task_id, timeout=120):
    return wait_for(lambda: (b := client.get(f"/tasks/{task_id}", headers=auth).get_json())
                    ["status"] in ("completed", "failed") and b, timeout=timeout,
                    message="task to finish")


def test_upload_is_transcribed_with_timestamps(client, auth, worker, clips):
    with open(clips["weather"], "rb") as fh:
        response = client.post("/analyze?timeout=120", headers=auth,
                               data={"file": (fh, "weather.wav"), "word_timestamps": "true"})
    assert response.status_code == 200, response.get_json()
    task = response.get_json()
    result = task["result"]
    spoken_words = {"weather", "today", "sunny", "warm", "light", "breeze", "west"}
    assert len(spoken_words & words(result["text"])) >= 4, result["text"]
    assert result["language"] == "en" and result["model"] == "tiny.en"
    assert 3 < result["duration"] < 10
    ends = [s["end"] for s in result["segments"]]
    assert all(0 <= s["start"] <= s["end"] <= result["duration"] + 0.01
               for s in result["segments"])
    assert ends == sorted(ends)
    spoken = [w for s in result["segments"] for w in s["words"]]
    assert spoken and all(w["start"] <= w["end"] for w in spoken)
    assert task["data"]["media"]["filename"] == "weather.wav"
    assert task["data"]["options"]["word_timestamps"] is True


def test_base64_mp3_deferred_and_transcript_formats(client, auth, worker, clips):
    payload = base64.b64encode(clips["cooking"].read_bytes()).decode()
    response = client.post("/analyze?defer=true", headers=auth,
                           json={"media": {"base64": payload, "filename": "cooking.mp3"}})
    assert response.status_code == 202
    task_id = response.get_json()["task_id"]
    task = finished(client, auth, task_id)
    assert task["status"] == "completed", task["error"]
    heard = words(task["result"]["text"])
    assert len({"cook", "pasta", "tomatoes", "garlic", "fresh", "basil"} & heard) >= 3, heard
    txt = client.get(f"/tasks/{task_id}/transcript?format=txt", headers=auth)
    assert txt.status_code == 200 and txt.mimetype == "text/plain"
    srt = client.get(f"/tasks/{task_id}/transcript?format=srt", headers=auth).get_data(True)
    assert srt.startswith("1\n00:00:0") and " --> " in srt
    vtt = client.get(f"/tasks/{task_id}/transcript?format=vtt", headers=auth).get_data(True)
    assert vtt.startswith("WEBVTT\n\n00:00:0")
    as_json = client.get(f"/tasks/{task_id}/transcript?format=json", headers=auth).get_json()
    assert as_json["text"] == task["result"]["text"]
    assert client.get(f"/tasks/{task_id}/transcript?format=doc", headers=auth).status_code == 400


@pytest.fixture()
def media_server(clips):
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(clips["folder"]))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_media_url(client, auth, worker, media_server):
    response = client.post("/analyze?timeout=120", headers=auth,
                           json={"media": {"url": media_server + "/weather.wav"}})
    task = response.get_json()
    assert task["status"] == "completed", task
    assert "west" in words(task["result"]["text"])
    missing = client.post("/analyze?timeout=60", headers=auth,
                          json={"media": {"url": media_server + "/nope.wav"}}).get_json()
    assert missing["status"] == "failed" and "404" in missing["error"]["message"]


def test_private_media_url_is_refused(client, auth, app, monkeypatch):
    monkeypatch.setitem(app.config, "HARK",
                        replace(app.config["HARK"], media_allow_private=False))
    response = client.post("/analyze", headers=auth,
                           json={"media": {"url": "http://169.254.169.254/latest/meta-data"}})
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_media_url"
    for url in ("file:///etc/passwd", "ftp://example.com/a.wav", "http://127.0.0.1/x.wav"):
        bad = client.post("/analyze", headers=auth, json={"media": {"url": url}})
        assert bad.status_code == 400


def test_corrupt_input_fails_cleanly_and_worker_survives(client, auth, worker, clips):
    garbage = client.post("/analyze?timeout=60", headers=auth,
                          data={"file": (__import__("io").BytesIO(b"\x00\x01garbage" * 500),
                                         "clip.wav")}).get_json()
    assert garbage["status"] == "failed"
    assert garbage["error"]["type"] == "MediaDecodeError"
    assert "decode" in garbage["error"]["message"]
    text = client.post("/analyze?timeout=60", headers=auth,
                       json={"media": {"base64": base64.b64encode(b"hello, I am text").decode(),
                                       "filename": "notes.txt"}}).get_json()
    assert text["status"] == "failed"
    with open(clips["weather"], "rb") as fh:  # the worker still serves
        ok = client.post("/analyze?timeout=120", headers=auth,
                         data={"file": (fh, "w.wav")}).get_json()
    assert ok["status"] == "completed"


@pytest.mark.parametrize("body,error", [
    ({"media": {}}, "validation_error"),
    ({"media": {"url": "http://a.com/x", "base64": "AAAA"}}, "validation_error"),
    ({"media": {"base64": "not base64!!"}}, "validation_error"),
    ({"media": {"base64": "AAAA"}, "model": "huge-v9"}, "unknown_model"),
    ({"media": {"base64": "AAAA"}, "task": "summarize"}, "validation_error"),
    ({"media": {"base64": "AAAA"}, "word_timestamps": "yes"}, "validation_error"),
    ({"media": {"base64": "AAAA"}, "webhook": "http://10.0.0.1/hook"}, "invalid_webhook_url"),
    ({"media": {"base64": "AAAA"}, "extra": 1}, "validation_error"),
])
def test_bad_requests_are_400(client, auth, body, error, app, monkeypatch):
    monkeypatch.setitem(app.config, "HARK",
                        replace(app.config["HARK"], webhook_allow_private=False))
    response = client.post("/analyze", headers=auth, json=body)
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"] == error
    assert client.get("/tasks/count", headers=auth).get_json()["total"] == 0


def test_empty_upload_and_missing_file(client, auth):
    empty = client.post("/analyze", headers=auth,
                        data={"file": (__import__("io").BytesIO(b""), "a.wav")})
    assert empty.status_code == 400 and empty.get_json()["error"] == "empty_media"
    no_file = client.post("/analyze", headers=auth, data={"model": "tiny.en"})
    assert no_file.status_code == 415 and "multipart" in no_file.get_json()["message"]
    import io

    only_form = client.post("/analyze", headers=auth,
                            data={"model": "tiny.en", "other": (io.BytesIO(b"x"), "x.wav")})
    assert only_form.status_code == 400 and "file" in only_form.get_json()["message"]


def test_too_long_media_is_413_before_any_work(client, auth, clips, app, monkeypatch):
    monkeypatch.setitem(app.config, "HARK", replace(app.config["HARK"], max_media_seconds=1.0))
    with open(clips["weather"], "rb") as fh:
        response = client.post("/analyze", headers=auth, data={"file": (fh, "w.wav")})
    assert response.status_code == 413 and response.get_json()["error"] == "media_too_long"
    assert client.get("/tasks/count", headers=auth).get_json()["total"] == 0


def test_deleting_a_task_deletes_its_media(client, auth, worker, clips, db):
    from sqlalchemy import func, select

    from core.models import MediaBlob

    with open(clips["weather"], "rb") as fh:
        task = client.post("/analyze?defer=true", headers=auth,
                           data={"file": (fh, "w.wav")}).get_json()
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(MediaBlob)) == 1
    client.delete(f"/tasks/{task['task_id']}", headers=auth)
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(MediaBlob)) == 0


def test_transcript_not_ready_and_not_a_transcription(client, auth, worker):
    sleep = client.post("/diagnostics/sleep", json={"seconds": 0}, headers=auth).get_json()
    response = client.get(f"/tasks/{sleep['id']}/transcript", headers=auth)
    assert response.status_code == 400
