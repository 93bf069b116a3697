"""Search modes through the SDK (sync and async) and the ``hark`` CLI, against the real
platform: passages embedded by the session's real embed worker, queries answered by the
API under gunicorn."""

from __future__ import annotations

import asyncio
import json

import pytest

from core import collections_store
from hark_client import AsyncClient, Client, NotFoundError
from tests.client.test_cli_commands import hark_cli

PASSAGES = {  # (collection, media): text; the media ids say what each is about
    ("talks", "forecast"): "Tomorrow will be sunny and warm, with a light breeze from the west.",
    ("talks", "train"): "The train to the mountains leaves the station at nine.",
    ("billing", "invoice"): "Invoice 4711 for Acme is overdue by thirty days.",
    ("billing", "pasta"): "Boil the pasta, then add garlic and olive oil.",
}
BY_MEANING = "Is the weather going to be nice?"  # no word in common with the forecast
BY_WORDS = "4711"  # a number: words match it, meaning hardly


@pytest.fixture(scope="module")
def vectors(app, embed_worker) -> dict[tuple[str, str], str]:
    """Each passage's vector, from the embed worker (the model the queries use)."""
    embed = app.extensions["query_embedder"]
    return {key: embed(text) for key, text in PASSAGES.items()}


@pytest.fixture()
def indexed(hark, db, vectors) -> None:
    """Alice's collections ``talks`` and ``billing``, two passages each."""
    for collection in ("talks", "billing"):
        hark.collections.create(collection)
    for (collection, media), text in PASSAGES.items():
        with db.transaction() as session:
            collections_store.save_media(
                session, owner="alice", collection_id=collection, media_id=media,
                replace=False, passages=[{"start": 1.0, "end": 4.5, "text": text}],
                vectors=[vectors[collection, media]], language="en")


def where(hits) -> list[tuple[str, str]]:
    return [(h.collection_id, h.media_id) for h in hits]


def test_collection_search_sends_the_mode(hark, indexed):
    words = hark.collections.search("billing", BY_WORDS, mode="keyword")
    assert where(words) == [("billing", "invoice")]
    [hit] = words
    assert (hit.keyword_rank, hit.vector_rank, hit.similarity) == (1, None, None)
    assert hit.matched_by == ("words",) and hit.score > 0 and hit.task_id is None
    assert (hit.start, hit.end, hit.text) == (1.0, 4.5, PASSAGES["billing", "invoice"])

    meaning = hark.collections.search("billing", BY_WORDS, mode="semantic")
    assert len(meaning) == 2 and {h.keyword_rank for h in meaning} == {None}
    assert [h.vector_rank for h in meaning] == [1, 2]
    assert all(h.similarity == h.score and h.matched_by == ("meaning",) for h in meaning)

    assert hark.collections.search("talks", BY_MEANING, mode="keyword") == []
    found = hark.collections.search("talks", BY_MEANING, top_k=1, mode="semantic")
    assert where(found) == [("talks", "forecast")]


def test_hybrid_is_the_default_and_fuses_both_ranks(hark, indexed):
    hybrid = hark.collections.search("billing", "invoice 4711")
    assert where(hybrid) == [("billing", "invoice"), ("billing", "pasta")]
    first, second = hybrid
    assert (first.vector_rank, first.keyword_rank) == (1, 1)
    assert first.matched_by == ("meaning", "words")
    assert (second.vector_rank, second.keyword_rank) == (2, None)
    assert first.score == pytest.approx(2 / 61, abs=1e-6)
    assert second.score == pytest.approx(1 / 62, abs=1e-6)
    assert hark.collections.search("billing", "invoice 4711", mode="hybrid") == hybrid
    with pytest.raises(ValueError, match="semantic, keyword, hybrid"):
        hark.collections.search("billing", "x", mode="fuzzy")


def test_search_all_collections_or_some(hark, indexed, api_url, other_key):
    words = hark.search(BY_WORDS, mode="keyword")
    assert where(words) == [("billing", "invoice")] and words[0].keyword_rank == 1
    meaning = hark.search(BY_MEANING, mode="semantic")
    assert where(meaning)[0] == ("talks", "forecast") and len(meaning) == 4
    assert {h.collection_id for h in meaning} == {"talks", "billing"}
    assert where(hark.search(BY_MEANING, top_k=1, mode="semantic")) == [("talks", "forecast")]
    only = hark.search(BY_MEANING, mode="semantic", collections=["billing"])
    assert {h.collection_id for h in only} == {"billing"} and len(only) == 2
    assert where(hark.search(BY_WORDS, collections=["talks"], mode="keyword")) == []
    hybrid = hark.search("invoice 4711")  # the default mode
    assert where(hybrid)[0] == ("billing", "invoice")
    assert (hybrid[0].vector_rank, hybrid[0].keyword_rank) == (1, 1)

    with pytest.raises(NotFoundError) as missing:
        hark.search(BY_WORDS, collections=["billing", "nope"])
    assert missing.value.body["details"] == {"collections": ["nope"]}
    with Client(api_url, other_key) as bob:
        assert bob.search(BY_WORDS, mode="keyword") == []
    with pytest.raises(TypeError, match="collections.search"):
        hark.search("billing", BY_WORDS)  # the former search(collection_id, query)
    with pytest.raises(TypeError, match="list of collection ids"):
        hark.search(BY_WORDS, collections="billing")


def test_async_client_searches_with_modes(api_url, api_key, indexed):
    async def scenario() -> None:
        async with AsyncClient(api_url, api_key) as hark:
            words = await hark.collections.search("billing", BY_WORDS, mode="keyword")
            assert where(words) == [("billing", "invoice")]
            everywhere = await hark.search(BY_MEANING, top_k=2, mode="semantic",
                                           collections=["talks", "billing"])
            assert where(everywhere)[0] == ("talks", "forecast") and len(everywhere) == 2
            assert all(h.keyword_rank is None for h in everywhere)

    asyncio.run(scenario())


def test_cli_search_commands(api_url, api_key, indexed):
    def cli(*args: str, code: int = 0):
        done = hark_cli(*args, url=api_url, key=api_key)
        assert done.returncode == code, (args, done.stderr)
        assert "Traceback" not in done.stderr
        return done

    table = cli("collections", "search", "billing", BY_WORDS, "--mode", "keyword").stdout
    header, row = table.splitlines()
    assert header.split() == ["SCORE", "MEANING", "WORDS", "MEDIA", "START", "END", "TEXT"]
    assert row.split()[1:5] == ["-", "#1", "invoice", "1.00"] and "Invoice 4711" in row
    semantic = json.loads(cli("collections", "search", "billing", BY_WORDS, "--mode",
                              "semantic", "--top-k", "1", "--json").stdout)
    assert [(h["media_id"], h["keyword_rank"]) for h in semantic] == [("invoice", None)]
    assert semantic[0]["vector_rank"] == 1 and semantic[0]["similarity"] is not None
    fused = json.loads(cli("collections", "search", "billing", "invoice 4711",
                           "--json").stdout)[0]
    hybrid = cli("collections", "search", "billing", "invoice 4711").stdout.splitlines()
    assert hybrid[1].split()[:5] == [f"{fused['score']:.4f}", "#1",
                                     f"({fused['similarity']:.2f})", "#1", "invoice"]

    everywhere = cli("search", BY_MEANING, "--mode", "semantic", "--top-k", "3").stdout
    header, first, *rest = everywhere.splitlines()
    assert header.split()[:5] == ["SCORE", "MEANING", "WORDS", "COLLECTION", "MEDIA"]
    assert first.split()[1:6] == ["#1", first.split()[2], "-", "talks", "forecast"]
    assert len(rest) == 2
    ids = cli("search", BY_WORDS, "--mode", "keyword", "-q").stdout
    assert ids == "billing invoice\n"
    some = json.loads(cli("search", BY_MEANING, "--mode", "semantic", "--collection",
                          "billing", "--json").stdout)
    assert {h["collection_id"] for h in some} == {"billing"} and len(some) == 2
    assert cli("search", BY_MEANING, "--mode", "keyword").stdout == "(none)\n"

    old_form = cli("search", "talks", BY_MEANING, code=2)
    assert "hark collections search ID QUERY" in old_form.stderr
    assert "invalid choice" in cli("search", "x", "--mode", "fuzzy", code=2).stderr
    assert "not found: nope" in cli("search", "x", "--collection", "nope", code=1).stderr
