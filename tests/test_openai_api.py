"""The OpenAI-compatible API (/v1) driven by the official ``openai`` package, against the
API under gunicorn and a real worker transcribing real speech with tiny.en."""

from __future__ import annotations

import uuid
from dataclasses import replace

import httpx
import httpx2
import openai
import pytest
import redis
from openai import OpenAI

from app import create_app
from bench.speech import WEATHER, espeak_available, make_speech_clip, words_of
from tests.conftest import BROKER_URL, sql
from tests.support import start_api, wait_for

pytestmark = pytest.mark.skipif(not espeak_available(), reason="espeak-ng not installed")
SPOKEN = words_of(WEATHER)
SEGMENT_FIELDS = {"id", "seek", "start", "end", "text", "tokens", "temperature",
                  "avg_logprob", "compression_ratio", "no_speech_prob"}


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_speech_clip(tmp_path_factory.mktemp("speech") / "weather.wav", WEATHER)


@pytest.fixture(scope="module")
def api_url(settings_env, log_dir, worker):
    process, base_url = start_api(settings_env, log_dir)
    yield base_url
    process.stop()


@pytest.fixture()
def oai(api_url, api_key):
    with OpenAI(base_url=api_url + "/v1", api_key=api_key, max_retries=0) as client:
        yield client


def heard(text: str) -> int:
    return len(SPOKEN & words_of(text))


def test_every_response_format_is_a_task_like_any_other(oai, clip, api_url, api_key, db):
    auth = {"Authorization": f"Bearer {api_key}"}
    hook = httpx.post(api_url + "/webhooks", headers=auth,
                      json={"url": "http://127.0.0.1:9/hook", "events": ["task.completed"]})
    assert hook.status_code == 201, hook.text
    transcribe = oai.audio.transcriptions.create
    with open(clip, "rb") as fh:
        raw = oai.audio.transcriptions.with_raw_response.create(
            file=fh, model="whisper-1", language="en", prompt="Weather report.")
    first = raw.parse()
    assert heard(first.text) >= 4, first.text
    assert first.usage.type == "duration" and 3 <= first.usage.seconds <= 10
    task_id = raw.headers["x-hark-task-id"]
    answers = {}
    for fmt in ("text", "srt", "vtt"):
        answers[fmt] = transcribe(file=clip, model="tiny.en", response_format=fmt)
        assert isinstance(answers[fmt], str)
    assert heard(answers["text"]) >= 4 and answers["text"].endswith("\n")
    assert answers["srt"].startswith("1\n00:00:0") and " --> " in answers["srt"]
    assert answers["vtt"].startswith("WEBVTT\n\n00:00:0")
    verbose = transcribe(file=clip, model="whisper-1", response_format="verbose_json",
                         timestamp_granularities=["word", "segment"])
    assert verbose.task == "transcribe" and verbose.language == "en"
    assert 3 < verbose.duration < 10 and heard(verbose.text) >= 4
    assert verbose.segments and all(set(s.model_dump()) == SEGMENT_FIELDS
                                    for s in verbose.segments)
    for n, segment in enumerate(verbose.segments):
        assert segment.id == n and segment.seek == 0 and segment.tokens
        assert all(isinstance(t, int) and 0 <= t < 50257 for t in segment.tokens)
        assert segment.temperature == 0 and -1 < segment.avg_logprob < 0
        assert 0 < segment.compression_ratio < 2.4 and 0 <= segment.no_speech_prob < 0.6
        assert 0 <= segment.start < segment.end <= verbose.duration
    assert len(verbose.words) >= 8 and heard(" ".join(w.word for w in verbose.words)) >= 4
    assert all(set(w.model_dump()) == {"word", "start", "end"} for w in verbose.words)
    assert all(0 <= w.start <= w.end <= verbose.duration for w in verbose.words)
    # Each call was a task: listed, counted, its transcript served, its webhook fired.
    tasks = httpx.get(api_url + "/tasks", headers=auth).json()["tasks"]
    assert len(tasks) == 5 and {t["endpoint"] for t in tasks} == {"/analyze"}
    assert {t["status"] for t in tasks} == {"completed"}
    counted = httpx.get(api_url + "/tasks/count", headers=auth).json()
    assert counted["completed"] == counted["total"] == 5
    mine = next(t for t in tasks if t["id"] == task_id)
    assert mine["data"]["options"]["prompt"] == "Weather report."
    txt = httpx.get(f"{api_url}/tasks/{task_id}/transcript?format=txt", headers=auth).text
    assert txt.strip() == first.text
    by_words = next(t for t in tasks if t["data"]["options"]["word_timestamps"])
    assert by_words["result"]["segments"][0]["tokens"] == verbose.segments[0].tokens
    events = wait_for(lambda: sql(db, "SELECT event FROM webhook_deliveries WHERE task_id "
                                  "= :t AND webhook_id = :w", t=task_id,
                                  w=hook.json()["id"]).scalars().all(),
                      message="the webhook delivery of the task")
    assert events == ["task.completed"]


def test_translations(oai, clip, api_url, api_key):
    """The route runs a translate task; tiny.en cannot translate, so the task fails and
    the answer is an OpenAI 400 naming it (its task id included)."""
    with pytest.raises(openai.BadRequestError) as caught:
        oai.audio.translations.create(file=clip, model="whisper-1", response_format="json",
                                      prompt="A weather report.")
    error = caught.value.body
    assert caught.value.status_code == 400 and error["code"] == "task_failed"
    assert "English-only and cannot translate" in error["message"]
    task = httpx.get(f"{api_url}/tasks/{error['task_id']}",
                     headers={"x-api-key": api_key}).json()
    assert task["status"] == "failed" and task["data"]["options"]["task"] == "translate"
    for extra in ({"language": "en"}, {"timestamp_granularities[]": "word"}):
        with pytest.raises(openai.BadRequestError) as caught:
            oai.audio.translations.create(file=clip, model="whisper-1", extra_body=extra)
        assert caught.value.body["param"] == next(iter(extra)), caught.value.body
    with pytest.raises(openai.BadRequestError) as caught:
        oai.audio.translations.create(file=clip, model="whisper-1",
                                      response_format="diarized_json")
    assert caught.value.body["param"] == "response_format"


def test_diarized_json_names_the_speakers(oai, clip):
    answer = oai.audio.transcriptions.create(file=clip, model="whisper-1",
                                             response_format="diarized_json").model_dump()
    assert answer["segments"] and {s["speaker"] for s in answer["segments"]} == {"SPEAKER_00"}
    assert heard(" ".join(s["text"] for s in answer["segments"])) >= 4


def test_models(oai):
    ids = [m.id for m in oai.models.list()]
    assert ids[0] == "whisper-1" and {"tiny.en", "base"} <= set(ids)
    model = oai.models.retrieve("tiny.en")
    assert model.id == "tiny.en" and model.object == "model" and model.owned_by == "hark"
    with pytest.raises(openai.NotFoundError) as caught:
        oai.models.retrieve("gpt-4o-transcribe")
    assert caught.value.body["code"] == "model_not_found"


@pytest.mark.parametrize("kwargs,param,code", [
    ({"model": "gpt-4o-transcribe"}, "model", "model_not_found"),
    ({"response_format": "docx"}, "response_format", "validation_error"),
    ({"timestamp_granularities": ["word"]}, "timestamp_granularities[]", "invalid_value"),
    ({"timestamp_granularities": ["letter"], "response_format": "verbose_json"},
     "timestamp_granularities[].0", "validation_error"),
    ({"temperature": 0.4}, "temperature", "unsupported_value"),
    ({"language": "not a language!"}, "language", "validation_error"),
    ({"extra_body": {"chunking_strategy": "auto"}}, "chunking_strategy", "validation_error"),
])
def test_bad_requests_are_openai_shaped_400s(oai, clip, api_url, api_key, kwargs, param,
                                             code):
    with pytest.raises(openai.BadRequestError) as caught:
        oai.audio.transcriptions.create(file=clip, **{"model": "whisper-1", **kwargs})
    error = caught.value.body
    assert set(error) == {"message", "type", "param", "code"}, error
    assert error["type"] == "invalid_request_error" and error["code"] == code, error
    assert error["param"] == param and error["message"], error
    tasks = httpx.get(api_url + "/tasks/count", headers={"x-api-key": api_key}).json()
    assert tasks["total"] == 0  # refused before any task or upload


def test_missing_file_bad_key_and_wrong_routes(api_url, api_key, clip):
    auth = {"Authorization": f"Bearer {api_key}"}
    url = api_url + "/v1/audio/transcriptions"
    cases = [
        (httpx.post(url, headers=auth, files={"model": (None, "whisper-1")}), 400, "file"),
        (httpx.post(url, headers=auth, json={"model": "whisper-1"}), 415, None),
        (httpx.get(url, headers=auth), 405, None),
        (httpx.get(api_url + "/v1/nothing", headers=auth), 404, None),
    ]
    for response, status, param in cases:
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert error["param"] == param and error["type"] == "invalid_request_error", error
    with OpenAI(base_url=api_url + "/v1", api_key="hk_" + "x" * 43, max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError) as caught:
            bad.models.list()
    assert caught.value.body["code"] == "invalid_api_key"
    # the platform's own routes keep the platform's error shape
    assert httpx.get(api_url + "/tasks/nope", headers=auth).json()["error"] == "not_found"


@pytest.fixture()
def impatient_app(settings):
    """The API in-process, waiting 0.2 s, publishing to a namespace no worker reads."""
    prefix = f"hark-test-unread-{uuid.uuid4().hex[:8]}:"
    app = create_app(replace(settings, openai_sync_timeout=0.2, broker_key_prefix=prefix))
    yield app
    app.extensions["hark"]["waiter"].close()
    app.extensions["hark"]["db"].dispose()
    broker = redis.Redis.from_url(BROKER_URL)
    for key in broker.scan_iter(match=f"{prefix}*", count=1000):
        broker.delete(key)


def test_a_call_beyond_the_wait_answers_with_its_task_id(impatient_app, api_key, clip):
    """Past ``OPENAI_SYNC_TIMEOUT`` the answer is an OpenAI error naming the task, which
    goes on; the client does not retry it (``x-should-retry: false``): one task only."""
    transport = httpx2.Client(transport=httpx2.WSGITransport(app=impatient_app))
    with OpenAI(base_url="http://hark.test/v1", api_key=api_key, max_retries=2,
                http_client=transport) as client:
        with pytest.raises(openai.APIStatusError) as caught:
            client.audio.transcriptions.create(file=clip, model="whisper-1")
    assert caught.value.status_code == 504
    error = caught.value.body
    assert error["code"] == "task_not_finished" and error["task_id"] in error["message"]
    web = impatient_app.test_client()
    auth = {"x-api-key": api_key}
    tasks = web.get("/tasks", headers=auth).get_json()["tasks"]
    assert [t["id"] for t in tasks] == [error["task_id"]]
    assert tasks[0]["status"] == "assigned"
    assert web.delete(f"/tasks/{error['task_id']}", headers=auth).status_code == 200
