"""``POST /diagnostics/sleep``: a real task that sleeps, for tests and benchmarks.

Registered only with ``DIAGNOSTICS=1``. It travels the same path as a real analysis.
"""

from __future__ import annotations

from flask import Blueprint

from app.bodies import load_json
from app.endpoints import DeferOption, Endpoint
from app.idempotency import idempotent
from app.openapi import doc
from app.schemas import DeferredSchema, FinishedTaskSchema, SleepRequest, SubmitArgs
from core.idempotency import Keyed

bp = Blueprint("diagnostics", __name__, url_prefix="/diagnostics")
sleep_endpoint = Endpoint(
    name="diagnostics_sleep",
    path="/diagnostics/sleep",
    summary="Sleep on a worker, then complete or fail",
    defer_option=DeferOption.OPTIONAL,
)
sleep_request = SleepRequest()


@bp.post("/sleep")
@doc("Sleep on a worker, then complete or fail (DIAGNOSTICS=1)", tag="Diagnostics",
     query=SubmitArgs, body=SleepRequest,
     responses={200: FinishedTaskSchema, 202: DeferredSchema})
def sleep():
    """An ``Idempotency-Key`` header makes a repeat of this request (within 24 h) name
    the first one's task; the same key with another request is a 409."""
    return idempotent(sleep_endpoint, _sleep)


def _sleep(keyed: Keyed | None):
    body = load_json(sleep_request)
    routing = {k: body.pop(k) for k in ("priority", "device", "queue")}
    return sleep_endpoint.submit(body, keyed=keyed, **routing)
