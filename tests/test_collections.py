"""/collections CRUD, media listing, search and /index submission checks (no worker).

Media are stored here with synthetic vectors through ``core.collections_store``, as the
/index worker stores them; ``test_index.py`` covers the real pipeline.
"""

import numpy as np
import pytest
from sqlalchemy import func, select

from app import search
from core import collections_store as store
from core.models_collections import Collection, CollectionMedia, Segment

DIM = 384


def unit(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return vector / np.linalg.norm(vector)


def add_media(db, media_id, vectors, owner="alice", collection="talks", replace=False):
    passages = [{"start": 2.0 * i, "end": 2.0 * i + 1.5, "text": f"{media_id} passage {i}"}
                for i in range(len(vectors))]
    with db.transaction() as session:
        store.save_media(session, owner=owner, collection_id=collection, media_id=media_id,
                         replace=replace, passages=passages, vectors=np.array(vectors),
                         duration=2.0 * len(vectors), language="en", model="tiny.en",
                         filename=f"{media_id}.wav")


def count(db, model) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(model))


@pytest.fixture()
def talks(client, auth):
    response = client.post("/collections", headers=auth,
                           json={"collection_id": "talks", "name": "Talks",
                                 "description": "Conference talks"})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


@pytest.fixture()
def query_vectors(monkeypatch):
    """Search with chosen query vectors instead of the embedding model."""
    vectors: dict[str, np.ndarray] = {}
    monkeypatch.setattr(search, "embed_query", lambda text, threads=1: vectors[text])
    return vectors


def test_create_get_list_update_delete(client, auth, talks):
    assert talks["collection_id"] == "talks" and talks["name"] == "Talks"
    assert talks["description"] == "Conference talks"
    assert talks["media_count"] == 0 and talks["segment_count"] == 0
    assert talks["created_at"] and talks["updated_at"]
    minimal = client.post("/collections", headers=auth, json={"collection_id": "a-1_B"})
    assert minimal.status_code == 201
    assert minimal.get_json()["name"] == "a-1_B" and minimal.get_json()["description"] is None
    listed = client.get("/collections", headers=auth).get_json()["collections"]
    assert [c["collection_id"] for c in listed] == ["a-1_B", "talks"]
    page2 = client.get("/collections?page=2&per_page=1", headers=auth).get_json()
    assert [c["collection_id"] for c in page2["collections"]] == ["talks"]
    assert client.get("/collections/talks", headers=auth).get_json() == talks
    patched = client.patch("/collections/talks", headers=auth, json={"description": None})
    assert patched.status_code == 200
    assert patched.get_json()["description"] is None and patched.get_json()["name"] == "Talks"
    renamed = client.patch("/collections/talks", headers=auth, json={"name": "Keynotes"})
    assert renamed.get_json()["name"] == "Keynotes"
    deleted = client.delete("/collections/talks", headers=auth)
    assert deleted.status_code == 200 and deleted.get_json()["collection_id"] == "talks"
    assert client.get("/collections/talks", headers=auth).status_code == 404
    assert client.delete("/collections/talks", headers=auth).status_code == 404


def test_duplicate_id_is_409_but_other_owners_may_reuse_it(client, auth, other_key, talks):
    again = client.post("/collections", headers=auth, json={"collection_id": "talks"})
    assert again.status_code == 409 and again.get_json()["error"] == "conflict"
    bob = {"x-api-key": other_key}
    assert client.post("/collections", headers=bob,
                       json={"collection_id": "talks", "name": "Bob's"}).status_code == 201
    assert client.get("/collections/talks", headers=bob).get_json()["name"] == "Bob's"
    assert client.get("/collections/talks", headers=auth).get_json()["name"] == "Talks"


def test_another_owners_collection_does_not_exist(client, auth, other_key, talks, db):
    add_media(db, "m1", [unit(1)])
    bob = {"x-api-key": other_key}
    for method, path, body in [
        ("get", "/collections/talks", None),
        ("patch", "/collections/talks", {"name": "mine"}),
        ("delete", "/collections/talks", None),
        ("get", "/collections/talks/media", None),
        ("get", "/collections/talks/media/m1", None),
        ("delete", "/collections/talks/media/m1", None),
        ("post", "/collections/talks/search", {"query": "hello"}),
        ("post", "/index", {"collection": "talks", "media": {"base64": "AAAA"}}),
    ]:
        response = getattr(client, method)(path, headers=bob, json=body)
        assert response.status_code == 404, (method, path, response.get_json())
        assert response.get_json()["error"] == "not_found"
    assert client.get("/collections", headers=bob).get_json() == {"collections": []}
    assert client.get("/collections/talks/media/m1", headers=auth).status_code == 200


@pytest.mark.parametrize("method,path,body", [
    ("post", "/collections", {"collection_id": "has space"}),
    ("post", "/collections", {"collection_id": "x" * 101}),
    ("post", "/collections", {"collection_id": "ok\n"}),
    ("post", "/collections", {"collection_id": ""}),
    ("post", "/collections", {"name": "no id"}),
    ("post", "/collections", {"collection_id": "ok", "name": "  "}),
    ("post", "/collections", {"collection_id": "ok", "colour": "red"}),
    ("post", "/collections", {"collection_id": 5}),
    ("patch", "/collections/talks", {}),
    ("patch", "/collections/talks", {"collection_id": "renamed"}),
    ("patch", "/collections/talks", {"name": None}),
    ("get", "/collections?per_page=0", None),
    ("get", "/collections?page=x", None),
    ("get", "/collections?sort=name", None),
    ("get", "/collections/bad.id", None),
    ("get", "/collections/talks/media/bad%20id", None),
    ("get", "/collections/talks/media?per_page=1001", None),
    ("post", "/collections/talks/search", {"query": ""}),
    ("post", "/collections/talks/search", {"query": "   "}),
    ("post", "/collections/talks/search", {}),
    ("post", "/collections/talks/search", {"query": 5}),
    ("post", "/collections/talks/search", {"query": "x" * 2001}),
    ("post", "/collections/talks/search", {"query": "hi", "top_k": 0}),
    ("post", "/collections/talks/search", {"query": "hi", "top_k": 101}),
    ("post", "/collections/talks/search", {"query": "hi", "top_k": "5"}),
    ("post", "/collections/talks/search", {"query": "hi", "top_k": 2.5}),
    ("post", "/collections/talks/search", {"query": "hi", "limit": 5}),
])
def test_bad_input_is_400(client, auth, talks, method, path, body):
    response = getattr(client, method)(path, headers=auth, json=body)
    assert response.status_code == 400, response.get_json()
    error = response.get_json()
    assert error["error"] == "validation_error" and error["message"]


def test_non_json_and_unknown_collection(client, auth):
    response = client.post("/collections/nope/search", headers=auth, data="query=hi")
    assert response.status_code == 415
    missing = client.post("/collections/nope/search", headers=auth, json={"query": "hi"})
    assert missing.status_code == 404 and missing.get_json()["message"] == "collection not found"
    assert client.get("/collections/nope/media", headers=auth).status_code == 404
    assert client.post("/collections", json={"collection_id": "x"}).status_code == 401


def test_media_list_get_delete(client, auth, talks, db):
    add_media(db, "first", [unit(1), unit(2), unit(3)])
    add_media(db, "second", [unit(4)])
    assert client.get("/collections/talks", headers=auth).get_json()["media_count"] == 2
    assert client.get("/collections/talks", headers=auth).get_json()["segment_count"] == 4
    listed = client.get("/collections/talks/media", headers=auth).get_json()["media"]
    assert [m["media_id"] for m in listed] == ["first", "second"]
    first = listed[0]
    assert first["collection_id"] == "talks" and first["segment_count"] == 3
    assert first["duration"] == 6.0 and first["language"] == "en"
    assert first["filename"] == "first.wav" and first["url"] is None
    assert "segments" not in first and first["created_at"]
    paged = client.get("/collections/talks/media?page=2&per_page=1", headers=auth).get_json()
    assert [m["media_id"] for m in paged["media"]] == ["second"]
    one = client.get("/collections/talks/media/first", headers=auth).get_json()
    assert one["segments"] == [
        {"id": i, "start": 2.0 * i, "end": 2.0 * i + 1.5, "text": f"first passage {i}"}
        for i in range(3)
    ]
    assert client.get("/collections/talks/media/third", headers=auth).status_code == 404
    gone = client.delete("/collections/talks/media/first", headers=auth)
    assert gone.status_code == 200 and gone.get_json()["media_id"] == "first"
    assert count(db, Segment) == 1 and count(db, CollectionMedia) == 1
    assert client.get("/collections/talks/media/first", headers=auth).status_code == 404


def test_deleting_a_collection_removes_its_media_and_segments(client, auth, other_key, talks,
                                                              db):
    add_media(db, "a", [unit(1), unit(2)])
    add_media(db, "b", [unit(3)])
    client.post("/collections", headers={"x-api-key": other_key}, json={"collection_id": "talks"})
    add_media(db, "a", [unit(4)], owner="bob")
    assert count(db, Segment) == 4
    client.delete("/collections/talks", headers=auth)
    assert count(db, Collection) == 1 and count(db, CollectionMedia) == 1
    assert count(db, Segment) == 1  # bob's


def test_store_refuses_an_indexed_media_id_unless_replacing(db, talks):
    add_media(db, "m", [unit(1), unit(2)])
    with pytest.raises(store.MediaAlreadyIndexed):
        add_media(db, "m", [unit(3)])
    with pytest.raises(store.CollectionNotFound):
        add_media(db, "m", [unit(3)], collection="nope")
    add_media(db, "m", [unit(3)], replace=True)
    with db.session() as session:
        texts = session.scalars(select(Segment.text)).all()
        collection = store.find_collection(session, "alice", "talks")
    assert texts == ["m passage 0"] and collection.version == 3
    assert collection.reset_version == 1


def test_search_ranks_by_cosine_and_follows_changes(client, auth, talks, db, app,
                                                   query_vectors):
    cache = app.extensions["search_cache"]
    assert client.post("/collections/talks/search", headers=auth,
                       json={"query": "anything"}).get_json() == {"results": []}
    add_media(db, "m1", [unit(i) for i in range(20)])
    add_media(db, "m2", [unit(i) for i in range(20, 40)])
    near = unit(25) + 0.3 * unit(1000)
    query_vectors["near 25"] = near / np.linalg.norm(near)
    body = client.post("/collections/talks/search", headers=auth,
                       json={"query": "near 25", "top_k": 3}).get_json()
    hits = body["results"]
    assert len(hits) == 3 and hits[0]["media_id"] == "m2"
    assert hits[0]["text"] == "m2 passage 5" and hits[0]["start"] == 10.0
    assert hits[0]["end"] == 11.5 and 0.9 < hits[0]["score"] <= 1.0
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert set(hits[0]) == {"media_id", "task_id", "start", "end", "text", "score"}
    assert hits[0]["task_id"] is None  # stored without a task (an /index task's id else)
    loads = (cache.full_loads, cache.partial_loads)
    # Added media: the cached matrix is extended, and the new best match is found.
    query_vectors["exact 77"] = unit(77)
    add_media(db, "m3", [unit(77)])
    hits = client.post("/collections/talks/search", headers=auth,
                       json={"query": "exact 77"}).get_json()["results"]
    assert hits[0]["media_id"] == "m3" and hits[0]["score"] == pytest.approx(1.0, abs=1e-5)
    assert len(hits) == 10
    assert (cache.full_loads, cache.partial_loads) == (loads[0], loads[1] + 1)
    # Deleted or replaced media: reloaded, so removed segments are never returned.
    client.delete("/collections/talks/media/m3", headers=auth)
    hits = client.post("/collections/talks/search", headers=auth,
                       json={"query": "exact 77", "top_k": 100}).get_json()["results"]
    assert len(hits) == 40 and "m3" not in {h["media_id"] for h in hits}
    assert cache.full_loads == loads[0] + 1
    add_media(db, "m2", [unit(77)], replace=True)
    hits = client.post("/collections/talks/search", headers=auth,
                       json={"query": "exact 77", "top_k": 100}).get_json()["results"]
    assert len(hits) == 21 and hits[0]["media_id"] == "m2"
    # Unchanged collection: no database load at all.
    before = (cache.full_loads, cache.partial_loads)
    client.post("/collections/talks/search", headers=auth, json={"query": "exact 77"})
    assert (cache.full_loads, cache.partial_loads) == before


def test_index_submission_is_checked_before_any_task(client, auth, talks, db):
    add_media(db, "taken", [unit(1)])
    cases = [
        ({"collection": "nope"}, 404, "not_found"),
        ({"collection": "talks", "media_id": "taken"}, 409, "conflict"),
        ({"collection": "bad id"}, 400, "validation_error"),
        ({"collection": "talks", "media_id": "bad/id"}, 400, "validation_error"),
        ({}, 400, "validation_error"),
        ({"collection": "talks", "reindex_if_exists": "yes"}, 400, "validation_error"),
        ({"collection": "talks", "top_k": 3}, 400, "validation_error"),
        ({"collection": "talks", "model": "huge-v9"}, 400, "unknown_model"),
    ]
    for extra, status, error in cases:
        response = client.post("/index", headers=auth,
                               json={"media": {"base64": "AAAA"}, **extra})
        assert response.status_code == status, (extra, response.get_json())
        assert response.get_json()["error"] == error
    import io

    form = client.post("/index", headers=auth,
                       data={"collection": "talks", "media_id": "taken",
                             "file": (io.BytesIO(b"RIFF"), "a.wav")})
    assert form.status_code == 409
    assert client.get("/tasks/count", headers=auth).get_json()["total"] == 0
    assert count(db, CollectionMedia) == 1
