"""Search internals without a database: top-k scoring, the matrix cache, the embedder."""

import threading
import time

import numpy as np
import pytest

from app.search import MatrixCache, Snapshot, top_k

DIM = 384


def unit_rows(n: int, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


class FakeTable:
    """A collection's segment rows; ``load`` is what the cache calls to read them."""

    def __init__(self, n: int = 0) -> None:
        self.ids = np.zeros(0, np.int64)
        self.matrix = np.zeros((0, DIM), np.float32)
        self.calls: list[int] = []
        self.add(n)

    def add(self, n: int) -> None:
        first = int(self.ids[-1]) + 1 if len(self.ids) else 1
        self.ids = np.concatenate([self.ids, np.arange(first, first + n, dtype=np.int64)])
        self.matrix = np.concatenate([self.matrix, unit_rows(n, seed=first)])

    def remove(self, segment_id: int) -> None:
        keep = self.ids != segment_id
        self.ids, self.matrix = self.ids[keep], self.matrix[keep]

    def load(self, after_id: int):
        self.calls.append(after_id)
        chosen = self.ids > after_id
        return self.ids[chosen], self.matrix[chosen]


@pytest.mark.parametrize("n,k", [(1000, 10), (1000, 1), (50, 50), (20, 100), (1, 5)])
def test_top_k_equals_a_full_sort(n, k):
    matrix, query = unit_rows(n), unit_rows(1, seed=99)[0]
    rows, scores = top_k(matrix, query, k)
    expected = np.argsort(-(matrix @ query), kind="stable")[:k]
    assert rows.tolist() == expected.tolist()
    assert np.allclose(scores, (matrix @ query)[expected])
    assert list(scores) == sorted(scores, reverse=True)


def test_top_k_edge_cases():
    assert top_k(np.zeros((0, DIM), np.float32), unit_rows(1)[0], 5)[0].size == 0
    tied = np.tile(unit_rows(1), (6, 1))
    rows, scores = top_k(tied, tied[0], 3)
    assert rows.tolist() == [0, 1, 2]  # ties: older rows first
    assert np.allclose(scores, 1.0, atol=1e-5)


def test_nearest_vector_is_found_first():
    matrix = unit_rows(5000)
    noisy = matrix[1234] + 0.05 * unit_rows(1, seed=7)[0]
    rows, scores = top_k(matrix, noisy / np.linalg.norm(noisy), 3)
    assert rows[0] == 1234 and scores[0] > 0.95 > scores[1]


def test_cache_loads_once_per_version():
    table, cache = FakeTable(100), MatrixCache()
    first = cache.get("c", 1, 0, table.load)
    again = cache.get("c", 1, 0, table.load)
    assert again is first and table.calls == [0]
    assert first.size == 100 and first.matrix.dtype == np.float32
    # A caller that read an older version (it raced with a change) gets the newer snapshot.
    assert cache.get("c", 0, 0, table.load) is first and table.calls == [0]


def test_added_segments_extend_the_cached_matrix():
    table, cache = FakeTable(100), MatrixCache()
    cache.get("c", 1, 0, table.load)
    table.add(30)
    snapshot = cache.get("c", 2, 0, table.load)
    assert table.calls == [0, 100]  # only the rows after the last cached id
    assert snapshot.ids.tolist() == table.ids.tolist()
    assert np.array_equal(snapshot.matrix, table.matrix)
    assert (cache.full_loads, cache.partial_loads) == (1, 1)
    assert cache.get("c", 2, 0, table.load) is snapshot


def test_appends_reuse_spare_rows_and_keep_older_snapshots_intact():
    table, cache = FakeTable(100), MatrixCache()
    snapshots = [cache.get("c", 1, 0, table.load)]
    for version in range(2, 7):
        table.add(7)
        snapshots.append(cache.get("c", version, 0, table.load))
    first_spare = snapshots[1].spare_matrix
    assert first_spare is not None and len(first_spare) >= 100 + 7 * 5
    assert all(s.spare_matrix is first_spare for s in snapshots[2:])  # no copy per append
    for snapshot, n in zip(snapshots, range(100, 136, 7), strict=True):
        assert snapshot.size == n  # each snapshot still shows exactly its rows
        assert np.array_equal(snapshot.matrix, table.matrix[:n])
        assert snapshot.ids.tolist() == table.ids[:n].tolist()
    assert snapshots[-1].nbytes == first_spare.nbytes + snapshots[-1].spare_ids.nbytes


def test_removed_segments_force_a_full_reload():
    table, cache = FakeTable(50), MatrixCache()
    cache.get("c", 1, 0, table.load)
    table.remove(10)
    table.add(5)
    snapshot = cache.get("c", 2, 1, table.load)
    assert table.calls == [0, 0]
    assert 10 not in snapshot.ids and snapshot.size == 54
    rows, _ = top_k(snapshot.matrix, table.matrix[20], 1)
    assert snapshot.ids[rows[0]] == table.ids[20]


def test_search_sees_new_vectors_after_a_version_bump():
    table, cache = FakeTable(200), MatrixCache()
    snapshot = cache.get("c", 1, 0, table.load)
    target = unit_rows(1, seed=12345)[0]
    before, _ = top_k(snapshot.matrix, target, 1)
    table.ids = np.append(table.ids, 999)
    table.matrix = np.concatenate([table.matrix, target[None, :]])
    assert cache.get("c", 1, 0, table.load) is snapshot  # same version: stale on purpose
    fresh = cache.get("c", 2, 0, table.load)
    rows, scores = top_k(fresh.matrix, target, 1)
    assert fresh.ids[rows[0]] == 999 != snapshot.ids[before[0]]
    assert scores[0] == pytest.approx(1.0, abs=1e-5)


def test_empty_collection_then_first_segments():
    table, cache = FakeTable(0), MatrixCache()
    assert cache.get("c", 0, 0, table.load).size == 0
    table.add(3)
    assert cache.get("c", 1, 0, table.load).matrix.shape == (3, DIM)


def test_least_recently_used_collections_are_evicted():
    per_collection = Snapshot(0, 0, np.zeros(100, np.int64), np.zeros((100, DIM), np.float32))
    cache = MatrixCache(max_bytes=int(2.5 * per_collection.nbytes))
    tables = {name: FakeTable(100) for name in "abc"}
    cache.get("a", 1, 0, tables["a"].load)
    cache.get("b", 1, 0, tables["b"].load)
    cache.get("a", 1, 0, tables["a"].load)  # a is now the most recently used
    cache.get("c", 1, 0, tables["c"].load)
    assert "a" in cache and "c" in cache and "b" not in cache
    assert cache.nbytes <= cache.max_bytes
    cache.drop("a")
    assert "a" not in cache
    lone = MatrixCache(max_bytes=1)  # an entry bigger than the cache is still kept
    lone.get("a", 1, 0, tables["a"].load)
    assert "a" in lone


def test_concurrent_searches_load_a_collection_once():
    table, cache = FakeTable(100), MatrixCache()
    original = table.load

    def slow_load(after_id):
        time.sleep(0.2)
        return original(after_id)

    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get("c", 1, 0, slow_load)))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert table.calls == [0] and len({id(r) for r in results}) == 1


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


def test_embeddings_match_sentence_transformers(embedder):
    from sentence_transformers import SentenceTransformer

    texts = ["A short query.", "A much longer passage about trains leaving the station "
             "at nine in the morning, heading for the mountains. " * 3]
    reference = SentenceTransformer(str(embedder.path), device="cpu", local_files_only=True)
    expected = reference.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    assert np.allclose(embedder.embed(texts), expected, atol=1e-5)


def test_preload_accepts_the_embedding_model_name(embedder):
    from workers.models import preload_models

    assert set(preload_models(["minilm"], "cpu")) == {"minilm"}
