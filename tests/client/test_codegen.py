"""The sync client is generated from the async one, and the two offer the same methods."""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path

import pytest

from hark_client import AsyncClient, Client
from hark_client._async import resources as async_resources
from hark_client._sync import resources as sync_resources

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "generate_sync.py"
PAIRS = [(AsyncClient, Client), (async_resources.AsyncTasks, sync_resources.Tasks),
         (async_resources.AsyncCollections, sync_resources.Collections),
         (async_resources.AsyncWebhooks, sync_resources.Webhooks)]
ASYNC_ONLY = {"aclose"}  # the sync client's close() is its counterpart


def _generator():
    spec = importlib.util.spec_from_file_location("generate_sync", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_sync_code_is_up_to_date():
    generator = _generator()
    assert generator.stale() == [], "run: python scripts/generate_sync.py"
    assert generator.main(["--check"]) == 0


def test_the_check_catches_a_hand_edit(tmp_path, monkeypatch):
    generator = _generator()
    copy = tmp_path / "_sync"
    copy.mkdir()
    for path in generator.TARGET.glob("*.py"):
        (copy / path.name).write_text(path.read_text())
    monkeypatch.setattr(generator, "TARGET", copy)
    assert generator.stale() == []
    edited = copy / "client.py"
    edited.write_text(edited.read_text().replace("def health(", "def healthy("))
    assert generator.stale() == [edited]
    (copy / "resources.py").unlink()
    assert generator.main(["--check"]) == 1
    assert generator.main([]) == 0 and generator.stale() == []


def _public(cls) -> dict[str, object]:
    return {name: member for name, member in vars(cls).items()
            if not name.startswith("_") and callable(member) and name not in ASYNC_ONLY}


def _normalise(text: str) -> str:
    for old, new in (("AsyncIterator", "Iterator"), ("AsyncClient", "Client"),
                     ("AsyncTasks", "Tasks"), ("AsyncCollections", "Collections"),
                     ("AsyncWebhooks", "Webhooks")):
        text = text.replace(old, new)
    return text


@pytest.mark.parametrize(("async_cls", "sync_cls"), PAIRS, ids=lambda c: c.__name__)
def test_every_public_method_has_the_same_signature(async_cls, sync_cls):
    async_methods, sync_methods = _public(async_cls), _public(sync_cls)
    assert sorted(async_methods) == sorted(sync_methods)
    for name, method in async_methods.items():
        twin = sync_methods[name]
        assert _normalise(str(inspect.signature(method))) == str(inspect.signature(twin)), name
        assert inspect.getdoc(method) == inspect.getdoc(twin), name
        if name not in ("with_options", "close"):
            kind = inspect.iscoroutinefunction(method) or inspect.isasyncgenfunction(method)
            assert kind, f"{async_cls.__name__}.{name} is not async"
            assert not inspect.iscoroutinefunction(twin), name


def test_every_method_takes_retries_and_request_timeout():
    for _, sync_cls in PAIRS:
        for name, method in _public(sync_cls).items():
            if name in ("with_options", "close", "request"):
                continue
            params = inspect.signature(method).parameters
            assert {"retries", "request_timeout"} <= set(params), f"{sync_cls.__name__}.{name}"
