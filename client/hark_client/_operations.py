"""Every API operation as a :class:`Call`: path, query, body, and how to parse the answer."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

import httpx

from ._base import IDEMPOTENCY_HEADER, Call, Upload, read_json, read_text
from ._types import NOT_GIVEN, FileInput, NotGiven, UploadCallback, body_of
from .models import (
    SEARCH_MODES,
    CallbackSecret,
    Collection,
    Delivery,
    Health,
    Media,
    Page,
    SearchHit,
    Task,
    TaskCounts,
    Webhook,
    _Model,
)
from .models_platform import Account, ModelCatalog, TaskEvent, Worker

MAX_SERVER_WAIT = 300.0
"""The longest wait a server holds a request for by default (``MAX_SYNC_TIMEOUT``)."""

TRANSCRIPT_FORMATS = ("txt", "srt", "vtt", "json")


def _id(value: Any) -> str:
    """A path segment: ids are quoted so that ``/`` or ``..`` cannot change the route."""
    text = str(value)
    if not text:
        raise ValueError("an id must not be empty")
    return quote(text, safe="")


def _one(model: type[_Model]) -> Callable[[httpx.Response], Any]:
    return lambda response: model.from_dict(read_json(response))


def _many(model: type[_Model], key: str) -> Callable[[httpx.Response], Page[Any]]:
    def parse(response: httpx.Response) -> Page[Any]:
        body = read_json(response) or {}
        items = body.get(key) if isinstance(body, dict) else body
        items = items if isinstance(items, list) else []
        cursor = body.get("next_cursor") if isinstance(body, dict) else None
        raw = body if isinstance(body, dict) else {key: items}
        return Page([model.from_dict(i) for i in items], next_cursor=cursor, raw=raw)

    return parse


def _submitted(endpoint: str) -> Callable[[httpx.Response], Task]:
    """A submission's answer: the finished task (200) or ``{task_id, status}`` (202)."""

    def parse(response: httpx.Response) -> Task:
        task = Task.from_dict(read_json(response))
        if task.endpoint is None:
            task.endpoint = endpoint
        return task

    return parse


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _submit_params(defer: bool, wait_timeout: float | None) -> dict[str, Any]:
    if defer:
        return {"defer": True}
    return {"defer": False, "timeout": wait_timeout}


def idempotency_headers(key: str | None) -> dict[str, str]:
    """One ``Idempotency-Key`` per submission call, sent again on each of its retries."""
    return {IDEMPOTENCY_HEADER: key or f"hark-{uuid.uuid4()}"}


# -- service ---------------------------------------------------------------------------------

def health() -> Call[Health]:
    return Call("GET", "/health", _one(Health), ok_statuses=frozenset({503}))


def diagnostics_sleep(seconds: float, fail: bool, priority: int | None, device: str | None,
                      queue: str | None, defer: bool, wait_timeout: float | None,
                      idempotency_key: str | None = None) -> Call[Task]:
    body = _drop_none({"seconds": seconds, "fail": fail, "priority": priority,
                       "device": device, "queue": queue})
    return Call("POST", "/diagnostics/sleep", _submitted("/diagnostics/sleep"),
                params=_submit_params(defer, wait_timeout), json=body,
                min_read_timeout=None if defer else (wait_timeout or 30.0),
                headers=idempotency_headers(idempotency_key))


def server_wait(wait: bool, deadline_left: float | None) -> tuple[bool, float | None]:
    """``(defer, timeout)`` for a submission: waits go to the server, up to its maximum."""
    if not wait:
        return True, None
    left = MAX_SERVER_WAIT if deadline_left is None else min(deadline_left, MAX_SERVER_WAIT)
    return False, round(left, 3)


def submit_media(endpoint: str, file: FileInput | None, url: str | None, filename: str | None,
                 options: dict[str, Any], defer: bool = True,
                 wait_timeout: float | None = None, idempotency_key: str | None = None,
                 on_upload: UploadCallback | None = None) -> Call[Task]:
    """``/analyze`` or ``/index``: a file as multipart, or a URL as JSON.

    ``defer=False`` asks the server to hold the request until the task finishes (up to
    ``wait_timeout`` seconds); it answers 202 when it does not finish in time.
    """
    if (file is None) == (url is None):
        raise ValueError("pass exactly one of file= or url=")
    params = _submit_params(defer, wait_timeout)
    read_timeout = None if defer else (wait_timeout or 30.0)
    headers = idempotency_headers(idempotency_key)
    if url is not None:
        media = _drop_none({"url": url, "filename": filename})
        body = {"media": media, **_drop_none(options)}
        return Call("POST", endpoint, _submitted(endpoint), params=params, json=body,
                    min_read_timeout=read_timeout, headers=headers)
    return Call("POST", endpoint, _submitted(endpoint), params=params, form=options,
                upload=Upload(file, filename, on_upload),  # type: ignore[arg-type]
                min_read_timeout=read_timeout, headers=headers)


SPEECH_OPTIONS = ("vad", "vad_threshold", "vad_min_speech_ms", "vad_min_silence_ms",
                  "vad_speech_pad_ms", "prompt", "hotwords", "diarize", "num_speakers",
                  "min_speakers", "max_speakers")
"""Voice activity detection, prompt and hotwords, diarization: what both submissions take."""


def analyze_options(model: str | None = None, language: str | None = None,
                    task: str | None = None, word_timestamps: bool | None = None,
                    priority: int | None = None, device: str | None = None,
                    queue: str | None = None, webhook: str | None = None,
                    webhook_events: Sequence[str] | None = None,
                    **speech: Any) -> dict[str, Any]:
    """The /analyze fields; ``speech`` holds the :data:`SPEECH_OPTIONS` (None: not sent)."""
    if task is not None and task not in ("transcribe", "translate"):
        raise ValueError("task must be 'transcribe' or 'translate'")
    unknown = set(speech) - set(SPEECH_OPTIONS)
    if unknown:
        raise TypeError(f"unknown options: {', '.join(sorted(unknown))}")
    hotwords = speech.get("hotwords")
    if isinstance(hotwords, str):
        raise ValueError("hotwords is a list of names and terms, not one string")
    if speech.get("num_speakers") is not None and (
            speech.get("min_speakers") is not None or speech.get("max_speakers") is not None):
        raise ValueError("give num_speakers or min_speakers/max_speakers, not both")
    return {"model": model, "language": language, "task": task,
            "word_timestamps": word_timestamps, "priority": priority, "device": device,
            "queue": queue, "webhook": webhook,
            "webhook_events": list(webhook_events) if webhook_events is not None else None,
            **{name: speech.get(name) for name in SPEECH_OPTIONS},
            "hotwords": list(hotwords) if hotwords is not None else None}


def index_options(collection: str, media_id: str | None, reindex_if_exists: bool | None,
                  **analyze: Any) -> dict[str, Any]:
    """The /index fields, then every /analyze option (``analyze_options``'s arguments)."""
    if not collection:
        raise ValueError("collection is required")
    return {"collection": collection, "media_id": media_id,
            "reindex_if_exists": reindex_if_exists, **analyze_options(**analyze)}


# -- tasks -----------------------------------------------------------------------------------

def count_tasks() -> Call[TaskCounts]:
    return Call("GET", "/tasks/count", _one(TaskCounts))


def list_tasks(page: int | None, per_page: int, status: str | None,
               cursor: str | None) -> Call[Page[Task]]:
    params = {"status": status, "per_page": per_page}
    params.update({"cursor": cursor} if cursor else {"page": page})
    return Call("GET", "/tasks", _many(Task, "tasks"), params=params)


def get_task(task_id: str) -> Call[Task]:
    return Call("GET", f"/tasks/{_id(task_id)}", _one(Task))


def delete_task(task_id: str) -> Call[Task]:
    return Call("DELETE", f"/tasks/{_id(task_id)}", _one(Task))


def stream_task(task_id: str, headers: dict[str, str]) -> Call[httpx.Response]:
    """``GET /tasks/<id>/stream`` (Server-Sent Events; sent with ``stream=True``)."""
    return Call("GET", f"/tasks/{_id(task_id)}/stream", lambda response: response,
                headers=headers)


def task_events(task_id: str) -> Call[Page[TaskEvent]]:
    return Call("GET", f"/tasks/{_id(task_id)}/events", _many(TaskEvent, "events"))


def me() -> Call[Account]:
    return Call("GET", "/me", _one(Account))


def models() -> Call[ModelCatalog]:
    return Call("GET", "/models", _one(ModelCatalog))


def workers() -> Call[Page[Worker]]:
    return Call("GET", "/workers", _many(Worker, "workers"))


def retry_task(task_id: str) -> Call[Task]:
    return Call("POST", f"/tasks/{_id(task_id)}/retry", _one(Task))


def transcript(task_id: str, format: str) -> Call[str]:
    if format not in TRANSCRIPT_FORMATS:
        raise ValueError(f"format must be one of {', '.join(TRANSCRIPT_FORMATS)}")
    return Call("GET", f"/tasks/{_id(task_id)}/transcript", read_text,
                params={"format": format})


# -- collections -----------------------------------------------------------------------------

def create_collection(collection_id: str, name: str | None,
                      description: str | None) -> Call[Collection]:
    body = _drop_none({"collection_id": collection_id, "name": name,
                       "description": description})
    return Call("POST", "/collections", _one(Collection), json=body)


def list_collections(page: int, per_page: int) -> Call[Page[Collection]]:
    return Call("GET", "/collections", _many(Collection, "collections"),
                params={"page": page, "per_page": per_page})


def get_collection(collection_id: str) -> Call[Collection]:
    return Call("GET", f"/collections/{_id(collection_id)}", _one(Collection))


def update_collection(collection_id: str, name: str | NotGiven = NOT_GIVEN,
                      description: str | None | NotGiven = NOT_GIVEN) -> Call[Collection]:
    """Only the given fields; ``description=None`` clears it."""
    body = body_of({"name": name, "description": description})
    if not body:
        raise ValueError("give name and/or description")
    return Call("PATCH", f"/collections/{_id(collection_id)}", _one(Collection), json=body)


def delete_collection(collection_id: str) -> Call[Collection]:
    return Call("DELETE", f"/collections/{_id(collection_id)}", _one(Collection))


def list_media(collection_id: str, page: int, per_page: int) -> Call[Page[Media]]:
    return Call("GET", f"/collections/{_id(collection_id)}/media", _many(Media, "media"),
                params={"page": page, "per_page": per_page})


def get_media(collection_id: str, media_id: str) -> Call[Media]:
    return Call("GET", f"/collections/{_id(collection_id)}/media/{_id(media_id)}", _one(Media))


def delete_media(collection_id: str, media_id: str) -> Call[Media]:
    return Call("DELETE", f"/collections/{_id(collection_id)}/media/{_id(media_id)}",
                _one(Media))


def _search_body(query: str, top_k: int, mode: str | None) -> dict[str, Any]:
    if mode is not None and mode not in SEARCH_MODES:
        raise ValueError(f"mode must be one of {', '.join(SEARCH_MODES)}, not {mode!r}")
    return _drop_none({"query": query, "top_k": top_k, "mode": mode})


def search(collection_id: str, query: str, top_k: int,
           mode: str | None = None) -> Call[Page[SearchHit]]:
    """``POST /collections/<id>/search``; ``mode`` None leaves the server's (hybrid)."""
    return Call("POST", f"/collections/{_id(collection_id)}/search",
                _many(SearchHit, "results"), json=_search_body(query, top_k, mode))


def search_all(query: str, top_k: int, mode: str | None,
               collections: Sequence[str] | None) -> Call[Page[SearchHit]]:
    """``POST /search``: all the owner's collections, or those in ``collections``."""
    body = _search_body(query, top_k, mode)
    if collections is not None:
        if isinstance(collections, str):
            raise TypeError("collections must be a list of collection ids, not a string")
        body["collections"] = list(collections)
    return Call("POST", "/search", _many(SearchHit, "results"), json=body)


# -- webhooks --------------------------------------------------------------------------------

def create_webhook(url: str, events: Sequence[str] | None,
                   description: str | None) -> Call[Webhook]:
    body = _drop_none({"url": url, "events": list(events) if events is not None else None,
                       "description": description})
    return Call("POST", "/webhooks", _one(Webhook), json=body)


def list_webhooks() -> Call[Page[Webhook]]:
    return Call("GET", "/webhooks", _many(Webhook, "webhooks"))


def get_webhook(webhook_id: str) -> Call[Webhook]:
    return Call("GET", f"/webhooks/{_id(webhook_id)}", _one(Webhook))


def update_webhook(webhook_id: str, url: str | NotGiven = NOT_GIVEN,
                   events: Sequence[str] | None | NotGiven = NOT_GIVEN,
                   description: str | None | NotGiven = NOT_GIVEN,
                   enabled: bool | NotGiven = NOT_GIVEN) -> Call[Webhook]:
    """Only the given fields; ``events=None`` subscribes to every event, ``description=None``
    clears it."""
    listed = list(events) if isinstance(events, list | tuple) else events
    body = body_of({"url": url, "events": listed, "description": description,
                    "enabled": enabled})
    if not body:
        raise ValueError("give url, events, description and/or enabled")
    return Call("PUT", f"/webhooks/{_id(webhook_id)}", _one(Webhook), json=body)


def delete_webhook(webhook_id: str) -> Call[Webhook]:
    return Call("DELETE", f"/webhooks/{_id(webhook_id)}", _one(Webhook))


def _grace(grace_seconds: int | None) -> dict[str, Any] | None:
    return None if grace_seconds is None else {"grace_seconds": grace_seconds}


def rotate_webhook_secret(webhook_id: str, grace_seconds: int | None) -> Call[Webhook]:
    return Call("POST", f"/webhooks/{_id(webhook_id)}/rotate-secret", _one(Webhook),
                json=_grace(grace_seconds))


def _deliveries_path(webhook_id: str | None) -> str:
    return "/webhooks/callbacks" if webhook_id is None else f"/webhooks/{_id(webhook_id)}"


def list_deliveries(webhook_id: str | None, page: int, per_page: int,
                    cursor: str | None) -> Call[Page[Delivery]]:
    """A webhook's delivery log (None: the one-off callbacks'), newest first."""
    params: dict[str, Any] = {"per_page": per_page}
    params.update({"cursor": cursor} if cursor else {"page": page})
    return Call("GET", _deliveries_path(webhook_id) + "/deliveries",
                _many(Delivery, "deliveries"), params=params)


def redeliver(webhook_id: str | None, delivery_id: str) -> Call[Delivery]:
    path = f"{_deliveries_path(webhook_id)}/deliveries/{_id(delivery_id)}/redeliver"
    return Call("POST", path, _one(Delivery))


def callback_secret() -> Call[CallbackSecret]:
    return Call("GET", "/webhooks/callback-secret", _one(CallbackSecret))


def rotate_callback_secret(grace_seconds: int | None) -> Call[CallbackSecret]:
    return Call("POST", "/webhooks/callback-secret/rotate", _one(CallbackSecret),
                json=_grace(grace_seconds))
