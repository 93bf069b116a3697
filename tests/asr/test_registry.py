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


def test_engine_and_ct2_weights_per_model(tmp_path, monkeypatch, random_ct2):
    ct2_dir, _, _ = random_ct2
    pt = tmp_path / "mine.pt"
    pt.write_bytes(b"x")
    reg = tmp_path / "registry.json"
    reg.write_text(json.dumps({
        "fast": {"ct2_dir": str(ct2_dir), "engine": "ct2", "compute_type": "float32"},
        "plain": {"ct2_dir": str(ct2_dir)}, "pt-only": {"checkpoint": "mine.pt"},
        "odd": {"ct2_dir": str(ct2_dir), "engine": "onnx"}}))
    monkeypatch.setenv("MODELS_REGISTRY", str(reg))
    monkeypatch.delenv("WHISPER_ENGINE", raising=False)
    monkeypatch.delenv("WHISPER_CT2_COMPUTE_TYPE", raising=False)
    assert registry.engine_for("fast") == "ct2" and registry.engine_for("plain") == "whisper"
    assert registry.engine_for("tiny.en") == "whisper"  # built-ins: openai-whisper by default
    assert registry.engine_for("plain", "ct2") == "ct2"  # an explicit choice wins
    monkeypatch.setenv("WHISPER_ENGINE", "ct2")
    assert registry.engine_for("tiny.en") == "ct2"
    with pytest.raises(ValueError, match="engine must be one of"):
        registry.engine_for("odd")
    assert registry.ct2_compute_type("fast", "cpu") == "float32"
    assert registry.ct2_compute_type("plain", "cpu") == "int8"
    assert registry.ct2_compute_type("plain", "cuda") == "float16"
    monkeypatch.setenv("WHISPER_CT2_COMPUTE_TYPE", "int16")
    assert registry.ct2_compute_type("plain", "cpu") == "int16"
    assert registry.ensure_ct2_dir("fast") == ct2_dir  # one model.bin: used in place
    with pytest.raises(RuntimeError, match="no CTranslate2 files"):
        registry.ensure_ct2_dir("pt-only")


def test_split_ct2_model_is_joined_once(tmp_path):
    parts = registry.resolve_source("base").ct2_files
    out = registry.ensure_ct2_dir("base", tmp_path)
    assert out == tmp_path / "ct2" / "base"
    joined = out / "model.bin"
    assert joined.stat().st_size == sum(p.stat().st_size for p in parts)
    with open(parts[-1], "rb") as part, open(joined, "rb") as whole:
        whole.seek(-4096, os.SEEK_END)
        part.seek(-4096, os.SEEK_END)
        assert whole.read() == part.read()
    assert (out / "config.json").is_file() and (out / "tokenizer.json").is_file()
    mtime = joined.stat().st_mtime_ns
    assert registry.ensure_ct2_dir("base", tmp_path) == out
    assert joined.stat().st_mtime_ns == mtime  # reused, not rewritten
