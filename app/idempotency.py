"""``Idempotency-Key`` on submissions: a repeated request is answered with the first's task.

The request's fingerprint (its endpoint, form or JSON fields, and a SHA-256 of an
uploaded file) is taken before anything is stored, so a replay stores no second upload
and makes no second row. The same key with a different request is a 409; a request
arriving while the first with its key is still in flight waits for that task.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable
from typing import Any

from flask import request

from app.auth import current_principal
from app.errors import APIError
from app.extensions import db
from core import idempotency
from core.task_reads import read_task

HEADER = "Idempotency-Key"
IN_FLIGHT_WAIT = 60.0
"""How long a request waits for the task of an in-flight request with the same key."""
_POLL = 0.05


def request_fingerprint(endpoint: str) -> str:
    """The hash that tells two requests apart (query options such as ``defer`` excluded)."""
    digest = None
    if request.mimetype == "multipart/form-data":
        fields: Any = {name: request.form.getlist(name) for name in sorted(request.form)}
        upload = request.files.get("file")
        if upload is not None:
            sha = hashlib.sha256()
            while chunk := upload.stream.read(1024 * 1024):
                sha.update(chunk)
            upload.stream.seek(0)
            digest = f"{upload.filename}:{sha.hexdigest()}"
    else:
        fields = request.get_json(silent=True)
        if fields is None:  # not JSON: the raw body (the handler will refuse it)
            fields = hashlib.sha256(request.get_data()).hexdigest()
    return idempotency.fingerprint(endpoint, fields, digest)


def _key() -> str | None:
    key = request.headers.get(HEADER)
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > idempotency.MAX_KEY_LENGTH or not key.isprintable():
        raise APIError(400, "invalid_idempotency_key",
                       f"{HEADER} must be 1-{idempotency.MAX_KEY_LENGTH} printable characters",
                       {HEADER: ["invalid"]})
    return key


def idempotent(endpoint: Any, handle: Callable[[uuid.UUID | None], Any]) -> Any:
    """Run ``handle(task_id)`` for a new request (``task_id`` None without a key), or
    answer a repeated one with its first request's task (``endpoint.replay``)."""
    key = _key()
    if key is None:
        return handle(None)
    owner = current_principal().owner
    digest = request_fingerprint(endpoint.path)
    deadline = time.monotonic() + IN_FLIGHT_WAIT
    while True:
        found = idempotency.claim(db, owner=owner, key=key, endpoint=endpoint.path,
                                  digest=digest)
        if not found.matches:
            raise APIError(409, "idempotency_key_reused",
                           f"{HEADER} {key!r} was used in the last 24 h for a different "
                           f"request to {found.endpoint} (task {found.task_id}); use a new "
                           "key for a new request", {HEADER: ["reused with other fields"]})
        if found.new:
            try:
                return handle(found.task_id)
            except BaseException:
                idempotency.release(db, owner=owner, key=key, task_id=found.task_id)
                raise
        if read_task(db, found.task_id, owner=owner) is not None:
            return endpoint.replay(found.task_id)
        if found.age > IN_FLIGHT_WAIT:  # not in flight: its task was made, then deleted
            raise APIError(404, "not_found", f"the task {HEADER} {key!r} made was deleted")
        if time.monotonic() >= deadline:
            raise APIError(409, "idempotency_key_in_use",
                           f"a request with {HEADER} {key!r} is still in progress; "
                           "retry it later")
        time.sleep(_POLL)  # the first request is still storing its media
