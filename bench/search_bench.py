"""Search at 100k and 1M segments over 100 collections: latency (query embedding included),
recall@10 against exact search, HNSW build time, indexing rate, API memory, and the time
to embed one query on each CPU engine (onnxruntime, torch).

Vectors are MiniLM (all-MiniLM-L6-v2) embeddings of real English sentences found offline
(:mod:`bench.sentences`: installed packages' READMEs and the standard library's
docstrings; about 15k sentences). Embedding a million sentences on 2 CPU cores would take
hours, so the first ``--base`` sentences are embedded and every further segment is a
normalized combination ``a*u + (1-a)*v`` (a uniform in [0.55, 0.95]) of two embedded
sentences, with the two sentences as its text. Held-out sentences (never stored) are the
queries. Collections are of unequal sizes (Zipf-like, the largest ~23x the median), so
small collections sit among large ones.

Steps, for each size in ``--sizes`` (the table grows; the index is rebuilt each time):
COPY the segments, build the shared HNSW index (timed, ``maintenance_work_mem`` as
``core.vector_indexes.build_memory`` sizes it), then the own indexes of the collections
above ``SEARCH_EXACT_MAX`` (``core.vector_indexes.maintain``, timed), start an ``embed``
worker and a gunicorn API (one process), then send
``--queries`` distinct queries through HTTP to ``POST /collections/<id>/search`` (random
collections; semantic and hybrid), and ``--rss-searches`` more before reading the API
process's resident memory. Recall@10: the search's top 10 (``core.search_sql.search``,
the API's tuning) against the exact top 10 (numpy, same vectors), over the collections
above ``SEARCH_EXACT_MAX`` (smaller ones are scored exactly), on their own indexes, and
once before those are built, on the shared index alone, for comparison. Indexing rate: segments
per second stored by ``core.collections_store.save_media`` into the indexed table, and
sentences per second the model embeds (the /index worker does both). Usage::

    python bench/search_bench.py [--sizes 100000,1000000] [--collections 100]
        [--queries 200] [--base 12000] [--rss-searches 1000]

Needs Redis (``BROKER_URL``, default ``redis://127.0.0.1:6379/0``, a key prefix of its
own). Prints a table, writes ``bench/results/search.json``; the database is dropped.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
import uuid
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import psycopg  # noqa: E402

from bench.search_corpus import (  # noqa: E402
    OWNER,
    PER_MEDIA,
    Corpus,
    collection_rows,
    collection_sizes,
    fill,
)
from bench.sentences import real_sentences  # noqa: E402
from core.search_sql import SearchTuning  # noqa: E402
from tests.support import database_url_of, pg_admin_url, start_api, start_worker  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "search.json"
LOGS = Path(__file__).resolve().parent / "results" / "search-logs"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def build_index(url: str) -> dict:
    """Build the shared HNSW index (timed, sized by ``core.vector_indexes.build_memory``)."""
    from core.vector_indexes import build_memory

    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT count(*) FROM segments").fetchone()[0]
        memory = build_memory(rows)
        conn.execute("DROP INDEX IF EXISTS ix_segments_embedding_hnsw")
        conn.execute(f"SET maintenance_work_mem = '{memory}'")
        started = time.perf_counter()
        conn.execute("CREATE INDEX ix_segments_embedding_hnsw ON segments "
                     "USING hnsw (embedding vector_cosine_ops)")
        seconds = time.perf_counter() - started
        conn.execute("VACUUM ANALYZE segments")
        size = conn.execute("SELECT pg_relation_size('ix_segments_embedding_hnsw')").fetchone()
    return {"rows": rows, "maintenance_work_mem": memory, "build_s": round(seconds, 1),
            "index_mb": round(size[0] / 2**20)}


def build_own_indexes(url: str) -> dict:
    """The collections' own indexes, as the beat task builds them (timed)."""
    from core.vector_indexes import maintain

    started = time.perf_counter()
    own = maintain(url, SearchTuning.from_env().exact_max)
    seconds = time.perf_counter() - started
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE segments")
    return {"own_indexes": len(own["built"]), "own_build_s": round(seconds, 1)}


def recall(url: str, corpus: Corpus, layout: list[dict], queries: np.ndarray,
           tuning) -> dict:
    """recall@10 of the search as the API runs it (``tuning``) over the collections above
    ``exact_max`` (smaller ones are scored exactly), against numpy on the same vectors."""
    from sqlalchemy.orm import Session

    from core.db import make_engine
    from core.search_sql import search
    from core.vectors import vector_literal

    big = [c for c in layout if c["n"] > tuning.exact_max] or layout
    engine, found, wanted = make_engine(url), 0, 0
    rng, rows = random.Random(3), {}
    try:
        for q in queries:
            c = rng.choice(big)
            if c["pk"] not in rows:
                rows[c["pk"]] = collection_rows(corpus, c)
            texts, vectors = rows[c["pk"]]
            truth = {texts[i] for i in np.argsort(-(vectors @ q))[:10]}
            with Session(engine) as session:
                hits = search(session, [c["pk"]], query="", vector=vector_literal(q),
                              mode="semantic", k=10, tuning=tuning)
            found += len(truth & {h["text"] for h in hits})
            wanted += len(truth)
    finally:
        engine.dispose()
    return {"recall_at_10": round(found / wanted, 4), "queries": len(queries),
            "collections_over_exact_max": len(big)}


def latency(base: str, headers: dict, layout: list[dict], texts: list[str], mode: str,
            rng: random.Random) -> dict:
    times = []
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        for text in texts:
            c = rng.choice(layout)
            t0 = time.perf_counter()
            r = client.post(f"/collections/{c['collection_id']}/search",
                            json={"query": text, "top_k": 10, "mode": mode})
            times.append(time.perf_counter() - t0)
            assert r.status_code == 200, r.text
            if mode != "keyword":  # (keyword search finds only segments with the words)
                assert len(r.json()["results"]) == min(10, c["n"]), (c, r.text[:300])
    return {"p50_ms": round(1000 * statistics.median(times), 1),
            "p99_ms": round(1000 * percentile(times, 99), 1), "n": len(times)}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def indexing_rate(url: str, corpus: Corpus, texts: list[str]) -> dict:
    from core import collections_store as store
    from core.db import Database
    from core.models_collections import Collection
    from workers.embedding import get_embedder

    embedder = get_embedder("cpu")
    embedder.embed(["warm up"])
    t0 = time.perf_counter()
    vectors = embedder.embed(texts)
    embed_s = time.perf_counter() - t0
    db = Database().configure(url)
    try:
        with db.transaction() as session:
            session.add(Collection(owner=OWNER, collection_id="indexing", name="indexing"))
        t0 = time.perf_counter()
        for number, first in enumerate(range(0, len(texts), PER_MEDIA)):
            chunk = texts[first:first + PER_MEDIA]
            with db.transaction() as session:
                store.save_media(session, owner=OWNER, collection_id="indexing",
                                 media_id=f"m{number}", replace=False, language="en",
                                 passages=[{"start": i, "end": i + 1, "text": t}
                                           for i, t in enumerate(chunk)],
                                 vectors=vectors[first:first + PER_MEDIA])
        store_s = time.perf_counter() - t0
    finally:
        db.dispose()
    return {"texts": len(texts), "embed_per_s": round(len(texts) / embed_s, 1),
            "store_per_s": round(len(texts) / store_s, 1),
            "segments_per_s": round(len(texts) / (embed_s + store_s), 1)}


def query_embed_ms(queries: list[str]) -> dict:
    """Median in-process time to embed one query, one thread, on each CPU engine (the
    embed worker's choice: ``workers.embedding_onnx``)."""
    import torch

    from workers.embedding import Embedder

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = {}
    try:
        for engine in ("onnx", "torch"):
            embedder = Embedder("cpu", threads=1, engine=engine)
            embedder.embed(["warm up"])
            times = []
            for text in queries:
                t0 = time.perf_counter()
                embedder.embed([text])
                times.append(time.perf_counter() - t0)
            out[embedder.engine] = round(1000 * statistics.median(times), 2)  # as it ran
    finally:
        torch.set_num_threads(threads)
    return out


def measure(url: str, env: dict, corpus: Corpus, layout: list[dict], queries: list[str],
            query_vectors: np.ndarray, args) -> dict:
    from core.db import Database
    from core.keys import create_key

    db = Database().configure(url)
    with db.transaction() as session:
        _, key = create_key(session, name="bench", owner=OWNER, is_admin=False)
    db.dispose()
    LOGS.mkdir(parents=True, exist_ok=True)
    embed = start_worker(env, LOGS, name="bench-embed", WORKER_ROLE="embed",
                         WORKER_CONCURRENCY="1")
    api, base = start_api(env, LOGS, SEARCH_EMBED_TIMEOUT="30")
    try:
        headers = {"x-api-key": key}
        rng = random.Random(11)
        out = {}
        httpx.post(base + "/search", headers=headers, timeout=60,
                   json={"query": "warm up", "mode": "semantic"})
        for mode in ("semantic", "hybrid", "keyword"):  # keyword: no query embedding
            out[mode] = latency(base, headers, layout, [f"{q} " + mode for q in queries],
                                mode, rng)
        more = [f"{queries[i % len(queries)]} #{i}" for i in range(args.rss_searches)]
        latency(base, headers, layout, more, "hybrid", rng)
        children = Path(f"/proc/{api.pid}/task/{api.pid}/children").read_text().split()
        out["api_rss_mb"] = max(rss_mb(int(p)) for p in children) if children else None
        out["api_searches"] = 2 * len(queries) + args.rss_searches + 1
    finally:
        api.stop()
        embed.stop()
    out["recall"] = recall(url, corpus, layout, query_vectors[:args.recall_queries],
                           SearchTuning.from_env())["recall_at_10"]
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--collections", type=int, default=100)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--base", type=int, default=12000, help="sentences embedded")
    parser.add_argument("--rss-searches", type=int, default=1000)
    parser.add_argument("--recall-queries", type=int, default=100)
    parser.add_argument("--index-texts", type=int, default=1000)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    from workers.embedding import get_embedder

    sentences = real_sentences(args.base + args.queries + args.index_texts)
    if len(sentences) < args.queries + args.index_texts + 100:
        raise SystemExit(f"only {len(sentences)} sentences found offline")
    queries, rest = sentences[:args.queries], sentences[args.queries:]
    index_texts, base = rest[:args.index_texts], rest[args.index_texts:]
    t0 = time.perf_counter()
    embedder = get_embedder("cpu")
    base_vectors, query_vectors = embedder.embed(base), embedder.embed(queries)
    results: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
                     "date": time.strftime("%Y-%m-%d"), "base_sentences": len(base),
                     "embed_base_s": round(time.perf_counter() - t0, 1),
                     "query_embed_ms": query_embed_ms(queries[:100]), "sizes": {}}
    corpus = Corpus(base, base_vectors)
    admin = pg_admin_url(durable=True)
    name = f"hark_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = database_url_of(admin, name)
    env = {"DATABASE_URL": url, "BROKER_URL": os.environ.get("BROKER_URL")
           or "redis://127.0.0.1:6379/0", "BROKER_KEY_PREFIX": f"hark-bench-{name}:",
           "DATA_DIR": str(LOGS / "data")}
    try:
        from app.commands import upgrade_database

        upgrade_database(url)
        layout: list[dict] = []
        stored = 0
        for size in sizes:  # each collection grows in proportion
            copy_s = fill(url, corpus, layout, collection_sizes(size - stored,
                                                                args.collections), stored)
            stored = size
            entry = {"copy_s": round(copy_s, 1), "hnsw": build_index(url)}
            # before the own indexes: the shared index alone serves every collection
            entry["shared_index_recall"] = recall(
                url, corpus, layout, query_vectors[:args.recall_queries],
                SearchTuning.from_env())["recall_at_10"]
            entry["hnsw"].update(build_own_indexes(url))
            entry.update(measure(url, env, corpus, layout, queries, query_vectors, args))
            results["sizes"][str(size)] = entry
            print(json.dumps({size: entry}), flush=True)
        results["indexing"] = indexing_rate(url, corpus, index_texts)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    return results


def print_table(results: dict) -> None:
    print(f"\nsearch bench, {results['date']}, {results['machine']}, "
          f"{results['base_sentences']} embedded sentences")
    print(f"{'segments':>9} {'sem p50':>8} {'sem p99':>8} {'hyb p50':>8} {'hyb p99':>8} "
          f"{'recall@10':>9} {'shared':>6} {'HNSW build':>10} {'own':>6} {'API RSS':>8}")
    for size, e in results["sizes"].items():
        print(f"{int(size):>9} {e['semantic']['p50_ms']:>6}ms {e['semantic']['p99_ms']:>6}ms "
              f"{e['hybrid']['p50_ms']:>6}ms {e['hybrid']['p99_ms']:>6}ms "
              f"{e['recall']:>9} "
              f"{e['shared_index_recall']:>6} {e['hnsw']['build_s']:>9}s "
              f"{e['hnsw']['own_build_s']:>5}s {e['api_rss_mb']:>6}MB")
    q = results.get("query_embed_ms") or {}
    if q:
        print("one query embedded, 1 thread: "
              + ", ".join(f"{engine} {ms} ms" for engine, ms in q.items()))
    i = results.get("indexing") or {}
    if i:
        print(f"indexing: embed {i['embed_per_s']}/s, store {i['store_per_s']}/s, "
              f"both {i['segments_per_s']} segments/s")


if __name__ == "__main__":
    main()
