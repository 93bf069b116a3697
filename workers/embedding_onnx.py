"""The embedding model on ONNX Runtime: the CPU path of :mod:`workers.embedding`.

On one short query, ONNX Runtime runs MiniLM in about 9 ms on one core where torch's eager
modules take about 17 (``bench/search_bench.py`` prints both), with the same vectors to
1e-5 (tests/test_search.py). The graph is exported once from the torch model
(transformer, mean pooling and normalization in one graph; eager attention, which exports
as plain matmuls) into ``$MODELS_DIR/onnx/`` and reused until deleted; the export needs
the ``onnx`` package, the run only ``onnxruntime`` (both in the ``models`` extra).
``EMBED_ENGINE=torch`` keeps torch on the CPU too; a GPU always runs torch.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

ENGINES = ("onnx", "torch")
EXPORT_VERSION = 1  # part of the file's name: a change to _export makes a new file
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def engine_for(device: str) -> str:
    """``onnx`` for CPU embedders when onnxruntime is installed (``EMBED_ENGINE`` can say
    ``torch``), else ``torch``."""
    wanted = (os.environ.get("EMBED_ENGINE") or "onnx").strip().lower()
    if wanted not in ENGINES:
        raise ValueError(f"EMBED_ENGINE must be one of {', '.join(ENGINES)}, got {wanted!r}")
    if wanted == "torch" or not device.startswith("cpu"):
        return "torch"
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        log.warning("onnxruntime is not installed: embedding on torch (slower on CPU)")
        return "torch"
    return "onnx"


def onnx_path(model_dir: Path) -> Path:
    """Where the graph exported from ``model_dir`` is kept, named by what made it (the
    weights' names, sizes and times, this exporter's version, torch and transformers)."""
    import torch
    import transformers

    from workers.asr.registry import resolve_models_dir

    weights = sorted(p for p in model_dir.iterdir() if p.suffix in (".safetensors", ".bin"))
    digest = hashlib.sha256(f"{model_dir.resolve()}:{EXPORT_VERSION}:{torch.__version__}:"
                            f"{transformers.__version__}".encode())
    for p in weights:
        stat = p.stat()
        digest.update(f"{p.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return resolve_models_dir() / "onnx" / f"embedding-{digest.hexdigest()[:12]}.onnx"


def export(model_dir: Path, out: Path) -> None:
    """Export the model at ``model_dir`` (mean-pooled, normalized) to ``out``, atomically,
    under a lock so that concurrent workers export it once, in a child process."""
    from workers.asr.registry import exclusive

    out.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(out.with_suffix(".lock")):
        if out.exists():
            return
        started = time.perf_counter()
        partial = out.with_suffix(f".{os.getpid()}.partial")
        try:  # in a child process: the export's torch model and tracing leave this one lean
            subprocess.run([sys.executable, "-m", __name__, str(model_dir), str(partial)],
                           check=True, capture_output=True, text=True, timeout=600)
            partial.replace(out)
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(f"ONNX export failed: {exc.stderr.strip()[-2000:]}") from None
        finally:
            partial.unlink(missing_ok=True)
        log.info("embedding model exported to %s in %.1fs", out, time.perf_counter() - started)


def _export(model_dir: Path, out: Path) -> None:
    import warnings

    import torch
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(str(model_dir), local_files_only=True,
                                      attn_implementation="eager").eval()
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            hidden = self.model(input_ids=input_ids, attention_mask=attention_mask,
                                token_type_ids=token_type_ids).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    sample = tokenizer(["an example sentence", "two"], padding=True, return_tensors="pt")
    axes = {name: {0: "batch", 1: "tokens"} for name in INPUTS}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's notes on traced control flow
        torch.onnx.export(Pooled().eval(), tuple(sample[name] for name in INPUTS), str(out),
                          input_names=list(INPUTS), output_names=["embedding"],
                          dynamic_axes={**axes, "embedding": {0: "batch"}},
                          opset_version=17, dynamo=False)


class OnnxEncoder:
    """An ONNX Runtime session of the exported graph: token arrays in, unit vectors out."""

    def __init__(self, model_dir: Path, threads: int) -> None:
        import onnxruntime as ort

        path = onnx_path(model_dir)
        if not path.exists():
            export(model_dir, path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # idle threads sleep instead of spinning: they share the host with Whisper
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.path = path
        self.session = ort.InferenceSession(str(path), options,
                                            providers=["CPUExecutionProvider"])

    def __call__(self, batch: dict[str, Any]) -> np.ndarray:
        feeds = {name: np.asarray(batch[name], dtype=np.int64) for name in INPUTS}
        return self.session.run(None, feeds)[0].astype(np.float32, copy=False)


if __name__ == "__main__":  # the child of export(): python -m workers.embedding_onnx DIR OUT
    _export(Path(sys.argv[1]), Path(sys.argv[2]))
