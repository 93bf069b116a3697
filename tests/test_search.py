"""Search internals: vector literals, the SQL search (exact and HNSW paths), the reply
channel the API hears embed workers on, and the embedding model itself."""

import threading

import numpy as np
import psycopg
import pytest
from sqlalchemy import text

from core import collections_store as store
from core import search_sql
from core.notify import CompletionWaiter, reply_payload
from core.search_sql import SearchTuning
from core.vectors import as_literal, parse_vector, text_search_config, vector_literal
from tests.support import wait_for

DIM = 384


def unit_rows(n: int, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_vector_literals_round_trip_float32_exactly():
    rows = unit_rows(20, seed=3)
    for row in rows:
        assert np.array_equal(np.array(parse_vector(vector_literal(row)), np.float32), row)
    assert as_literal(rows[0].astype("<f4").tobytes()) == vector_literal(rows[0])
    assert as_literal("[1,2]") == "[1,2]" and parse_vector("[]") == []
    assert len(vector_literal(np.full(DIM, -1.2345678e-05, np.float32))) < 7900  # NOTIFY


@pytest.mark.parametrize("language,config", [
    ("en", "english"), ("EN-us", "english"), ("en_GB", "english"), ("de", "simple"),
    (None, "simple"), ("", "simple"), ("eng", "simple")])
def test_text_search_config(language, config):
    assert text_search_config(language) == config


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="semantic, keyword, hybrid"):
        search_sql.statement("fuzzy", exact=True)


def clustered(n: int, seed: int) -> np.ndarray:
    """Unit rows around 30 centres, structured as sentence embeddings are (uniformly
    random vectors have no near neighbours to find)."""
    rng = np.random.default_rng(seed)
    centres = unit_rows(30, seed=seed + 1000)
    rows = centres[rng.integers(0, 30, n)] + 0.03 * rng.standard_normal((n, DIM))
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def _collection(client, auth, db, name: str, rows: np.ndarray, per_media: int = 500) -> None:
    assert client.post("/collections", headers=auth,
                       json={"collection_id": name}).status_code == 201
    for first in range(0, len(rows), per_media):
        chunk = rows[first:first + per_media]
        passages = [{"start": float(i), "end": float(i) + 1, "text": f"{name} {first + i}"}
                    for i in range(len(chunk))]
        with db.transaction() as session:
            store.save_media(session, owner="alice", collection_id=name,
                             media_id=f"m{first}", replace=False, passages=passages,
                             vectors=chunk, language="en")


def _pk(db, name: str) -> int:
    with db.session() as session:
        return store.find_collection(session, "alice", name).id


def test_hnsw_path_finds_a_small_collections_top_k_among_a_large_one(client, auth, db):
    """Forced onto the HNSW index (``exact_max=0``), a 6-segment collection beside a
    3000-segment one still gets all its top_k (iterative scan), in exact order, with the
    exact path's results; the large one gets nearly the exact top 10 (recall)."""
    large, small = clustered(3000, seed=1), unit_rows(6, seed=2)
    _collection(client, auth, db, "large", large)
    _collection(client, auth, db, "small", small)
    hnsw, exact = SearchTuning(exact_max=0), SearchTuning()
    queries = clustered(20, seed=5)
    found = 0
    for query in queries:
        literal = vector_literal(query)
        with db.session() as session:
            session.execute(text("SET LOCAL enable_sort = off"))  # as on a large table
            by_index = search_sql.search(session, [_pk(db, "small")], query="", vector=literal,
                                         mode="semantic", k=5, tuning=hnsw)
        with db.session() as session:
            scanned = search_sql.search(session, [_pk(db, "small")], query="",
                                        vector=literal, mode="semantic", k=5, tuning=exact)
        assert [h["text"] for h in by_index] == [h["text"] for h in scanned]
        expected = np.argsort(-(small @ query), kind="stable")[:5]
        assert [h["text"] for h in scanned] == [f"small {i}" for i in expected]
        with db.session() as session:
            session.execute(text("SET LOCAL enable_sort = off"))
            top = search_sql.search(session, [_pk(db, "large")], query="", vector=literal,
                                    mode="semantic", k=10, tuning=hnsw)
        truth = {f"large {i}" for i in np.argsort(-(large @ query))[:10]}
        found += len(truth & {h["text"] for h in top})
    assert found / (10 * len(queries)) >= 0.8  # synthetic clusters; real data: the bench


def test_the_semantic_statement_can_walk_the_hnsw_index(client, auth, db):
    _collection(client, auth, db, "large", unit_rows(1000, seed=4))
    with db.session() as session:
        session.execute(text("SET LOCAL enable_sort = off"))
        plan = "\n".join(r[0] for r in session.execute(text(
            "EXPLAIN " + search_sql.statement("semantic", exact=False)),
            {"pks": [_pk(db, "large")], "vector_pks": [_pk(db, "large")], "k": 10, "n": 10,
             "vec": vector_literal(unit_rows(1)[0]), "q": ""}))
    assert "ix_segments_embedding_hnsw" in plan


def _semantic(db, pks: list[int], query: np.ndarray, tuning: SearchTuning) -> list[str]:
    with db.session() as session:
        session.execute(text("SET LOCAL enable_sort = off"))  # as on a large table
        return [h["text"] for h in search_sql.search(
            session, pks, query="", vector=vector_literal(query), mode="semantic", k=10,
            tuning=tuning)]


def test_a_large_collection_gets_its_own_index_and_its_searches_walk_it(
        client, auth, db, database_url):
    """Above the threshold a collection gets a partial HNSW index of its own (a crash's
    half-built one replaced); searches of it walk that index, alone or beside a small
    collection scored exactly, and find the exact top 10; deleting the collection drops
    it."""
    from core import vector_indexes

    big_rows, small_rows = clustered(400, seed=7), unit_rows(5, seed=8)
    _collection(client, auth, db, "big", big_rows)
    _collection(client, auth, db, "small", small_rows)
    big, small = _pk(db, "big"), _pk(db, "small")
    name = vector_indexes.index_name(big)
    with psycopg.connect(database_url, autocommit=True) as conn:  # a build that failed
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(f"CREATE UNIQUE INDEX CONCURRENTLY {name} ON segments "
                         f"(collection_pk) WHERE collection_pk = {big}")
        assert vector_indexes.own_indexes(conn) == {big: False}
    with db.session() as session:
        assert not any(c.own_index for c in search_sql.collection_sizes(session, [big]))

    driver_url = "postgresql+psycopg://" + database_url.partition("://")[2]
    report = vector_indexes.maintain(driver_url, threshold=100)  # DATABASE_URL's forms
    assert (report["dropped"], report["built"]) == ([big], [big])
    with db.session() as session:
        sizes = {c.pk: c for c in search_sql.collection_sizes(session, [big, small])}
    assert sizes[big].own_index and sizes[big].segments == 400
    assert not sizes[small].own_index
    assert vector_indexes.maintain(database_url, threshold=100)["built"] == []

    with db.session() as session:
        session.execute(text("SET LOCAL enable_sort = off"))
        plan = "\n".join(r[0] for r in session.execute(text(
            "EXPLAIN " + search_sql.statement("semantic", exact=True, own=[big],
                                              shared=False)),
            {"pks": [big], "vector_pks": [], "k": 10, "n": 10,
             "vec": vector_literal(big_rows[0]), "q": ""}))
    assert name in plan and "ix_segments_embedding_hnsw" not in plan

    tuning, texts = SearchTuning(exact_max=100), [f"big {i}" for i in range(400)]
    texts += [f"small {i}" for i in range(5)]
    both = np.concatenate([big_rows, small_rows])
    found = 0
    for query in clustered(8, seed=9):
        truth = [f"big {i}" for i in np.argsort(-(big_rows @ query))[:10]]
        found += len(set(truth) & set(_semantic(db, [big], query, tuning)))
        truth = [texts[i] for i in np.argsort(-(both @ query))[:10]]
        found += len(set(truth) & set(_semantic(db, [big, small], query, tuning)))
    assert found >= 0.98 * 160

    # at half the threshold or less, exact scoring is cheap again: the index goes
    assert vector_indexes.maintain(database_url, threshold=800)["dropped"] == [big]
    assert vector_indexes.maintain(database_url, threshold=100)["built"] == [big]
    assert client.delete("/collections/big", headers=auth).status_code in (200, 204)
    assert vector_indexes.maintain(database_url, threshold=100)["dropped"] == [big]
    with psycopg.connect(database_url) as conn:
        assert vector_indexes.own_indexes(conn) == {}


def test_replies_reach_the_process_that_asked(database_url):
    waiter = CompletionWaiter()
    waiter.configure(database_url)
    try:
        wait_for(waiter.ensure_listening, message="the listener to connect")
        results: dict[str, str | None] = {}
        asked = threading.Barrier(3, timeout=30)

        def ask(name: str) -> None:
            with waiter.expect() as reply:
                assert reply.channel == waiter.channel
                tokens[name] = reply.token
                asked.wait()
                results[name] = reply.wait(10)

        tokens: dict[str, str] = {}
        threads = [threading.Thread(target=ask, args=(n,)) for n in ("a", "b")]
        for thread in threads:
            thread.start()
        asked.wait()
        with psycopg.connect(database_url, autocommit=True) as conn:
            for name in ("b", "a"):
                conn.execute("SELECT pg_notify(%s, %s)",
                             (waiter.channel, reply_payload(tokens[name], f"[{name}]")))
            conn.execute("SELECT pg_notify(%s, %s)", (waiter.channel, reply_payload("x", "?")))
        for thread in threads:
            thread.join(30)
        assert results == {"a": "[a]", "b": "[b]"}
        with waiter.expect() as reply:
            assert reply.wait(0.05) is None  # nobody answers: None at the deadline
    finally:
        waiter.close()


# --- the embedding model ---------------------------------------------------------------


@pytest.fixture(scope="module")
def embedder():
    from workers.embedding import get_embedder

    return get_embedder("cpu")


def test_embeddings_are_normalized_and_meaningful(embedder):
    from workers.embedding import DIMENSIONS, embed

    texts = ["The weather is sunny and warm today.", "Is it going to rain tomorrow?",
             "Boil the pasta and add garlic.", ""]
    vectors = embed(texts)
    assert vectors.shape == (4, DIMENSIONS) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors[:3], axis=1), 1.0, atol=1e-5)
    similarity = vectors @ vectors.T
    assert similarity[0, 1] > similarity[0, 2] and similarity[1, 0] > similarity[1, 2]
    assert embed([]).shape == (0, DIMENSIONS)
    # Batching and order do not change a text's vector.
    assert np.allclose(embed(texts[::-1], batch_size=2)[::-1], vectors, atol=1e-5)


@pytest.mark.parametrize("engine", ["onnx", "torch"])
def test_embeddings_match_sentence_transformers(embedder, engine):
    """Both engines give sentence-transformers' vectors, one text or a padded batch."""
    from sentence_transformers import SentenceTransformer

    from workers.embedding import Embedder

    texts = ["A short query.", "A much longer passage about trains leaving the station "
             "at nine in the morning, heading for the mountains. " * 3, ""]
    reference = SentenceTransformer(str(embedder.path), device="cpu", local_files_only=True)
    expected = reference.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    model = embedder if embedder.engine == engine else Embedder("cpu", engine=engine)
    assert model.engine == engine
    assert np.allclose(model.embed(texts), expected, atol=1e-5)
    assert np.allclose(model.embed(texts[:1]), expected[:1], atol=1e-5)


def test_an_onnx_model_that_cannot_be_made_falls_back_to_torch(tmp_path, monkeypatch,
                                                              embedder):
    from workers.embedding import Embedder

    blocked = tmp_path / "a-file"  # MODELS_DIR is a file: the export cannot be written
    blocked.write_text("")
    monkeypatch.setenv("MODELS_DIR", str(blocked))
    model = Embedder("cpu", engine="onnx")
    assert model.engine == "torch"
    assert np.allclose(model.embed(["A short query."]), embedder.embed(["A short query."]),
                       atol=1e-5)


def test_the_cpu_embedder_runs_on_onnx_runtime_unless_told_otherwise(monkeypatch):
    from workers.embedding_onnx import engine_for

    assert engine_for("cpu") == "onnx" and engine_for("cuda:0") == "torch"
    monkeypatch.setenv("EMBED_ENGINE", "torch")
    assert engine_for("cpu") == "torch"
    monkeypatch.setenv("EMBED_ENGINE", "tensorflow")
    with pytest.raises(ValueError, match="EMBED_ENGINE"):
        engine_for("cpu")


def test_preload_accepts_the_embedding_model_name(embedder):
    from workers.models import preload_models

    assert set(preload_models(["minilm"], "cpu")) == {"minilm"}


def test_an_embed_worker_answers_the_api(app, embed_worker, embedder):
    """The API's vector for a query is the model's, sent back by the embed worker."""
    literal = app.extensions["query_embedder"]("When does the train leave?")
    vector = np.array(parse_vector(literal), np.float32)
    assert np.allclose(vector, embedder.embed(["When does the train leave?"])[0], atol=1e-6)


def test_beat_sends_the_own_index_upkeep_to_the_maintenance_queue(tmp_path):
    from core.celery_config import beat_schedule
    from core.config import Settings
    from core.vector_indexes import MAINTAIN_TASK
    from workers.celery_app import make_worker_celery

    settings = Settings(data_dir=tmp_path, broker_url="redis://127.0.0.1:1/0")
    assert beat_schedule(settings)["vector-indexes"] == {
        "task": MAINTAIN_TASK, "schedule": 60.0,
        "options": {"queue": "maintenance", "expires": 60.0}}
    celery = make_worker_celery(settings)
    celery.loader.import_default_modules()
    assert MAINTAIN_TASK in celery.tasks
