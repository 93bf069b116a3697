"""``Idempotency-Key`` on submissions: a repeated request is answered with the first's task.

The request's fingerprint (its endpoint, form or JSON fields, and a SHA-256 of an
uploaded file) is taken before anything is stored, so a replay stores no second upload
and makes no second row. The same key with a different request is a 409; a request
arriving while the first with its key is still in flight waits for that task.

A request without a file claims its key in its task's INSERT (one statement, as an
unkeyed submission costs); one with a file claims it first, so that a replay reads no
upload. A request refused before its statement ran (a 400, a 503) or by the active-task
cap still answers as a replay when its key is held.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
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


def idempotent(endpoint: Any, handle: Callable[[idempotency.Keyed | None], Any]) -> Any:
    """Run ``handle(keyed)`` for a new request (``keyed`` None without a key: see
    :class:`core.idempotency.Keyed`), or answer a repeated one with its first request's
    task (``endpoint.replay``)."""
    key = _key()
    if key is None:
        return handle(None)
    owner = current_principal().owner
    uploaded = request.mimetype == "multipart/form-data" and "file" in request.files
    digest = request_fingerprint(endpoint.path)
    deadline = time.monotonic() + IN_FLIGHT_WAIT
    found: idempotency.Claim | None = None
    while True:
        if found is None:  # nobody holds the key, as far as we know: make the task
            keyed = idempotency.Keyed(owner, key, endpoint.path, digest)
            if uploaded:  # claimed before the upload is read: a replay reads none
                found = idempotency.claim(db, owner=owner, key=key, endpoint=endpoint.path,
                                          digest=digest)
                keyed = dataclasses.replace(keyed, task_id=found.task_id, claimed=True)
            if found is None or found.new:
                made, outcome = _make(handle, keyed)
                if made:
                    return outcome
                found = outcome
                if found is None:  # released since: try again
                    continue
        if not found.matches:
            raise APIError(409, "idempotency_key_reused",
                           f"{HEADER} {key!r} was used in the last 24 h for a different "
                           f"request to {found.endpoint} (task {found.task_id}); use a new "
                           "key for a new request", {HEADER: ["reused with other fields"]})
        if read_task(db, found.task_id, owner=owner) is not None:
            return endpoint.replay(found.task_id)
        if found.age > IN_FLIGHT_WAIT:  # not in flight: its task was made, then deleted
            raise APIError(404, "not_found", f"the task {HEADER} {key!r} made was deleted")
        if time.monotonic() >= deadline:
            raise APIError(409, "idempotency_key_in_use",
                           f"a request with {HEADER} {key!r} is still in progress; "
                           "retry it later")
        time.sleep(_POLL)  # the first request is still storing its media
        found = _held(keyed)


def _held(keyed: idempotency.Keyed) -> idempotency.Claim | None:
    return idempotency.held(db, owner=keyed.owner, key=keyed.key, digest=keyed.digest)


def _make(handle: Callable[[idempotency.Keyed], Any],
          keyed: idempotency.Keyed) -> tuple[bool, Any]:
    """``(True, answer)`` when ``handle`` made the task; else ``(False, the claim that
    holds the key, or None if none does now)``. A failure after claiming frees the key."""
    try:
        return True, handle(keyed)
    except idempotency.KeyHeld:
        return False, _held(keyed)
    except Exception:
        if idempotency.release(db, owner=keyed.owner, key=keyed.key, task_id=keyed.task_id):
            raise  # it failed after claiming: its key is free again
        found = _held(keyed)  # refused before claiming: a replay still answers as one
        if found is None:
            raise
        return False, found
    except BaseException:
        idempotency.release(db, owner=keyed.owner, key=keyed.key, task_id=keyed.task_id)
        raise
