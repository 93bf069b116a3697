"""Layers: ``app`` -> ``core`` <- ``workers``. The API imports no worker code and ``core``
imports neither, checked on the source (every import statement, at any depth); an API
process serves uploads and model validation without torch, numpy or whisper, taking the
models it accepts from what online workers report."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import redis

from tests.support import fresh_database, platform_env, start_embed_worker

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {"app": ("workers",), "core": ("app", "workers")}
# (importing module, imported module) pairs still allowed: none.
EXCEPTIONS: set[tuple[str, str]] = set()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports: ``import``/``from`` statements anywhere in the file
    (functions and ``TYPE_CHECKING`` blocks included, relative ones resolved), and
    ``importlib.import_module``/``__import__`` calls with a literal name."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        elif (isinstance(node, ast.Call) and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and ((isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                   or (isinstance(node.func, ast.Name) and node.func.id == "__import__"))):
            found.add(node.args[0].value)
    return found


def _violations() -> tuple[list[str], set[tuple[str, str]]]:
    bad, used = [], set()
    for layer, forbidden in FORBIDDEN.items():
        for path in sorted((ROOT / layer).rglob("*.py")):
            module = _module_name(path)
            for name in sorted(_imports(path)):
                if name.split(".")[0] not in forbidden:
                    continue
                allowed = {(m, target) for m, target in EXCEPTIONS if m == module
                           and (name == target or name.startswith(target + "."))}
                if allowed:
                    used.update(allowed)
                else:
                    bad.append(f"{path.relative_to(ROOT)}: imports {name}")
    return bad, used


def test_import_walker_sees_nested_relative_and_dynamic_imports(tmp_path, monkeypatch):
    pkg = tmp_path / "app" / "api"
    pkg.mkdir(parents=True)
    (pkg / "x.py").write_text(
        "def f():\n    if True:\n        from workers.asr import registry\n"
        "from . import y\nfrom ..core import z\n"
        "import importlib\nimportlib.import_module('workers.tasks')\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert {"workers.asr.registry", "app.api.y", "app.core.z", "workers.tasks"} <= _imports(
        pkg / "x.py")


def test_api_imports_no_worker_code_and_core_imports_neither():
    bad, used = _violations()
    assert bad == [], "layer violations:\n" + "\n".join(bad)
    assert used == EXCEPTIONS, f"exceptions no longer needed: {EXCEPTIONS - used}"


_API_PROCESS = r"""
import io, json, sys, wave
from app import create_app
from core.keys import create_key
from core.models import WorkerPresence, utcnow
from datetime import timedelta

app = create_app()
db = app.extensions["hark"]["db"]
with db.transaction() as session:
    _, key = create_key(session, name="layers", owner="layers", is_admin=False)
client, auth = app.test_client(), {"x-api-key": key}
wav = io.BytesIO()
with wave.open(wav, "wb") as w:
    w.setnchannels(1); w.setsampwidth(2); w.setframerate(16000)
    w.writeframes(b"\0\0" * 16000)
out = {}

def analyze(model):
    wav.seek(0)
    r = client.post("/analyze?defer=true", headers=auth,
                    data={"file": (io.BytesIO(wav.getvalue()), "s.wav"), "model": model})
    return [r.status_code, r.get_json()["message"] if r.status_code >= 400 else None]

def presence(pid, available, age):
    with db.transaction() as session:
        session.add(WorkerPresence(
            id=f"w:{pid}", node="w", host="h", pid=pid, role="model", device="cpu",
            queues=["cpu"], models=[], available=available, stats={},
            last_seen=utcnow() - timedelta(seconds=age)))

out["none_online"] = client.get("/models", headers=auth).get_json()
out["accepted"] = analyze("base")
out["unknown"] = analyze("huge-v9")
presence(1, ["large-v3"], 0)
presence(2, ["small", "large-v3"], 0)
presence(3, ["tiny.en"], 3600)  # offline: not counted
out["online"] = client.get("/models", headers=auth).get_json()
out["not_online"] = analyze("tiny.en")
out["online_ok"] = analyze("small")
out["modules"] = sorted(m for m in ("torch", "numpy", "whisper", "sentence_transformers")
                        if m in sys.modules)
out["workers"] = sorted(m for m in sys.modules if m == "workers" or m.startswith("workers."))
print(json.dumps(out))
"""


@pytest.fixture()
def api_env(settings_env):
    """A fresh database (no worker ever reports there) and a broker namespace of its own
    (no worker consumes what the API publishes)."""
    from app.commands import upgrade_database

    prefix = f"hark-layers-{uuid.uuid4().hex[:8]}:"
    with fresh_database("hark_layers") as url:
        upgrade_database(url)
        yield platform_env(settings_env, DATABASE_URL=url, BROKER_KEY_PREFIX=prefix,
                           MODELS="tiny.en,base", WHISPER_MODEL="tiny.en")
    client = redis.Redis.from_url(settings_env["BROKER_URL"])
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        client.delete(key)


def test_api_process_loads_no_model_code_and_accepts_what_workers_report(api_env):
    proc = subprocess.run([sys.executable, "-c", _API_PROCESS], env=api_env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # No worker online: the configured list, and submissions are accepted (they wait).
    assert out["none_online"] == {"models": ["base", "tiny.en"], "default": "tiny.en"}
    assert out["accepted"] == [202, None]
    assert out["unknown"][0] == 400 and "available: base, tiny.en" in out["unknown"][1]
    # Online workers: the union of what they can run; an offline row does not count.
    assert out["online"]["models"] == ["large-v3", "small"]
    assert out["not_online"][0] == 400
    assert "'tiny.en'" in out["not_online"][1] and "large-v3, small" in out["not_online"][1]
    assert out["online_ok"] == [202, None]
    assert out["modules"] == [] and out["workers"] == []


_SEARCHING_API = r"""
import json, sys
from app import create_app
from core import collections_store as store
from core.keys import create_key

app = create_app()
db = app.extensions["hark"]["db"]
with db.transaction() as session:
    _, key = create_key(session, name="layers", owner="layers", is_admin=False)
client, auth = app.test_client(), {"x-api-key": key}
assert client.post("/collections", headers=auth, json={"collection_id": "c"}).status_code == 201
texts = ["The train leaves at nine.", "Boil the pasta.", "Sunny and warm today."]
vectors = [[1.0 if j == i else 0.0 for j in range(384)] for i in range(3)]
with db.transaction() as session:
    store.save_media(session, owner="layers", collection_id="c", media_id="m", replace=False,
                     passages=[{"start": i, "end": i + 1, "text": t} for i, t in enumerate(texts)],
                     vectors=vectors, language="en")
statuses = []
for i in range(30):
    for mode in ("semantic", "hybrid", "keyword"):
        r = client.post("/search" if i % 2 else "/collections/c/search", headers=auth,
                        json={"query": f"pasta number {i}", "mode": mode, "top_k": 2})
        statuses.append(r.status_code)
rss = next(int(line.split()[1]) for line in open("/proc/self/status")
           if line.startswith("VmRSS:")) // 1024
print(json.dumps({"statuses": sorted(set(statuses)), "rss_mb": rss,
                  "modules": sorted(m for m in ("torch", "numpy", "transformers")
                                    if m in sys.modules),
                  "workers": sorted(m for m in sys.modules if m.startswith("workers"))}))
"""


def test_the_api_searches_without_torch_or_numpy(api_env, log_dir):
    """Query vectors come from an embed worker: after 90 searches (every mode, both
    routes) the API process has loaded neither torch nor numpy nor any worker module."""
    embed = start_embed_worker(api_env, log_dir, name="layers-embed")
    try:
        proc = subprocess.run([sys.executable, "-c", _SEARCHING_API],
                              env={**api_env, "SEARCH_EMBED_TIMEOUT": "60"}, cwd=ROOT,
                              capture_output=True, text=True, timeout=240)
    finally:
        embed.stop()
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["statuses"] == [200]
    assert out["modules"] == [] and out["workers"] == []
    assert out["rss_mb"] < 150, out


def test_model_workers_report_what_they_can_run(monkeypatch):
    from app.commands import upgrade_database
    from core.db import Database
    from core.models import WorkerPresence
    from workers.asr.registry import available_models
    from workers.presence import Presence

    with fresh_database("hark_layers") as url:
        upgrade_database(url)
        db = Database().configure(url)
        try:
            for role, expected in (("model", available_models()), ("events", [])):
                monkeypatch.setenv("HARK_WORKER_ROLE", role)
                monkeypatch.setenv("HARK_WORKER_NAME", f"layers-{role}")
                presence = Presence(db, 60.0)
                presence.beat()
                with db.session() as session:
                    assert session.get(WorkerPresence, presence.id).available == expected
            assert {"tiny.en", "base"} <= set(available_models())
        finally:
            db.dispose()
