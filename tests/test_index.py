"""POST /index end to end: real speech, tiny.en, the embedding model, a real worker (and
an embed worker for the searches)."""

import base64
import uuid

import numpy as np
import pytest
from sqlalchemy import func, select

from bench.speech import COOKING, OTHER_SENTENCES, WEATHER, espeak_available, make_speech_clip
from core import collections_store as store
from core.models_collections import CollectionMedia, Segment
from tests.support import wait_for
from workers import indexing
from workers.runner import TaskContext

TRAINS = OTHER_SENTENCES[0]  # "The train to the mountains leaves the station at nine ..."
needs_espeak = pytest.mark.skipif(not espeak_available(), reason="espeak-ng not installed")


def words(text: str) -> set[str]:
    return {w.strip(".,!?;:").lower() for w in text.split()}


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    if not espeak_available():
        pytest.skip("espeak-ng not installed")
    folder = tmp_path_factory.mktemp("index-speech")
    return {"weather": make_speech_clip(folder / "weather.wav", WEATHER),
            "cooking": make_speech_clip(folder / "cooking.mp3", COOKING),
            "trains": make_speech_clip(folder / "trains.wav", TRAINS)}


def finished(client, auth, task_id, timeout=120):
    return wait_for(lambda: (b := client.get(f"/tasks/{task_id}", headers=auth).get_json())
                    ["status"] in ("completed", "failed") and b, timeout=timeout,
                    message="task to finish")


def submit(client, auth, clip, media_id, **options):
    with open(clip, "rb") as fh:
        response = client.post("/index?defer=true", headers=auth,
                               data={"file": (fh, clip.name), "collection": "talks",
                                     "media_id": media_id, **options})
    assert response.status_code == 202, response.get_json()
    return response.get_json()["task_id"]


def search(client, auth, query, top_k=3, collection="talks"):
    response = client.post(f"/collections/{collection}/search", headers=auth,
                           json={"query": query, "top_k": top_k})
    assert response.status_code == 200, response.get_json()
    return response.get_json()["results"]


def rows(db, model) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(model))


@needs_espeak
def test_index_three_topics_and_search_them(client, auth, other_key, worker, embed_worker,
                                            clips, db):
    assert client.post("/collections", headers=auth,
                       json={"collection_id": "talks", "name": "Talks"}).status_code == 201
    tasks = {topic: submit(client, auth, clips[topic], topic) for topic in clips}
    for topic, task_id in tasks.items():
        task = finished(client, auth, task_id)
        assert task["status"] == "completed", task["error"]
        result = task["result"]
        assert result["collection"] == "talks" and result["media_id"] == topic
        assert result["segments"] >= 1 and result["language"] == "en"
        assert result["model"] == "tiny.en" and 2 < result["duration"] < 10
        assert result["transcript"]["segments"] and task["progress"] == 100
    heard = words(finished(client, auth, tasks["weather"])["result"]["transcript"]["text"])
    assert len({"weather", "sunny", "warm", "breeze", "west"} & heard) >= 3, heard
    srt = client.get(f"/tasks/{tasks['trains']}/transcript?format=srt", headers=auth)
    assert srt.status_code == 200 and " --> " in srt.get_data(True)

    for query, topic in [("Is it going to rain, or will it be a sunny day?", "weather"),
                         ("a recipe for an Italian dinner", "cooking"),
                         ("When does the railway journey depart?", "trains")]:
        hits = search(client, auth, query)
        assert hits[0]["media_id"] == topic, (query, hits)
        assert hits[0]["score"] > hits[-1]["score"] and len(hits) == 3
        assert 0 <= hits[0]["start"] < hits[0]["end"] and hits[0]["text"]

    media = client.get("/collections/talks/media", headers=auth).get_json()["media"]
    assert sorted(m["media_id"] for m in media) == ["cooking", "trains", "weather"]
    weather = next(m for m in media if m["media_id"] == "weather")
    assert weather["task_id"] == tasks["weather"] and weather["filename"] == "weather.wav"
    one = client.get("/collections/talks/media/cooking", headers=auth).get_json()
    assert len(one["segments"]) == one["segment_count"] >= 1
    assert "pasta" in " ".join(s["text"] for s in one["segments"]).lower()
    words_hit = client.post("/collections/talks/search", headers=auth,
                            json={"query": "pasta", "mode": "keyword"}).get_json()["results"]
    assert [h["media_id"] for h in words_hit] == ["cooking"]
    assert words_hit[0]["keyword_rank"] == 1 and words_hit[0]["vector_rank"] is None
    everywhere = client.post("/search", headers=auth, json={"query": "pasta with garlic"})
    assert everywhere.get_json()["results"][0]["media_id"] == "cooking"

    # Bob sees none of it, and his collection of the same name is his own.
    bob = {"x-api-key": other_key}
    assert client.post("/collections/talks/search", headers=bob,
                       json={"query": "weather"}).status_code == 404
    with open(clips["weather"], "rb") as fh:
        refused = client.post("/index", headers=bob,
                              data={"file": (fh, "w.wav"), "collection": "talks"})
    assert refused.status_code == 404
    client.post("/collections", headers=bob, json={"collection_id": "talks"})
    assert search(client, bob, "weather") == []

    # Deleting the collection removes its media and segments.
    assert rows(db, Segment) >= 3
    assert client.delete("/collections/talks", headers=auth).status_code == 200
    assert rows(db, CollectionMedia) == 0 and rows(db, Segment) == 0


@needs_espeak
def test_reindex_is_409_unless_asked_then_replaces(client, auth, worker, embed_worker, clips,
                                                   db):
    client.post("/collections", headers=auth, json={"collection_id": "talks"})
    payload = base64.b64encode(clips["weather"].read_bytes()).decode()
    body = {"collection": "talks", "media": {"base64": payload, "filename": "w.wav"}}
    first = client.post("/index?timeout=120", headers=auth, json=body).get_json()
    assert first["status"] == "completed", first
    media_id = first["result"]["media_id"]  # generated
    assert len(media_id) == 32 and first["data"]["media_id"] == media_id
    again = client.post("/index", headers=auth, json={**body, "media_id": media_id})
    assert again.status_code == 409 and "reindex_if_exists" in again.get_json()["message"]

    with open(clips["trains"], "rb") as fh:  # same media id, different content
        replaced = client.post("/index?timeout=120", headers=auth,
                               data={"file": (fh, "trains.wav"), "collection": "talks",
                                     "media_id": media_id, "reindex_if_exists": "true"})
    replaced = replaced.get_json()
    assert replaced["status"] == "completed", replaced
    media = client.get(f"/collections/talks/media/{media_id}", headers=auth).get_json()
    assert media["task_id"] == replaced["task_id"] and media["filename"] == "trains.wav"
    assert "train" in " ".join(s["text"] for s in media["segments"]).lower()
    assert rows(db, CollectionMedia) == 1 and rows(db, Segment) == media["segment_count"]
    hits = search(client, auth, "sunny weather with a breeze", top_k=10)
    assert {h["media_id"] for h in hits} == {media_id}
    assert not any("sunny" in h["text"].lower() for h in hits)


# --- the pipeline's own checks, without Celery -------------------------------------------


@pytest.fixture()
def pipeline(db, monkeypatch, client, auth):
    """Run ``run_index_task`` in-process with a fake transcription, then its completion
    steps (the segments) in one transaction."""
    client.post("/collections", headers=auth, json={"collection_id": "talks"})
    monkeypatch.setattr(indexing.context, "database", lambda: db)
    segments = [{"id": 0, "start": 0.0, "end": 2.0, "text": " Trains leave at nine."},
                {"id": 1, "start": 2.0, "end": 4.0, "text": " Tea is served."}]
    transcript = {"text": "Trains leave at nine. Tea is served.", "language": "en",
                  "duration": 4.0, "model": "tiny.en", "segments": segments}
    during: list = []

    def fake_transcribe(ctx, scale):
        assert scale == indexing.TRANSCRIBE_SHARE
        for action in during:
            action()
        return transcript

    monkeypatch.setattr(indexing, "transcribe_media", fake_transcribe)

    def run(media_id="m1", replace=False, collection="talks", task_id=None):
        data = {"collection": collection, "media_id": media_id, "reindex_if_exists": replace,
                "media": {"url": "http://x/a.mp3"}}
        ctx = TaskContext(task_id=task_id or uuid.uuid4(), endpoint="/index", data=data,
                          owner="alice", device="cpu", worker="test")
        result = indexing.run_index_task(ctx)
        with db.engine.begin() as conn:  # as the completion's transaction runs them
            for step in ctx.completion_steps:
                step(conn)
        return result

    run.during = during
    return run


def test_pipeline_stores_passages_with_vectors(pipeline, db):
    result = pipeline()
    assert result["segments"] == 1 and result["transcript"]["duration"] == 4.0
    with db.session() as session:
        segment = session.scalars(select(Segment)).one()
        media = session.scalars(select(CollectionMedia)).one()
    assert segment.text == "Trains leave at nine. Tea is served."
    assert (segment.start, segment.end) == (0.0, 4.0) and media.url == "http://x/a.mp3"
    vector = np.array(segment.embedding, dtype=np.float32)
    assert vector.shape == (384,) and abs(float(np.linalg.norm(vector)) - 1) < 1e-5


def test_pipeline_guards_at_commit_time(pipeline, db):
    def index_meanwhile():
        with db.transaction() as session:
            store.save_media(session, owner="alice", collection_id="talks", media_id="m1",
                             replace=False, passages=[], vectors=np.zeros((0, 384)))

    pipeline.during.append(index_meanwhile)
    with pytest.raises(indexing.MediaAlreadyIndexed, match="reindex_if_exists"):
        pipeline("m1")
    with pytest.raises(indexing.MediaAlreadyIndexed):  # checked before transcribing too
        pipeline("m1")
    pipeline.during.clear()
    assert pipeline("m1", replace=True)["segments"] == 1
    with db.session() as session:
        assert session.scalar(select(CollectionMedia.segment_count)) == 1


def test_a_rerun_of_the_same_task_replaces_its_own_earlier_attempt(pipeline, db):
    task_id = uuid.uuid4()
    pipeline("m1", task_id=task_id)
    pipeline("m1", task_id=task_id)  # e.g. the worker died before marking it completed
    with pytest.raises(indexing.MediaAlreadyIndexed):
        pipeline("m1")
    with db.session() as session:
        assert session.scalar(select(CollectionMedia.task_id)) == task_id
        assert session.scalar(select(func.count()).select_from(Segment)) == 1


def test_pipeline_fails_if_the_collection_goes_away(pipeline, client, auth):
    pipeline.during.append(lambda: client.delete("/collections/talks", headers=auth))
    with pytest.raises(indexing.CollectionGone):
        pipeline("m1")
    with pytest.raises(indexing.CollectionGone):
        pipeline("m1", collection="nope")


@pytest.mark.parametrize("segments,expected", [
    ([], []),
    ([{"start": 0, "end": 1, "text": "  "}], []),
    ([{"start": 0, "end": 5, "text": " Hello there."}, {"start": 5, "end": 9, "text": " Bye."}],
     [(0, 9, "Hello there. Bye.")]),
    ([{"start": 10 * i, "end": 10 * i + 9, "text": f"part {i}"} for i in range(7)],
     [(0, 29, "part 0 part 1 part 2"), (30, 59, "part 3 part 4 part 5"), (60, 69, "part 6")]),
    ([{"start": 0, "end": 2, "text": "a " * 40}, {"start": 2, "end": 4, "text": "b " * 30},
      {"start": 4, "end": 40, "text": "long"}],
     [(0, 2, " ".join(["a"] * 40)), (2, 4, " ".join(["b"] * 30)), (4, 40, "long")]),
])
def test_merge_segments(segments, expected):
    merged = indexing.merge_segments(segments)
    assert [(p["start"], p["end"], p["text"]) for p in merged] == expected
