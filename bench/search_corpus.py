"""The search bench's corpus: real sentences' MiniLM vectors and their combinations,
COPYed into collections of unequal sizes, and read back as stored (see
:mod:`bench.search_bench`)."""

from __future__ import annotations

import time

import numpy as np
import psycopg

OWNER = "bench"
PER_MEDIA = 50


def collection_sizes(total: int, count: int) -> list[int]:
    weights = np.array([1 / (i + 1) ** 0.8 for i in range(count)])
    sizes = np.maximum(1, np.floor(weights / weights.sum() * total)).astype(int)
    sizes[0] += total - sizes.sum()
    return sizes.tolist()


class Corpus:
    """Embedded real sentences and derived combinations, segment ``i`` always the same."""

    def __init__(self, sentences: list[str], vectors: np.ndarray, seed: int = 7) -> None:
        self.sentences, self.vectors, self.seed = sentences, vectors, seed

    def rows(self, first: int, count: int) -> tuple[list[str], np.ndarray]:
        base = len(self.sentences)
        texts, out = [], np.empty((count, self.vectors.shape[1]), np.float32)
        rng = np.random.default_rng(self.seed + first)
        for j in range(count):
            i = first + j
            if i < base:
                texts.append(self.sentences[i])
                out[j] = self.vectors[i]
                continue
            a, b = rng.integers(0, base, 2)
            w = rng.uniform(0.55, 0.95)
            v = w * self.vectors[a] + (1 - w) * self.vectors[b]
            out[j] = v / np.linalg.norm(v)
            texts.append(f"{self.sentences[a]} {self.sentences[b]}")
        return texts, out


def fill(url: str, corpus: Corpus, layout: list[dict], sizes: list[int],
         start: int) -> float:
    """COPY ``sizes[i]`` more segments into collection ``i`` (created if new), ids from
    ``start`` + 1, recording each collection's id ranges in ``layout``; seconds taken."""
    from core.vectors import vector_literal

    started, next_id = time.perf_counter(), start
    with psycopg.connect(url) as conn:
        # rebuilt by build_index: COPY into a live HNSW index inserts row by row (~800/s)
        conn.execute("DROP INDEX IF EXISTS ix_segments_embedding_hnsw")
        for number, n in enumerate(sizes):
            if number == len(layout):
                cid = f"c{number}"
                pk = conn.execute(
                    "INSERT INTO collections (owner, collection_id, name, version, "
                    "reset_version, created_at, updated_at) VALUES (%s, %s, %s, 1, 0, now(), "
                    "now()) RETURNING id", (OWNER, cid, cid)).fetchone()[0]
                layout.append({"pk": pk, "collection_id": cid, "ranges": [], "n": 0})
            c = layout[number]
            media = [conn.execute(
                "INSERT INTO collection_media (collection_pk, media_id, language, "
                "segment_count, created_at) VALUES (%s, %s, 'en', %s, now()) RETURNING id",
                (c["pk"], f"m{next_id}-{k}", min(PER_MEDIA, n - k * PER_MEDIA))).fetchone()[0]
                for k in range(-(-n // PER_MEDIA))]
            with conn.cursor() as cur, cur.copy(
                    'COPY segments (id, media_pk, collection_pk, idx, start, "end", text, '
                    "ts_config, embedding) FROM STDIN") as copy:
                for first, (texts, vectors) in range_chunks(corpus, next_id, n):
                    for j in range(len(texts)):
                        i = first + j
                        copy.write_row((next_id + i + 1, media[i // PER_MEDIA], c["pk"],
                                        i % PER_MEDIA, i * 5.0, i * 5.0 + 4.5, texts[j],
                                        "english", vector_literal(vectors[j])))
            c["ranges"].append((next_id, n))
            c["n"] += n
            next_id += n
        conn.execute("SELECT setval(pg_get_serial_sequence('segments', 'id'), %s)",
                     (next_id,))
        conn.commit()
    return time.perf_counter() - started


def range_chunks(corpus: Corpus, start: int, n: int, chunk: int = 5000):
    """``(offset, corpus rows)`` of segments ``start`` .. ``start + n`` in the chunks
    :func:`fill` stores them in (each chunk's combinations are seeded by its first id)."""
    for first in range(0, n, chunk):
        yield first, corpus.rows(start + first, min(chunk, n - first))


def collection_rows(corpus: Corpus, c: dict) -> tuple[list[str], np.ndarray]:
    """The texts and vectors stored in collection ``c``, as :func:`fill` wrote them."""
    parts = [rows for start, n in c["ranges"] for _, rows in range_chunks(corpus, start, n)]
    return [t for texts, _ in parts for t in texts], np.concatenate([v for _, v in parts])
