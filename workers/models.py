"""Warming models in a worker process."""

from __future__ import annotations

import logging
import time

from workers.embedding import is_embedding_model

log = logging.getLogger(__name__)


def preload_models(names: list[str], device: str) -> dict[str, float]:
    """Load each named model on ``device`` now (Whisper names, or ``minilm`` for the
    embedding model); returns load seconds per model."""
    timings: dict[str, float] = {}
    for name in names:
        started = time.perf_counter()
        if is_embedding_model(name):  # "minilm": the /index passage embedder
            from workers.embedding import get_embedder

            get_embedder(device)
        else:
            from workers.asr.transcribe import get_model

            get_model(name.strip(), device)
        timings[name] = time.perf_counter() - started
        log.info("model %s loaded on %s in %.2fs", name, device, timings[name])
    return timings
