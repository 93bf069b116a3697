"""The defer option: always / never / optional, as Aana's Endpoint declares it."""

import pytest
from flask import Flask

from app.endpoints import DeferOption, Endpoint
from app.errors import APIError


@pytest.mark.parametrize("option,requested,expected", [
    (DeferOption.OPTIONAL, None, False), (DeferOption.OPTIONAL, True, True),
    (DeferOption.OPTIONAL, False, False), (DeferOption.ALWAYS, None, True),
    (DeferOption.ALWAYS, True, True), (DeferOption.NEVER, None, False),
    (DeferOption.NEVER, False, False),
])
def test_resolution(option, requested, expected):
    endpoint = Endpoint("x", "/x", "x", defer_option=option)
    assert endpoint._resolve_defer(requested) is expected


@pytest.mark.parametrize("option,requested", [(DeferOption.ALWAYS, False),
                                              (DeferOption.NEVER, True)])
def test_conflicting_requests_are_400(option, requested):
    endpoint = Endpoint("x", "/x", "x", defer_option=option)
    with Flask(__name__).app_context(), pytest.raises(APIError) as info:
        endpoint._resolve_defer(requested)
    assert info.value.status == 400


def test_always_deferred_endpoint_through_http(app, auth, worker, monkeypatch):
    from app.api import diagnostics

    monkeypatch.setattr(diagnostics, "sleep_endpoint",
                        Endpoint("s", "/diagnostics/sleep", "s", DeferOption.ALWAYS))
    client = app.test_client()
    response = client.post("/diagnostics/sleep", json={"seconds": 0}, headers=auth)
    assert response.status_code == 202 and "task_id" in response.get_json()
    refused = client.post("/diagnostics/sleep?defer=false", json={"seconds": 0}, headers=auth)
    assert refused.status_code == 400 and refused.get_json()["error"] == "defer_required"


def test_diagnostics_is_off_by_default(settings, api_key):
    from dataclasses import replace

    from app import create_app

    client = create_app(replace(settings, diagnostics=False)).test_client()
    response = client.post("/diagnostics/sleep", json={"seconds": 0},
                           headers={"x-api-key": api_key})
    assert response.status_code == 404
