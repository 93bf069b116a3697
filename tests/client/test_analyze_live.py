"""Real transcription and indexing through the SDK (espeak-ng speech, tiny.en weights).

The CLI's ``analyze --wait`` is checked against a scripted server in ``test_cli``."""

from __future__ import annotations

import json

import pytest

from bench.speech import WEATHER, espeak_available, make_speech_clip, words_of
from hark_client import ConflictError, Task, ValidationError

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not espeak_available(), reason="espeak-ng not installed")]
SPOKEN = {"weather", "today", "sunny", "warm", "light", "breeze", "west"}


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_speech_clip(tmp_path_factory.mktemp("speech") / "weather.wav", WEATHER)


def test_analyze_waits_and_returns_a_transcript(hark, clip):
    seen: list[Task] = []
    task = hark.analyze(clip, word_timestamps=True, wait=True, timeout=120,
                        on_progress=seen.append)
    assert task.succeeded and seen[-1].status == "completed"
    transcript = task.transcript
    assert len(SPOKEN & words_of(transcript.text)) >= 4, transcript.text
    assert transcript.language == "en" and 3 < transcript.duration < 10
    assert transcript.segments and all(s.start <= s.end for s in transcript.segments)
    assert list(transcript.words) and all(w.start <= w.end for w in transcript.words)

    srt = hark.transcript(task.id, "srt")
    assert srt.lstrip().startswith("1\n") and " --> " in srt
    assert hark.transcript(task.id, "vtt").startswith("WEBVTT")
    assert len(SPOKEN & words_of(hark.transcript(task.id))) >= 4
    assert json.loads(hark.transcript(task.id, "json"))["segments"]


def test_empty_upload_is_refused(hark):
    with pytest.raises(ValidationError) as caught:
        hark.analyze(b"", filename="empty.wav")
    assert caught.value.code == "empty_media"


def test_index_then_search(hark, clip):
    hark.collections.create("talks")
    task = hark.index(clip, collection="talks", media_id="weather", wait=True, timeout=120)
    assert task.succeeded and task.endpoint == "/index"
    assert len(SPOKEN & words_of(task.transcript.text)) >= 4
    [media] = list(hark.collections.media("talks"))
    assert media.id == "weather" and media.task_id == task.id and media.segment_count >= 1
    detail = hark.collections.get_media("talks", "weather")
    assert detail.segments and len(SPOKEN & words_of(detail.segments[0].text)) >= 2
    hits = hark.collections.search("talks", "what is the forecast, will it rain?", top_k=3)
    assert hits and hits[0].media_id == "weather" and hits[0].score is not None
    assert hits == sorted(hits, key=lambda h: -h.score)
    assert hits[0].task_id == task.id and hits[0].collection_id == "talks"
    heard = sorted(SPOKEN & words_of(detail.segments[0].text))[0]  # a word it holds
    everywhere = hark.search(heard, mode="keyword")
    assert [(h.collection_id, h.media_id) for h in everywhere] == [("talks", "weather")]
    with pytest.raises(ConflictError):
        hark.index(clip, collection="talks", media_id="weather")
    assert hark.collections.get("talks").media_count == 1
    assert hark.collections.delete_media("talks", "weather").id == "weather"
