"""Model registry: built-ins, operator JSON, unknown names, convert-once locking."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from workers.asr import registry
from workers.asr.registry import UnknownModelError, available_models, ensure_checkpoint

ROOT = Path(__file__).resolve().parents[2]


def test_builtins_available():
    assert {"tiny.en", "base"} <= set(available_models())
    assert registry.resolve_source("base").ct2_files[0].name == "model.bin.part1"
    assert len(registry.resolve_source("base").ct2_files) == 2


@pytest.mark.parametrize("name", ["nope", "large-v9", "../etc/passwd", ""])
def test_unknown_model_raises(name):
    with pytest.raises(UnknownModelError):
        ensure_checkpoint(name)
    assert issubclass(UnknownModelError, ValueError)


def test_operator_registry_entries(tmp_path, monkeypatch, random_ct2):
    ct2_dir, _, _ = random_ct2
    pt = tmp_path / "mine.pt"
    pt.write_bytes(b"x")
    reg = tmp_path / "registry.json"
    reg.write_text(
        json.dumps({"large-v3": {"checkpoint": "mine.pt"}, "rand": {"ct2_dir": str(ct2_dir)}})
    )
    monkeypatch.setenv("MODELS_REGISTRY", str(reg))
    assert {"large-v3", "rand", "tiny.en"} <= set(available_models())
    assert ensure_checkpoint("large-v3") == pt  # relative paths resolve next to the JSON
    out = ensure_checkpoint("rand", tmp_path / "models")
    assert out == tmp_path / "models" / "rand.pt" and out.is_file()


def test_concurrent_processes_convert_once(tmp_path, random_ct2):
    ct2_dir, _, _ = random_ct2
    reg = tmp_path / "registry.json"
    reg.write_text(json.dumps({"rand": {"ct2_dir": str(ct2_dir)}}))
    log = tmp_path / "conversions.log"
    code = textwrap.dedent(f"""
        import os, time
        import workers.asr.convert as c
        real = c.convert_ct2_to_whisper
        def logged(*a, **k):
            with open({str(log)!r}, "a") as fh:
                fh.write(f"{{os.getpid()}}\\n")
            time.sleep(0.5)
            return real(*a, **k)
        c.convert_ct2_to_whisper = logged
        from workers.asr.registry import ensure_checkpoint
        print(ensure_checkpoint("rand"))
    """)
    env = {
        **os.environ,
        "MODELS_REGISTRY": str(reg),
        "MODELS_DIR": str(tmp_path / "m"),
        "PYTHONPATH": str(ROOT),
    }
    procs = [
        subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert len(set(outs)) == 1 and Path(outs[0]).is_file()
    assert len(log.read_text().split()) == 1
    assert not list((tmp_path / "m").glob("*.tmp"))
