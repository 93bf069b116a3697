"""``PATCH /tasks/<id>``: speaker names and segment corrections, kept with the task and
reflected in every download and in an ``/index`` task's collection passages."""

from __future__ import annotations

import numpy as np

from core import collections_store, lifecycle
from core.models_collections import Segment
from tests.support import wait_for

RESULT = {"text": " Hello there. General Kenobi.", "language": "en", "duration": 4.0,
          "model": "tiny.en", "segments": [
              {"id": 0, "start": 0.0, "end": 1.5, "text": " Hello there.",
               "speaker": "SPEAKER_00",
               "words": [{"word": " Hello", "start": 0.0, "end": 0.6, "probability": 0.9}]},
              {"id": 1, "start": 1.5, "end": 4.0, "text": " General Kenobi.",
               "speaker": "SPEAKER_01"}]}


def finished_task(db, endpoint: str = "/analyze", owner: str = "alice"):
    with db.transaction() as session:
        task = lifecycle.create_task(session, owner=owner, endpoint=endpoint, data={
            "media": {"url": "http://127.0.0.1:9/a.wav"}, "options": {}})
    with db.transaction() as session:
        lifecycle.claim(session, task.id, worker="w@test", device="cpu")
    result = RESULT if endpoint == "/analyze" else {"transcript": RESULT, "segments": 1}
    with db.transaction() as session:
        lifecycle.complete(session, task.id, attempt=1, result=result)
    return task.id


def test_edits_are_kept_and_every_download_shows_them(client, db, auth):
    task_id = finished_task(db)
    response = client.patch(f"/tasks/{task_id}", headers=auth, json={
        "speaker_names": {"SPEAKER_00": "Obi-Wan"},
        "segments": [{"index": 1, "text": "General Grievous."}]})
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"speaker_names": {"SPEAKER_00": "Obi-Wan"},
                                   "segments": {"1": "General Grievous."}}
    body = client.get(f"/tasks/{task_id}/transcript?format=json", headers=auth).get_json()
    assert body["segments"][1]["text"].strip() == "General Grievous."
    assert body["segments"][0]["speaker_name"] == "Obi-Wan"
    assert body["speaker_names"] == {"SPEAKER_00": "Obi-Wan"}
    assert body["text"] == "Hello there. General Grievous."
    for fmt in ("txt", "srt", "vtt"):
        text = client.get(f"/tasks/{task_id}/transcript?format={fmt}",
                          headers=auth).get_data(as_text=True)
        assert "General Grievous." in text and "Kenobi" not in text, fmt
    # Merged: a second patch keeps the first; an empty name drops it.
    again = client.patch(f"/tasks/{task_id}", headers=auth, json={
        "speaker_names": {"SPEAKER_00": "", "SPEAKER_01": "Grievous"}}).get_json()
    assert again == {"speaker_names": {"SPEAKER_01": "Grievous"},
                     "segments": {"1": "General Grievous."}}


def test_bad_edits_are_400_and_unfinished_tasks_409(client, db, auth, other_key):
    task_id = finished_task(db)
    for body in ({"segments": [{"index": 7, "text": "x"}]},
                 {"segments": [{"index": 0, "text": ""}]},
                 {"speaker_names": {"S": "x" * 201}}, {"colour": "red"}):
        response = client.patch(f"/tasks/{task_id}", headers=auth, json=body)
        assert response.status_code == 400, (body, response.get_json())
    with db.transaction() as session:
        running = lifecycle.create_task(session, owner="alice", endpoint="/analyze",
                                        data={"media": {"url": "http://x/a.wav"}})
    assert client.patch(f"/tasks/{running.id}", headers=auth,
                        json={"speaker_names": {}}).status_code == 409
    intruder = client.patch(f"/tasks/{task_id}", headers={"x-api-key": other_key},
                            json={"speaker_names": {"SPEAKER_00": "Vader"}})
    assert intruder.status_code == 404


def test_corrections_of_an_index_task_reach_its_collections_passages(client, db, auth):
    task_id = finished_task(db, "/index")
    assert client.post("/collections", headers=auth,
                       json={"collection_id": "talks"}).status_code == 201
    with db.transaction() as session:
        collections_store.save_media(
            session, owner="alice", collection_id="talks", media_id="duel",
            replace=False, passages=[{"start": 0.0, "end": 4.0,
                                      "text": "Hello there. General Kenobi."}],
            vectors=np.eye(1, 384, dtype=np.float32), filename="a.wav", url=None, task_id=task_id)
    client.patch(f"/tasks/{task_id}", headers=auth,
                 json={"segments": [{"index": 1, "text": "General Grievous."}]})
    media = client.get("/collections/talks/media/duel", headers=auth).get_json()
    assert media["segments"][0]["text"] == "Hello there. General Grievous."


def test_a_corrected_index_passage_is_re_embedded_for_search(client, db, auth, worker,
                                                            embed_worker):
    """The correction's words are found by the collection's search once a worker has
    re-embedded the passage (``hark.reembed_segments``), and only then."""
    from workers.embedding import embed

    duel, kitchen = finished_task(db, "/index"), finished_task(db, "/index")
    assert client.post("/collections", headers=auth,
                       json={"collection_id": "films"}).status_code == 201
    for task_id, media_id, text in [
            (duel, "duel", "Hello there. General Kenobi."),
            (kitchen, "kitchen", "Boil the pasta for ten minutes, then add the tomatoes.")]:
        with db.transaction() as session:
            collections_store.save_media(
                session, owner="alice", collection_id="films", media_id=media_id,
                replace=False, passages=[{"start": 0.0, "end": 4.0, "text": text}],
                vectors=embed([text]), task_id=task_id)
    # By meaning only: the corrected words must reach the passage's vector (its keyword
    # index follows the text at once).
    query = {"query": "a volcano erupting with lava", "top_k": 2, "mode": "semantic"}

    def duel_hit() -> dict:
        response = client.post("/collections/films/search", headers=auth, json=query)
        assert response.status_code == 200, response.get_json()
        return next(h for h in response.get_json()["results"] if h["media_id"] == "duel")

    before = duel_hit()
    assert before["similarity"] < 0.2, before
    response = client.patch(f"/tasks/{duel}", headers=auth, json={
        "segments": [{"index": 1, "text": "The volcano erupted and lava ran down."}]})
    assert response.status_code == 200, response.get_json()
    hit = wait_for(lambda: (h := duel_hit())["similarity"] > 0.4 and h, timeout=60,
                   interval=0.2, message="the corrected passage to be re-embedded")
    assert hit["task_id"] == str(duel) and "lava" in hit["text"]
    results = client.post("/collections/films/search", headers=auth,
                          json=query).get_json()["results"]
    assert results[0]["media_id"] == "duel", results
    kept = client.get("/collections/films/media/kitchen", headers=auth).get_json()
    assert kept["segments"][0]["text"].startswith("Boil the pasta")


def test_a_vector_is_stored_only_for_the_text_it_was_computed_from(client, db, auth):
    """A re-embedding that raced with a newer correction leaves that passage to the newer
    correction's pass; the collection's counters move."""
    task_id = finished_task(db, "/index")
    assert client.post("/collections", headers=auth,
                       json={"collection_id": "races"}).status_code == 201
    with db.transaction() as session:
        media = collections_store.save_media(
            session, owner="alice", collection_id="races", media_id="m", replace=False,
            passages=[{"start": 0.0, "end": 4.0, "text": "Hello there."}],
            vectors=np.eye(1, 384, dtype=np.float32), task_id=task_id)
        pk = media.collection_pk
    with db.transaction() as session:
        [(seg_id, collection_pk, text)] = collections_store.task_passages(session, task_id)
        assert (collection_pk, text) == (pk, "Hello there.")
        before = collections_store.find_collection(session, "alice", "races")
        counters = (before.version, before.reset_version)
    new_vector = np.full(384, 384 ** -0.5, dtype=np.float32)
    with db.transaction() as session:
        assert collections_store.replace_vectors(
            session, pk, [(seg_id, "Hello where?", new_vector)]) == 0
        assert collections_store.replace_vectors(
            session, pk, [(seg_id, "Hello there.", new_vector)]) == 1
    with db.session() as session:
        stored = session.get(Segment, seg_id).embedding
        after = collections_store.find_collection(session, "alice", "races")
        assert np.allclose(stored, new_vector)
        assert after.version > counters[0] and after.reset_version > counters[1]
