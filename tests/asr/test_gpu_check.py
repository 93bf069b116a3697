"""The GPU check's CPU dry run (so the script cannot rot), its transport weights, and its
clear failure where no CUDA device is present."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from tests.asr.conftest import ROOT


def _run(*args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    environ.pop("MODELS_REGISTRY", None)
    environ.pop("OUT", None)
    return subprocess.run([sys.executable, "-m", "bench.gpu_check", *args], cwd=ROOT,
                          env=environ, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_dry_run_on_packed_weights(models_dir, tmp_path):
    corpus = pytest.importorskip("bench.corpus")
    try:
        corpus.assets_dir()
    except corpus.CorpusMissing:
        pytest.skip("moonshine-voice (the speech corpus) not installed")
    from bench.gpu_weights import pack, unpack
    from workers.asr.registry import ensure_checkpoint

    checkpoint = ensure_checkpoint("tiny.en", models_dir)
    packed = pack(checkpoint, tmp_path / "weights" / "tiny.en.pack.pt")
    assert packed.stat().st_size < 0.55 * checkpoint.stat().st_size  # int8 rows travel
    original = torch.load(checkpoint, weights_only=True)["model_state_dict"]
    rounded = torch.load(unpack(packed, tmp_path / "rt.pt"), weights_only=True)
    for name, tensor in original.items():  # each row within half its int8 step (+ fp16)
        rows = tensor.float().reshape(len(tensor), -1) if tensor.dim() else tensor.float()
        back = rounded["model_state_dict"][name].float().reshape(rows.shape)
        bound = rows.abs().amax(-1, keepdim=True) * (0.5 / 127 + 2**-10) if tensor.dim() else 0
        assert ((back - rows).abs() <= bound).all(), name

    out = tmp_path / "out"
    done = _run("--dry-run", "--weights", str(tmp_path / "weights"), "--out", str(out),
                "--work", str(tmp_path / "work"), MODELS_DIR=str(models_dir))
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((out / "gpu_check.json").read_text())
    assert report["dry_run"] and report["models"] == ["tiny.en"]
    assert report["weights"].startswith("carried int8-rounded")
    (row,) = report["rows"]
    assert row["device"] == "cpu" and row["short"]["files"] == 2
    assert row["short"]["wer"] <= 0.1  # "Ever tried. Ever failed. ..." read back
    assert row["many"]["by_batch"]["2"]["audio_s_per_s"] > 0
    assert "many files, audio s/s" in done.stdout
    assert sorted(p.name for p in out.iterdir()) == ["gpu_check.json"]  # all $OUT brings back
    synthetic = report["synthetic"]  # (a): every path said exactly its spelled sentence
    assert synthetic["tokens_per_window"] == 23 and synthetic["compression_ratio"] < 2.4
    for arm in ("hark_batch_1", "openai_transcribe", "hark_batch_2"):
        assert synthetic[arm]["tokens_per_s"] > 0, arm
    platform = synthetic["platform"]  # (b, c): two clips at once through a real worker
    assert platform["clips"] == 2 and platform["audio_s_per_s"] > 0
    assert platform["worker_device"] == "cpu" and platform["pinned"] is True
    assert platform["worker_models"] == ["synthetic-384x4"]
    assert not list((tmp_path / "work").glob("*.pt"))  # the checkpoint is removed after


def test_without_cuda_it_fails_clearly():
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    done = _run()
    assert done.returncode == 2
    assert "no CUDA device here" in done.stdout and "--dry-run" in done.stdout
