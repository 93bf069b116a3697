"""/collections CRUD, media listing, search and /index submission checks (no worker).

Media are stored here with synthetic vectors through ``core.collections_store``, as the
/index worker stores them; ``test_index.py`` covers the real pipeline.
"""

from contextlib import contextmanager

import numpy as np
import pytest
from sqlalchemy import func, select

from app import search
from core import collections_store as store
from core.models_collections import Collection, CollectionMedia, Segment
from core.vectors import vector_literal

DIM = 384


def unit(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return vector / np.linalg.norm(vector)


def add_media(db, media_id, vectors, owner="alice", collection="talks", replace=False,
              texts=None, language="en"):
    texts = texts or [f"{media_id} passage {i}" for i in range(len(vectors))]
    passages = [{"start": 2.0 * i, "end": 2.0 * i + 1.5, "text": texts[i]}
                for i in range(len(vectors))]
    with db.transaction() as session:
        store.save_media(session, owner=owner, collection_id=collection, media_id=media_id,
                         replace=replace, passages=passages, vectors=np.array(vectors),
                         duration=2.0 * len(vectors), language=language, model="tiny.en",
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


class ChosenVectors(dict):
    """Query vectors the test chose (text -> array), in place of an embed worker's."""

    @contextmanager
    def requested(self, text: str):
        yield lambda: vector_literal(self[text])


@pytest.fixture()
def query_vectors(monkeypatch, app):
    """Search with chosen query vectors instead of asking an embed worker."""
    vectors = ChosenVectors()
    monkeypatch.setitem(app.extensions, "query_embedder", vectors)
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
    ("post", "/collections/talks/search", {"query": "hi", "mode": "fuzzy"}),
    ("post", "/collections/talks/search", {"query": "hi", "mode": None}),
    ("post", "/search", {"query": ""}),
    ("post", "/search", {"query": "x" * 2001}),
    ("post", "/search", {"query": "hi", "top_k": 0}),
    ("post", "/search", {"query": "hi", "top_k": 101}),
    ("post", "/search", {"query": "hi", "collections": []}),
    ("post", "/search", {"query": "hi", "collections": ["bad id"]}),
    ("post", "/search", {"query": "hi", "collections": "talks"}),
    ("post", "/search", {"query": "hi", "mode": "KEYWORD"}),
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


def test_search_ranks_by_cosine_and_follows_changes(client, auth, talks, db, query_vectors):
    def search(query, **options):
        response = client.post("/collections/talks/search", headers=auth,
                               json={"query": query, "mode": "semantic", **options})
        assert response.status_code == 200, response.get_json()
        return response.get_json()["results"]

    query_vectors["anything"] = unit(0)
    assert search("anything") == []
    add_media(db, "m1", [unit(i) for i in range(20)])
    add_media(db, "m2", [unit(i) for i in range(20, 40)])
    near = unit(25) + 0.3 * unit(1000)
    query_vectors["near 25"] = near / np.linalg.norm(near)
    hits = search("near 25", top_k=3)
    assert len(hits) == 3 and hits[0]["media_id"] == "m2"
    assert hits[0]["text"] == "m2 passage 5" and hits[0]["start"] == 10.0
    assert hits[0]["end"] == 11.5 and 0.9 < hits[0]["score"] <= 1.0
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert set(hits[0]) == {"collection_id", "media_id", "task_id", "start", "end", "text",
                            "score", "similarity", "vector_rank", "keyword_rank"}
    assert hits[0]["task_id"] is None  # stored without a task (an /index task's id else)
    assert [h["vector_rank"] for h in hits] == [1, 2, 3]
    assert {h["keyword_rank"] for h in hits} == {None}
    assert hits[0]["similarity"] == hits[0]["score"] and hits[0]["collection_id"] == "talks"
    exact = np.stack([unit(i) for i in range(40)]) @ query_vectors["near 25"]
    assert hits[1]["score"] == pytest.approx(float(np.sort(exact)[-2]), abs=1e-5)
    # Added media are found at once.
    query_vectors["exact 77"] = unit(77)
    add_media(db, "m3", [unit(77)])
    hits = search("exact 77")
    assert hits[0]["media_id"] == "m3" and hits[0]["score"] == pytest.approx(1.0, abs=1e-5)
    assert len(hits) == 10
    # Deleted or replaced media: removed segments are never returned.
    client.delete("/collections/talks/media/m3", headers=auth)
    hits = search("exact 77", top_k=100)
    assert len(hits) == 40 and "m3" not in {h["media_id"] for h in hits}
    add_media(db, "m2", [unit(77)], replace=True)
    hits = search("exact 77", top_k=100)
    assert len(hits) == 21 and hits[0]["media_id"] == "m2"


def test_keyword_and_hybrid_search(client, auth, talks, db, query_vectors):
    texts = ["The invoice number is 4711 for Acme.", "Trains run late when it rains.",
             "We met Dr. Okonkwo at the station.", "Nothing to see here at all."]
    add_media(db, "en", [unit(i) for i in range(4)], texts=texts)
    add_media(db, "de", [unit(10)], texts=["Die Züge fahren heute nicht."], language="de")
    query_vectors["okonkwo or 4711"] = unit(3)  # by meaning closest to the last passage
    query_vectors["rain"] = unit(3)

    def search(query, mode, **options):
        response = client.post("/collections/talks/search", headers=auth,
                               json={"query": query, "mode": mode, **options})
        assert response.status_code == 200, response.get_json()
        return response.get_json()["results"]

    # Keyword: exact names and numbers; 'english' stems English media ("rains" for rain),
    # 'simple' keeps other languages' words as they are.
    assert [h["text"] for h in search("4711", "keyword")] == [texts[0]]
    assert [h["text"] for h in search("okonkwo", "keyword")] == [texts[2]]
    assert [h["text"] for h in search("rain", "keyword")] == [texts[1]]
    assert [h["media_id"] for h in search("züge", "keyword")] == ["de"]
    assert search('"station trains"', "keyword") == []  # a phrase that is not there
    assert search("4711 -acme", "keyword") == []
    keyword = search("okonkwo or 4711", "keyword")
    assert {h["text"] for h in keyword} == {texts[0], texts[2]}
    assert [h["keyword_rank"] for h in keyword] == [1, 2]
    assert {h["vector_rank"] for h in keyword} == {None} and keyword[0]["similarity"] is None
    # Hybrid: both lists fused by reciprocal rank fusion, k = 60.
    hybrid = search("okonkwo or 4711", "hybrid", top_k=5)
    assert {h["text"] for h in hybrid[:2]} == {texts[0], texts[2]}  # in both lists
    assert hybrid[2]["text"] == texts[3] and hybrid[2]["vector_rank"] == 1
    assert hybrid[2]["keyword_rank"] is None
    for hit in hybrid:
        expected = sum(1 / (60 + r) for r in (hit["vector_rank"], hit["keyword_rank"]) if r)
        assert hit["score"] == pytest.approx(expected, abs=1e-6)
    assert [h["score"] for h in hybrid] == sorted((h["score"] for h in hybrid), reverse=True)
    assert len(hybrid) == 5 and all(h["vector_rank"] for h in hybrid)
    default = client.post("/collections/talks/search", headers=auth,
                          json={"query": "okonkwo or 4711", "top_k": 5}).get_json()
    assert default["results"] == hybrid  # hybrid is the default


def test_search_all_collections_of_the_owner(client, auth, other_key, talks, db,
                                            query_vectors):
    client.post("/collections", headers=auth, json={"collection_id": "notes"})
    bob = {"x-api-key": other_key}
    client.post("/collections", headers=bob, json={"collection_id": "talks"})
    add_media(db, "a", [unit(1), unit(2)])
    add_media(db, "b", [unit(3)], collection="notes")
    add_media(db, "mine", [unit(1)], owner="bob")
    query_vectors["one"] = unit(1)
    body = {"query": "one", "mode": "semantic"}
    hits = client.post("/search", headers=auth, json=body).get_json()["results"]
    assert [(h["collection_id"], h["media_id"]) for h in hits][:1] == [("talks", "a")]
    assert {h["collection_id"] for h in hits} == {"talks", "notes"} and len(hits) == 3
    only = client.post("/search", headers=auth, json={**body, "collections": ["notes"]})
    assert [h["media_id"] for h in only.get_json()["results"]] == ["b"]
    theirs = client.post("/search", headers=bob, json=body).get_json()["results"]
    assert [h["media_id"] for h in theirs] == ["mine"]
    missing = client.post("/search", headers=bob, json={**body, "collections": ["notes"]})
    assert missing.status_code == 404 and missing.get_json()["details"] == {
        "collections": ["notes"]}
    nobody = client.post("/search", headers=auth, json={"query": "x", "mode": "keyword"})
    assert nobody.get_json() == {"results": []}


def test_no_embed_worker_is_a_503_with_retry_after(client, auth, talks, db, app, settings,
                                                   monkeypatch):
    """Queries sent where no embed worker listens (a broker namespace of their own): the
    request gives up at its deadline instead of hanging; keyword search still works."""
    from dataclasses import replace

    from core.celery_config import make_celery

    nowhere = make_celery(replace(settings, broker_key_prefix=f"{settings.broker_key_prefix}x:"))
    quick = search.SearchSettings(embed_timeout=0.3)
    monkeypatch.setitem(app.extensions, "query_embedder", search.QueryEmbedder(
        nowhere, app.extensions["hark"]["waiter"], quick))
    add_media(db, "m", [unit(1)], texts=["hello there"])
    for path in ("/collections/talks/search", "/search"):
        response = client.post(path, headers=auth, json={"query": "hello"})
        assert response.status_code == 503, response.get_json()
        assert response.headers["Retry-After"] == "2"
        assert response.get_json()["error"] == "embedding_unavailable"
    keyword = client.post("/search", headers=auth, json={"query": "hello", "mode": "keyword"})
    assert [h["text"] for h in keyword.get_json()["results"]] == ["hello there"]


def test_the_query_is_sent_to_embed_before_the_search_reads_the_database(
        client, auth, talks, db, app, settings, database_url, monkeypatch):
    """The embed request overlaps the search's database work: with the collections'
    sizes held behind a lock, the query is already on the ``embed`` queue."""
    import threading
    from dataclasses import replace

    import psycopg
    import redis

    from core.celery_config import make_celery
    from core.embed_queue import EMBED_QUEUE
    from tests.support import wait_for

    prefix = f"{settings.broker_key_prefix}overlap:"
    nowhere = make_celery(replace(settings, broker_key_prefix=prefix))
    monkeypatch.setitem(app.extensions, "query_embedder", search.QueryEmbedder(
        nowhere, app.extensions["hark"]["waiter"], search.SearchSettings(embed_timeout=0.3)))
    add_media(db, "m", [unit(1)], texts=["hello there"])
    broker = redis.Redis.from_url(settings.broker_url)
    answers = []
    with psycopg.connect("postgresql://" + database_url.partition("://")[2]) as holder:
        holder.execute("LOCK TABLE collection_media IN ACCESS EXCLUSIVE MODE")
        searching = threading.Thread(target=lambda: answers.append(client.post(
            "/collections/talks/search", headers=auth, json={"query": "hello"})))
        searching.start()
        try:
            wait_for(lambda: holder.execute(
                "SELECT count(*) FROM pg_locks WHERE relation = 'collection_media'::regclass "
                "AND NOT granted").fetchone()[0] == 1, timeout=10, message="the sizes read")
            assert broker.llen(prefix + EMBED_QUEUE) == 1  # sent before the read returned
        finally:
            holder.rollback()
            searching.join(10)
            broker.delete(prefix + EMBED_QUEUE)
    assert answers[0].status_code == 503  # nobody embedded it: the deadline still holds


def test_a_broker_that_refuses_the_embed_request_fails_only_searches_that_need_it(
        client, auth, talks, db, app, settings, monkeypatch):
    """The query is sent first, but a refused send is raised only when the vector is
    needed: an unknown collection is still a 404, an empty one still no hits."""
    from dataclasses import replace

    from core.celery_config import make_celery

    down = make_celery(replace(settings, broker_url="redis://127.0.0.1:1/0"))
    monkeypatch.setitem(app.extensions, "query_embedder", search.QueryEmbedder(
        down, app.extensions["hark"]["waiter"], search.SearchSettings(embed_timeout=1)))
    assert client.post("/collections", headers=auth,
                       json={"collection_id": "empty"}).status_code == 201
    unknown = client.post("/collections/nope/search", headers=auth, json={"query": "hi"})
    assert unknown.status_code == 404, unknown.get_json()
    missing = client.post("/search", headers=auth, json={"query": "hi", "collections": ["x"]})
    assert missing.status_code == 404, missing.get_json()
    empty = client.post("/collections/empty/search", headers=auth, json={"query": "hi"})
    assert empty.status_code == 200 and empty.get_json()["results"] == []
    add_media(db, "m", [unit(1)], texts=["hello there"])
    refused = client.post("/collections/talks/search", headers=auth, json={"query": "hi"})
    assert refused.status_code == 503, refused.get_json()
    assert refused.get_json()["error"] == "broker_unavailable"


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
