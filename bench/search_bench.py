"""Search latency at 10k and 100k stored segments, and indexing throughput.

Creates a fresh PostgreSQL database (migrated with Alembic), fills collections with
synthetic segments (random unit 384-d vectors, texts of realistic length), then times
``POST /collections/<id>/search`` through the real Flask app (test client): the first
call on a cold matrix cache, then ``--queries`` distinct queries after one warm-up call,
plus the search after a media is added (cache extended) and after one is deleted (cache
reloaded). Indexing throughput embeds ``--index-texts`` real sentences with the real
model and stores them as the /index worker does. Usage::

    python bench/search_bench.py [--sizes 10000,100000] [--queries 200] [--index-texts 2000]

Prints a table and writes ``bench/results/search.json``. The database is dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import psycopg  # noqa: E402

from bench.speech import COOKING, OTHER_SENTENCES, WEATHER  # noqa: E402
from tests.support import database_url_of, pg_admin_url  # noqa: E402

DIM = 384
SEGMENTS_PER_MEDIA = 50
OWNER = "bench"
RESULTS = Path(__file__).resolve().parent / "results" / "search.json"

WORDS = (
    "the a of and to in is it that was for on are with as we they be at one have this from "
    "or had by word but what some can out other were all there when up use your how said an "
    "each she which do their time if will way about many then them write would like so these "
    "her long make thing see him two has look more day could go come did number sound no most "
    "people my over know water than call first who may down side been now find any new work "
    "part take get place made live where after back little only round man year came show every "
    "good me give our under name very through just form sentence great think say help low line "
    "differ turn cause much mean before move right boy old too same tell does set three want "
    "air well also play small end put home read hand port large spell add even land here must "
    "big high such follow act why ask men change went light kind off need house picture try us "
    "again animal point mother world near build self earth father head stand own page should "
    "country found answer school grow study still learn plant cover food sun four between state "
    "keep eye never last let thought city tree cross farm hard start might story saw far sea "
    "draw left late run while press close night real life few north open seem together next "
    "white children begin got walk example ease paper group always music those both mark often "
    "letter until mile river car feet care second book carry took science eat room friend began "
    "idea fish mountain stop once base hear horse cut sure watch color face wood main enough "
    "plain girl usual young ready above ever red list though feel talk bird soon body dog family "
    "direct pose leave song measure door product black short numeral class wind question happen "
    "complete ship area half rock order fire south problem piece told knew pass since top whole "
    "king space heard best hour better true during hundred five remember step early hold west "
    "ground interest reach fast verb sing listen six table travel less morning ten simple "
    "several vowel toward war lay against pattern slow center love person money serve appear "
    "road map rain rule govern pull cold notice voice unit power town fine certain fly fall "
    "lead cry dark machine note wait plan figure star box noun field rest correct able pound "
    "done beauty drive stood contain front teach week final gave green oh quick develop ocean "
    "warm free minute strong special mind behind clear tail produce fact street inch multiply "
    "nothing course stay wheel full force blue object decide surface deep moon island foot "
    "system busy test record boat common gold possible plane stead dry wonder laugh thousand "
    "ago ran check game shape equate hot miss brought heat snow tire bring yes distant fill "
    "east paint language among"
).split()

SUBJECTS = ["The engineer", "Our guide", "My grandmother", "The new manager", "A young student",
            "The pilot", "Every visitor", "The local baker", "Her brother", "The committee",
            "The old fisherman", "A famous chef", "The museum curator", "Our neighbour",
            "The train driver", "The school teacher", "A tired runner", "The city council",
            "The gardener", "A curious child"]
VERBS = ["explained how to repair", "talked for an hour about", "wrote a short report on",
         "asked the audience about", "spent the whole weekend studying", "made a video about",
         "could not stop thinking about", "gave a lecture on", "complained loudly about",
         "took careful notes on", "showed us a photograph of", "laughed at the story about",
         "changed her mind about", "read an old book on", "argued with the mayor about"]
OBJECTS = ["the broken bicycle", "the winter storm", "fresh bread and butter", "the last train",
           "the mountain lake", "a new recipe for soup", "the football final", "the river flood",
           "the price of coffee", "the library renovation", "the electric car", "spring flowers",
           "the night sky", "a lost dog", "the summer festival", "the stock market",
           "the history of the harbour", "solar panels on the roof", "the morning traffic",
           "the village school"]
TAILS = ["", " before the meeting", " while it was raining", " in the small kitchen",
         " during the long journey", " at the station", " last Tuesday", " with great care",
         " in front of everyone", " after dinner"]
QUESTION_STARTS = ["Who talked about", "What did they say about", "Tell me about",
                   "Where is the part about", "Find the discussion of", "Any mention of",
                   "Explain", "When did someone mention", "Show me"]


def sentences(n: int, seed: int = 1) -> list[str]:
    """``n`` varied English sentences (8-20 words), plus the speech clips' ones."""
    rng = np.random.default_rng(seed)
    fixed = [WEATHER, COOKING, *OTHER_SENTENCES]
    out = []
    for i in range(n):
        if i < len(fixed):
            out.append(fixed[i])
            continue
        out.append(f"{SUBJECTS[rng.integers(len(SUBJECTS))]} "
                   f"{VERBS[rng.integers(len(VERBS))]} "
                   f"{OBJECTS[rng.integers(len(OBJECTS))]}{TAILS[rng.integers(len(TAILS))]}.")
    return out


def queries(n: int) -> list[str]:
    """``n`` distinct questions (no two hit the query-vector cache)."""
    combos = [f"{start} {obj}{tail}?" for tail in TAILS for start in QUESTION_STARTS
              for obj in OBJECTS]
    rng = np.random.default_rng(7)
    return [combos[i] for i in rng.permutation(len(combos))[:n]]


def random_texts(rng: np.random.Generator, n: int) -> list[str]:
    """Transcript-like passages of 12-60 words (about what /index stores)."""
    lengths = rng.integers(12, 61, size=n)
    picks = rng.integers(len(WORDS), size=int(lengths.sum()))
    out, at = [], 0
    for length in lengths:
        out.append(" ".join(WORDS[j] for j in picks[at:at + length]).capitalize() + ".")
        at += length
    return out


def unit_vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    vectors = rng.standard_normal((n, DIM), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


# --- the database ----------------------------------------------------------------------


def create_database() -> str:
    name = f"hark_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_admin_url(durable=True), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return database_url_of(pg_admin_url(durable=True), name)


def drop_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(pg_admin_url(durable=True), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def fill_collection(url: str, collection_id: str, n: int, seed: int) -> float:
    """Create a collection of ``n`` synthetic segments with COPY; returns seconds taken."""
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    media_count = -(-n // SEGMENTS_PER_MEDIA)
    with psycopg.connect(url) as conn:
        pk = conn.execute(
            "INSERT INTO collections (owner, collection_id, name, version, reset_version, "
            "created_at, updated_at) VALUES (%s, %s, %s, 1, 0, now(), now()) RETURNING id",
            (OWNER, collection_id, f"{n} synthetic segments")).fetchone()[0]
        conn.execute(
            "INSERT INTO collection_media (collection_pk, media_id, duration, language, model, "
            "segment_count, created_at) SELECT %s, 'media-' || g, %s, 'en', 'synthetic', %s, "
            "now() FROM generate_series(1, %s) AS g",
            (pk, SEGMENTS_PER_MEDIA * 6.0, SEGMENTS_PER_MEDIA, media_count))
        media_pks = [r[0] for r in conn.execute(
            "SELECT id FROM collection_media WHERE collection_pk = %s ORDER BY id", (pk,))]
        with conn.cursor() as cur, cur.copy(
                'COPY segments (media_pk, collection_pk, idx, start, "end", text, embedding) '
                "FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["int8", "int8", "int4", "float8", "float8", "text", "bytea"])
            for first in range(0, n, 10_000):
                count = min(10_000, n - first)
                vectors = unit_vectors(rng, count).astype("<f4")
                texts = random_texts(rng, count)
                for j in range(count):
                    i = first + j
                    idx = i % SEGMENTS_PER_MEDIA
                    copy.write_row((media_pks[i // SEGMENTS_PER_MEDIA], pk, idx, idx * 6.0,
                                    idx * 6.0 + 5.5, texts[j], vectors[j].tobytes()))
        conn.execute("ANALYZE segments")
    return time.perf_counter() - started


# --- measurements ----------------------------------------------------------------------


def indexing_throughput(db, texts: list[str]) -> dict:
    """Embed with the real model and store as the worker does (media of 50 passages)."""
    import torch

    from core import collections_store as store
    from core.models_collections import Collection
    from workers.embedding import get_embedder

    torch.set_num_threads(os.cpu_count() or 1)  # as a worker runs it
    embedder = get_embedder("cpu")
    embedder.embed(["warm up"])
    with db.transaction() as session:
        session.add(Collection(owner=OWNER, collection_id="indexing", name="indexing"))
    embed_s = store_s = 0.0
    for number, first in enumerate(range(0, len(texts), SEGMENTS_PER_MEDIA)):
        chunk = texts[first:first + SEGMENTS_PER_MEDIA]
        t0 = time.perf_counter()
        vectors = embedder.embed(chunk)
        t1 = time.perf_counter()
        passages = [{"start": 4.0 * i, "end": 4.0 * i + 3.5, "text": t}
                    for i, t in enumerate(chunk)]
        with db.transaction() as session:
            store.save_media(session, owner=OWNER, collection_id="indexing",
                             media_id=f"media-{number}", replace=False, passages=passages,
                             vectors=vectors)
        t2 = time.perf_counter()
        embed_s, store_s = embed_s + (t1 - t0), store_s + (t2 - t1)
    return {"texts": len(texts), "torch_threads": torch.get_num_threads(),
            "embed_s": round(embed_s, 2), "store_s": round(store_s, 2),
            "embed_per_s": round(len(texts) / embed_s, 1),
            "store_per_s": round(len(texts) / store_s, 1),
            "segments_per_s": round(len(texts) / (embed_s + store_s), 1)}


def search_latency(app, db, collection_id: str, n: int, n_queries: int, headers) -> dict:
    from app.search import embed_query, top_k
    from core import collections_store as store
    from workers.embedding import get_embedder

    client = app.test_client()
    path = f"/collections/{collection_id}/search"
    texts = queries(n_queries + 2)
    embed_query.cache_clear()  # every timed query is embedded, as a new question would be

    cpu_times: list[float] = []

    def timed(query: str) -> tuple[float, dict]:
        t0, c0 = time.perf_counter(), time.process_time()
        response = client.post(path, headers=headers, json={"query": query, "top_k": 10})
        body = response.get_json()
        elapsed = time.perf_counter() - t0
        cpu_times.append(time.process_time() - c0)
        assert response.status_code == 200 and len(body["results"]) == 10, body
        return elapsed, body

    cold, _ = timed(texts[0])
    timed(texts[1])  # the warm-up call
    cpu_times.clear()
    latencies = [timed(q)[0] for q in texts[2:]]
    cpu_p50 = percentile(cpu_times, 50)

    cache = app.extensions["search_cache"]
    with db.session() as session:
        collection = store.find_collection(session, OWNER, collection_id)
    snapshot = cache.get(collection.id, collection.version, collection.reset_version,
                         lambda _after: (_ for _ in ()).throw(AssertionError("cached")))
    embedder = get_embedder("cpu")
    embed_times, topk_times = [], []
    for q in texts[2:52]:
        t0 = time.perf_counter()
        vector = embedder.embed([q + " (uncached)"])[0]
        t1 = time.perf_counter()
        top_k(snapshot.matrix, vector, 10)
        embed_times.append(t1 - t0)
        topk_times.append(time.perf_counter() - t1)

    # A media added: the cached matrix is extended with its rows only (5 times, median).
    rng = np.random.default_rng(n)
    embed_query(texts[5])  # the query vector is cached: time the matrix update only
    after_add = []
    for number in range(5):
        with db.transaction() as session:
            store.save_media(session, owner=OWNER, collection_id=collection_id,
                             media_id=f"added-{number}", replace=False,
                             passages=[{"start": i, "end": i + 1.0, "text": t} for i, t in
                                       enumerate(random_texts(rng, SEGMENTS_PER_MEDIA))],
                             vectors=unit_vectors(rng, SEGMENTS_PER_MEDIA))
        after_add.append(timed(texts[5])[0])
    # A media deleted: the matrix is reloaded (3 times, median).
    after_delete = []
    for number in range(1, 4):
        client.delete(f"/collections/{collection_id}/media/media-{number}", headers=headers)
        after_delete.append(timed(texts[5])[0])
    return {
        "segments": n,
        "queries": len(latencies),
        "p50_ms": ms(percentile(latencies, 50)),
        "p95_ms": ms(percentile(latencies, 95)),
        "p99_ms": ms(percentile(latencies, 99)),
        "mean_ms": ms(statistics.fmean(latencies)),
        # CPU time of this process per search (all its threads): what the search costs,
        # without the waiting for a core that a busy machine adds to wall time.
        "cpu_p50_ms": ms(cpu_p50),
        "first_call_cold_cache_ms": ms(cold),
        "after_media_added_ms": ms(statistics.median(after_add)),
        "after_media_deleted_ms": ms(statistics.median(after_delete)),
        "query_embedding_p50_ms": ms(percentile(embed_times, 50)),
        "matrix_top_k_p50_ms": ms(percentile(topk_times, 50)),
        "matrix_mb": round(snapshot.matrix.nbytes / 2**20, 1),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000",
                        help="comma-separated segment counts")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--index-texts", type=int, default=2000)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from app import create_app
    from app.commands import upgrade_database
    from app.search import warm_up
    from core.config import Settings
    from core.keys import create_key

    url = create_database()
    results: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                 "platform": platform.platform(),
                                 "load_average_at_start": [round(x, 2) for x in
                                                           os.getloadavg()]},
                     "command": " ".join(["python bench/search_bench.py",
                                          *(sys.argv[1:] if argv is None else argv)])}
    try:
        upgrade_database(url)
        with tempfile.TemporaryDirectory(prefix="hark-bench-") as data_dir:
            broker_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
            settings = Settings.from_env(database_url=url, broker_url=broker_url,
                                         data_dir=Path(data_dir), api_bootstrap_key=None,
                                         key_cache_seconds=60.0)
            app = create_app(settings)
            logging.getLogger().setLevel(logging.WARNING)
            db = app.extensions["hark"]["db"]
            with db.transaction() as session:
                _, raw = create_key(session, name=OWNER, owner=OWNER)
            headers = {"x-api-key": raw}

            t0 = time.perf_counter()  # the query model, as an API process loads it
            warm_up(app.config["SEARCH"].threads)
            results["query_model_load_ms"] = ms(time.perf_counter() - t0)

            print(f"indexing {args.index_texts} sentences with the real model ...", flush=True)
            results["indexing"] = indexing_throughput(db, sentences(args.index_texts))
            results["search"] = []
            for n in sizes:
                collection_id = f"synthetic-{n}"
                print(f"filling {n} segments ...", flush=True)
                fill_s = fill_collection(url, collection_id, n, seed=n)
                row = search_latency(app, db, collection_id, n, args.queries, headers)
                row["fill_s"] = round(fill_s, 1)
                results["search"].append(row)
            results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
            app.extensions["hark"]["waiter"].close()
            db.dispose()
    finally:
        drop_database(url)

    print_table(results)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten to {args.output}")
    return results


def print_table(results: dict) -> None:
    print("\nsearch (POST /collections/<id>/search, top_k=10, Flask test client)")
    columns = [("segments", "segments"), ("p50_ms", "p50"), ("p95_ms", "p95"),
               ("p99_ms", "p99"), ("cpu_p50_ms", "cpu p50"), ("first_call_cold_cache_ms", "cold"),
               ("after_media_added_ms", "+media"), ("after_media_deleted_ms", "-media"),
               ("query_embedding_p50_ms", "embed"), ("matrix_top_k_p50_ms", "top-k"),
               ("matrix_mb", "MB")]
    print("  ".join(f"{title:>9}" for _, title in columns))
    for row in results["search"]:
        print("  ".join(f"{row[key]:>9}" for key, _ in columns))
    print(f"(ms; load average {results['machine']['load_average_at_start']} at start, "
          f"{results['machine']['load_average_at_end']} at end on {results['machine']['cpus']} "
          "CPUs)")
    print(f"('cold' is the first search of a collection in the process, the query model "
          f"already loaded; loading it (imports included) took "
          f"{results['query_model_load_ms']} ms)")
    idx = results["indexing"]
    print(f"\nindexing: {idx['texts']} sentences, {idx['segments_per_s']} segments/s "
          f"(embedding {idx['embed_per_s']}/s with {idx['torch_threads']} torch threads, "
          f"storing {idx['store_per_s']}/s)")


if __name__ == "__main__":
    main()
