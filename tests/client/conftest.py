"""Fixtures for the client SDK tests: the real API under gunicorn, with a real worker."""

from __future__ import annotations

import pytest

from hark_client import Client
from tests.support import start_api


@pytest.fixture(scope="session")
def api_url(settings_env, log_dir, worker, embed_worker) -> str:
    """Base URL of an API server (gunicorn) sharing the session's database, worker and
    embed worker."""
    process, base_url = start_api(settings_env, log_dir)
    yield base_url
    process.stop()


@pytest.fixture()
def hark(api_url, api_key):
    """A client with a fresh key (tables, keys included, are emptied before each test)."""
    with Client(api_url, api_key) as client:
        yield client
