"""``POST /search``: search all of the caller's collections (or the ones named), and the
search step shared with ``POST /collections/<id>/search``.

The query's vector comes from an ``embed`` worker (:mod:`app.search`); when none answers
in time the answer is a 503 with ``Retry-After`` (keyword searches need no worker).
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, current_app, jsonify
from flask.blueprints import BlueprintSetupState
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import search
from app.auth import current_principal
from app.bodies import load_json
from app.errors import APIError
from app.extensions import db
from app.openapi import doc
from app.schemas_collections import SearchAllRequest, SearchHitSchema, SearchResultsSchema
from core.models_collections import Collection

bp = Blueprint("search", __name__)
hit_schema = SearchHitSchema()
search_all_request = SearchAllRequest()
RETRY_AFTER_SECONDS = 2


@bp.record_once
def _configure(state: BlueprintSetupState) -> None:
    settings = search.SearchSettings.from_env()
    state.app.config.setdefault("SEARCH", settings)
    hark = state.app.extensions["hark"]
    state.app.extensions["query_embedder"] = search.QueryEmbedder(
        hark["celery"], hark["waiter"], state.app.config["SEARCH"])


def run_search(collections: Callable[[Session], list[int]], body: dict) -> list[dict]:
    """The hits of ``body`` (a loaded search request) over the collections that
    ``collections(session)`` finds (see :func:`app.search.search`), dumped."""
    settings: search.SearchSettings = current_app.config["SEARCH"]
    try:
        hits = search.search(db, current_app.extensions["query_embedder"], collections,
                             query=body["query"].strip(), mode=body["mode"], k=body["top_k"],
                             tuning=settings.tuning)
    except search.EmbeddingUnavailable as exc:
        raise APIError(503, "embedding_unavailable",
                       f"query embedding is unavailable: {exc}; try again, or search with "
                       "mode 'keyword'", headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
                       ) from None
    return hit_schema.dump(hits, many=True)


@bp.post("/search")
@doc("Search all your collections", tag="Collections", body=SearchAllRequest,
     responses={200: SearchResultsSchema})
def search_all():
    """The ``top_k`` best segments over your collections (or those in ``collections``),
    best first; an id in ``collections`` that is not yours is a 404."""
    body = load_json(search_all_request)
    owner = current_principal().owner

    def owned(session: Session) -> list[int]:
        query = select(Collection.id, Collection.collection_id).where(Collection.owner == owner)
        if body["collections"] is not None:
            query = query.where(Collection.collection_id.in_(body["collections"]))
        found = dict(session.execute(query).all())
        if body["collections"] is not None:
            missing = sorted(set(body["collections"]) - set(found.values()))
            if missing:
                raise APIError(404, "not_found",
                               f"collection not found: {', '.join(missing)}",
                               {"collections": missing})
        return list(found)

    return jsonify({"results": run_search(owned, body)})
