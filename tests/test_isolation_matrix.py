"""Owner isolation, endpoint by endpoint, discovered from ``app.url_map``.

Every route with a resource id in its path is tried by other owners (an ordinary key, and
an admin key: admin keys run the platform, they do not own other people's data) with the
owner's ids: the answer is always 404, as for an id that does not exist (never a 403 that
confirms it does), never carries the owner's data, and changes nothing. A new route is
covered as soon as it is registered; a route whose path parameter this test cannot
classify fails it. Listings and counts of other owners show nothing of the owner's, and
admin-only routes (found in the code, as the API document finds them) refuse ordinary keys.
"""

from __future__ import annotations

import itertools
import re
import uuid

import numpy as np
import pytest
from sqlalchemy import select

from app.openapi import admin_only
from core import collections_store, lifecycle
from core.models import utcnow
from core.models_webhooks import Webhook, WebhookAttempt, WebhookDelivery
from tests.support import store_blob

# Path parameters that name a resource, and what kind. A route with any other parameter
# fails test_every_path_parameter_is_classified until it is added here.
RESOURCE_PARAMS = {"task_id": "task", "collection_id": "collection", "media_id": "media",
                   "webhook_id": "webhook", "delivery_id": "delivery"}
# Parameters of public, owner-less routes (static files of the web page and /docs).
ASSET_PARAMS = {"name", "filename"}
# Parameters naming something of the platform's, the same for every owner (not owned).
CATALOG_PARAMS = {"model"}
# Bodies that pass validation, so that ownership, not validation, decides the answer.
BODIES = {
    "collections.update_collection": {"name": "renamed by an intruder"},
    # keyword: ownership is checked before any query embedding (no embed worker here)
    "collections.search_collection": {"query": "anything at all", "mode": "keyword"},
    "webhooks.update_webhook": {"description": "changed by an intruder"},
    "webhooks.rotate_webhook_secret": {"grace_seconds": 0},
}
_PARAM = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def params_of(rule) -> list[str]:
    return _PARAM.findall(rule.rule)


def kind_of(rule, param: str) -> str:
    kind = RESOURCE_PARAMS[param]
    if kind == "delivery" and rule.rule.startswith("/webhooks/callbacks/"):
        return "callback_delivery"
    return kind


def resource_rules(app) -> list:
    return [rule for rule in app.url_map.iter_rules()
            if any(p in RESOURCE_PARAMS for p in params_of(rule))]


def methods_of(rule) -> list[str]:
    return sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})


def url_for(rule, ids: dict[str, str]) -> str:
    return _PARAM.sub(lambda m: ids[kind_of(rule, m.group(1))], rule.rule)


def call(client, method: str, url: str, headers: dict, endpoint: str):
    body = BODIES.get(endpoint)
    kwargs = {"json": body} if body is not None else {}
    return client.open(url, method=method, headers=headers, **kwargs)


# --- the owners' resources -----------------------------------------------------------


def make_resources(client, db, headers: dict, owner: str, tag: str) -> dict:
    """One of each resource for ``owner``; ``tag`` marks every piece of its data."""
    with db.transaction() as session:  # a URL task whose fetched copy the worker kept
        blob_id = store_blob(session, owner, tag.encode() * 99, f"{tag}.wav", "audio/wav")
        task = lifecycle.create_task(session, owner=owner, endpoint="/analyze", data={
            "media": {"url": f"http://127.0.0.1:9/{tag}.wav", "filename": f"{tag}.wav",
                      "blob_id": str(blob_id)},
            "options": {"model": "tiny.en"}})
        task_id = task.id
    with db.transaction() as session:
        lifecycle.mark_assigned(session, task_id, "cpu")
    with db.transaction() as session:
        lifecycle.claim(session, task_id, worker="w@test", device="cpu")
    with db.transaction() as session:
        lifecycle.complete(session, task_id, attempt=1, result={
            "text": f"{tag} transcript", "language": "en", "duration": 1.0,
            "segments": [{"id": 0, "start": 0.0, "end": 1.0, "text": f"{tag} transcript"}]})
    collection_id, media_id = f"{tag}-col", f"{tag}-talk"
    created = client.post("/collections", headers=headers, json={
        "collection_id": collection_id, "description": f"{tag} description"})
    assert created.status_code == 201, created.get_json()
    passages = [{"start": 0.0, "end": 1.0, "text": f"{tag} segment"}] if tag == "alice" else []
    with db.transaction() as session:
        collections_store.save_media(
            session, owner=owner, collection_id=collection_id, media_id=media_id,
            replace=False, passages=passages, vectors=np.eye(len(passages), 384),
            filename=f"{tag}.wav", url=f"http://127.0.0.1:9/{tag}.wav")
    hook = client.post("/webhooks", headers=headers, json={
        "url": f"http://127.0.0.1:9/{tag}-hook", "description": f"{tag} hook"})
    assert hook.status_code == 201, hook.get_json()
    webhook_id = hook.get_json()["id"]
    callback_secret = client.get("/webhooks/callback-secret", headers=headers).get_json()
    now = utcnow()
    deliveries = {}
    with db.transaction() as session:
        for kind, hook_id, url in (("delivery", uuid.UUID(webhook_id), None),
                                   ("callback_delivery", None, f"http://127.0.0.1:9/{tag}-cb")):
            delivery_id = uuid.uuid4()
            session.add(WebhookDelivery(
                id=delivery_id, message_id=f"msg_{tag}_{kind}", webhook_id=hook_id, url=url,
                owner=owner, event="task.completed", task_id=task_id, task_attempt=1,
                status="failed", attempts=1, retry_from=1, due_at=None, created_at=now,
                updated_at=now, finished_at=now, last_error=f"{tag} error"))
            session.flush()
            session.add(WebhookAttempt(delivery_id=delivery_id, webhook_id=hook_id, owner=owner,
                                       attempt=1, status_code=500, duration_ms=3,
                                       error=f"{tag} attempt error", outcome="failed",
                                       created_at=now))
            deliveries[kind] = str(delivery_id)
    ids = {"task": str(task_id), "collection": collection_id, "media": media_id,
           "webhook": webhook_id, **deliveries}
    markers = [tag, *ids.values(), hook.get_json()["secret"], callback_secret["secret"]]
    return {"ids": ids, "markers": markers, "headers": headers}


@pytest.fixture()
def world(client, db, api_key, other_key, admin_key):
    alice = make_resources(client, db, {"x-api-key": api_key}, "alice", "alice")
    bob = make_resources(client, db, {"x-api-key": other_key}, "bob", "bob")
    root = make_resources(client, db, {"x-api-key": admin_key}, "root", "root")
    return {"alice": alice, "intruders": {"bob": bob, "root": root}}


def snapshot(client, app, owner: dict) -> dict:
    """Everything the owner can read about its resources (to prove nothing changed)."""
    state = {}
    for rule in resource_rules(app):
        if "GET" in rule.methods:
            response = client.get(url_for(rule, owner["ids"]), headers=owner["headers"])
            assert response.status_code == 200, (rule.rule, response.get_data(as_text=True))
            state[rule.rule] = response.get_data(as_text=True)
    return state


def secrets_of(db, owner: str) -> list[tuple]:
    with db.session() as session:
        return [(w.secret, w.previous_secret, w.url, w.enabled) for w in
                session.scalars(select(Webhook).where(Webhook.owner == owner))]


# --- tests ---------------------------------------------------------------------------


def test_every_path_parameter_is_classified(app):
    unknown = []
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        for param in params_of(rule):
            if param in RESOURCE_PARAMS:
                continue
            if param in ASSET_PARAMS and getattr(view, "_public", False):
                continue
            if param in CATALOG_PARAMS and methods_of(rule) == ["GET"]:
                continue
            unknown.append(f"{rule.rule} ({rule.endpoint}): <{param}>")
    assert not unknown, ("classify these path parameters in RESOURCE_PARAMS (owned "
                         "resources), ASSET_PARAMS (public files) or CATALOG_PARAMS "
                         f"(read-only, the same for every owner): {unknown}")
    kinds = {kind_of(rule, p) for rule in resource_rules(app) for p in params_of(rule)}
    assert kinds == {"task", "collection", "media", "webhook", "delivery",
                     "callback_delivery"}
    assert len(resource_rules(app)) >= 15


def test_other_owners_get_404_on_every_resource_route(app, client, db, world):
    alice = world["alice"]
    before, secrets_before = snapshot(client, app, alice), secrets_of(db, "alice")
    checked, own = [], []
    for name, intruder in world["intruders"].items():
        for rule in resource_rules(app):
            kinds = [kind_of(rule, p) for p in params_of(rule)]
            for method in methods_of(rule):
                # Every mix of alice's and the intruder's own ids, with at least one of
                # alice's: the intruder's collection with alice's media id included.
                for picks in itertools.product((True, False), repeat=len(kinds)):
                    if not any(picks):
                        continue
                    ids = dict(intruder["ids"])
                    ids.update({k: alice["ids"][k] for k, pick in zip(kinds, picks,
                                                                      strict=True) if pick})
                    url = url_for(rule, ids)
                    response = call(client, method, url, intruder["headers"], rule.endpoint)
                    text = response.get_data(as_text=True)
                    assert response.status_code == 404, (name, method, url, text)
                    assert response.get_json()["error"] == "not_found", text
                    leaked = [m for m in alice["markers"] if m in text]
                    assert not leaked, (name, method, url, text)
                    checked.append((name, method, rule.rule))
                if method != "DELETE":  # the intruder's own ids work (the URL is right)
                    url = url_for(rule, intruder["ids"])
                    response = call(client, method, url, intruder["headers"], rule.endpoint)
                    assert response.status_code not in (403, 404) and \
                        response.status_code < 500, (name, method, url, response.get_json())
                    own.append((name, method, rule.rule))
    assert snapshot(client, app, alice) == before  # nothing of alice's changed
    assert secrets_of(db, "alice") == secrets_before
    # Finally the intruders' DELETEs of their own resources work (children first).
    deletes = sorted((r for r in resource_rules(app) if "DELETE" in r.methods),
                     key=lambda r: -len(params_of(r)))
    for name, intruder in world["intruders"].items():
        for rule in deletes:
            url = url_for(rule, intruder["ids"])
            response = client.delete(url, headers=intruder["headers"])
            assert response.status_code == 200, (name, url, response.get_json())
    assert snapshot(client, app, alice) == before
    routes = {(m, r) for _, m, r in checked}
    assert len(routes) >= 17 and {(m, r) for _, m, r in own} == {
        (m, r) for m, r in routes if m != "DELETE"}


def test_catalog_routes_answer_every_owner_alike(app, client, world):
    """``/v1/models/<model>`` names a platform model: every owner reads the same."""
    rules = [rule for rule in app.url_map.iter_rules()
             if any(p in CATALOG_PARAMS for p in params_of(rule))]
    assert {rule.rule for rule in rules} == {"/v1/models/<model>"}
    owners = [world["alice"], *world["intruders"].values()]
    for path in ("/v1/models/tiny.en", "/v1/models/nope"):
        answers = {(r.status_code, r.get_data(as_text=True)) for r in
                   (client.get(path, headers=owner["headers"]) for owner in owners)}
        assert len(answers) == 1, answers
        assert not any(m in next(iter(answers))[1] for m in world["alice"]["markers"])


def test_ids_in_request_bodies_are_owner_scoped_too(client, world):
    """``POST /index`` names its collection in the body: another owner's is unknown."""
    alice = world["alice"]
    for intruder in world["intruders"].values():
        for media_id in (alice["ids"]["media"], "new-media"):
            response = client.post("/index?defer=true", headers=intruder["headers"], json={
                "media": {"base64": "AAAA"}, "collection": alice["ids"]["collection"],
                "media_id": media_id})
            assert response.status_code == 404, response.get_json()
            assert response.get_json()["error"] == "not_found"
        assert client.get("/tasks/count", headers=intruder["headers"]).get_json()["total"] == 1


def test_search_over_all_collections_shows_only_the_callers_own(client, world):
    """``POST /search`` searches the caller's collections only; naming another owner's
    collection is a 404 that names nothing of theirs."""
    alice = world["alice"]
    body = {"query": "alice segment", "mode": "keyword"}
    mine = client.post("/search", headers=alice["headers"], json=body).get_json()["results"]
    assert [h["text"] for h in mine] == ["alice segment"]
    for intruder in world["intruders"].values():
        response = client.post("/search", headers=intruder["headers"], json=body)
        assert response.status_code == 200 and response.get_json() == {"results": []}
        named = client.post("/search", headers=intruder["headers"], json={
            **body, "collections": [alice["ids"]["collection"]]})
        assert named.status_code == 404 and named.get_json()["error"] == "not_found"
        own = client.post("/search", headers=intruder["headers"], json={
            **body, "collections": [intruder["ids"]["collection"]]})
        assert own.status_code == 200 and own.get_json() == {"results": []}


def test_listings_and_counts_show_only_the_callers_own(app, client, world):
    alice = world["alice"]
    listings = [rule for rule in app.url_map.iter_rules()
                if "GET" in rule.methods and not params_of(rule)
                and not getattr(app.view_functions[rule.endpoint], "_public", False)
                and not admin_only(app.view_functions[rule.endpoint])]
    paths = {rule.rule for rule in listings}
    assert {"/tasks", "/tasks/count", "/collections", "/webhooks",
            "/webhooks/callbacks/deliveries", "/webhooks/callback-secret",
            "/v1/models"} <= paths
    queries = ["", "?status=completed", "?per_page=1000", "?page=1&per_page=1"]
    for name, intruder in world["intruders"].items():
        for rule in listings:
            for query in queries if rule.rule in ("/tasks",) else [""]:
                response = client.get(rule.rule + query, headers=intruder["headers"])
                assert response.status_code == 200, (name, rule.rule, response.get_json())
                text = response.get_data(as_text=True)
                leaked = [m for m in alice["markers"] if m in text]
                assert not leaked, (name, rule.rule + query, leaked)
        own = f"/collections/{intruder['ids']['collection']}/media"
        assert alice["ids"]["media"] not in client.get(own, headers=intruder["headers"]) \
            .get_data(as_text=True)
        counts = client.get("/tasks/count", headers=intruder["headers"]).get_json()
        assert counts["total"] == 1 and counts["completed"] == 1, (name, counts)
        tasks = client.get("/tasks", headers=intruder["headers"]).get_json()["tasks"]
        assert [t["id"] for t in tasks] == [intruder["ids"]["task"]]
    mine = client.get("/tasks/count", headers=alice["headers"]).get_json()
    assert mine["total"] == 1


def test_admin_only_routes_refuse_ordinary_keys(app, client, api_key, admin_key):
    admin_routes = [rule for rule in app.url_map.iter_rules()
                    if admin_only(app.view_functions[rule.endpoint])]
    assert {rule.rule for rule in admin_routes} >= {"/workers", "/metrics"}
    spec = client.get("/openapi.json").get_json()["paths"]
    for rule in admin_routes:
        for method in methods_of(rule):
            assert "403" in spec[rule.rule][method.lower()]["responses"], rule.rule
            ordinary = client.open(rule.rule, method=method, headers={"x-api-key": api_key})
            assert ordinary.status_code == 403, (rule.rule, ordinary.get_data(as_text=True))
            assert ordinary.get_json()["error"] == "forbidden"
            bearer = client.open(rule.rule, method=method,
                                 headers={"Authorization": f"Bearer {api_key}"})
            assert bearer.status_code == 403
            assert client.open(rule.rule, method=method).status_code == 401
            assert client.open(rule.rule, method=method,
                               headers={"x-api-key": "hk_" + "x" * 43}).status_code == 401
            admin = client.open(rule.rule, method=method, headers={"x-api-key": admin_key})
            assert admin.status_code == 200, (rule.rule, admin.get_data(as_text=True))
    # and nothing else answers 403 to an ordinary key: those are the only admin routes
    others = {(r, m.lower()) for r, ops in spec.items() for m, op in ops.items()
              if "403" in op["responses"]}
    assert others == {(r.rule, m.lower()) for r in admin_routes for m in methods_of(r)}
