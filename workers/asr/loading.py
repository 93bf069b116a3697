"""Loading Whisper models once per process, on either engine (no Flask / Celery here).

``whisper`` (default): openai-whisper on torch, from the checkpoint the registry converts
(optionally int8 on CPU, ``workers.asr.quantize``). ``ct2``: CTranslate2 on the model's own
CT2 files (:class:`~workers.asr.ct2_engine.Ct2Whisper`). The registry picks the engine per
model (:func:`~workers.asr.registry.engine_for`).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import torch
import whisper

from workers.asr.convert import apply_alignment_heads, read_alignment_heads
from workers.asr.registry import (
    DEFAULT_MODEL,
    ct2_compute_type,
    engine_for,
    ensure_checkpoint,
    quantize_mode,
)

Model = Any  # a whisper.Whisper, or a workers.asr.ct2_engine.Ct2Whisper (engine ct2)
_MODELS: dict[tuple[str, str, str], Model] = {}
_MODELS_LOCK = threading.Lock()


def resolve_device(device: str | None) -> str:
    """``"auto"``/None -> ``"cuda"`` when available, else ``"cpu"``."""
    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but CUDA is not available")
    return device


def load_model(name: str, device: str, quantize: str | None = None) -> whisper.Whisper:
    """Load (converting on first use) a registry model, with fp16 weights on CUDA. Sets
    ``hark_name`` and ``hark_load_seconds`` (conversion + load wall time) on it.

    ``quantize``: ``"int8"`` (CPU only) or ``"off"``; None = the registry's choice
    (:func:`~workers.asr.registry.quantize_mode`)."""
    t0 = time.perf_counter()
    device = resolve_device(device)
    mode = quantize_mode(name, device, quantize)
    path = ensure_checkpoint(name)
    model = whisper.load_model(str(path), device="cpu")
    heads = read_alignment_heads(path)
    if heads:
        apply_alignment_heads(model, heads)
    elif name in whisper._ALIGNMENT_HEADS:  # an official checkpoint brought by the operator
        try:
            model.set_alignment_heads(whisper._ALIGNMENT_HEADS[name])
        except (ValueError, RuntimeError):  # dims differ: not really that model; keep default
            pass
    model.eval()
    if device.startswith("cuda"):
        model = half_weights(model).to(device)  # halved before the copy: no fp32 on the GPU
    if mode == "int8":
        from workers.asr.quantize import quantize_int8

        quantize_int8(model)
    model.hark_name = name
    model.hark_load_seconds = time.perf_counter() - t0
    return model


def half_weights(model: whisper.Whisper) -> whisper.Whisper:
    """fp16 weights, for decoding in fp16 on CUDA: openai-whisper keeps fp32 ones and
    casts each to fp16 in every layer call (half the memory, and no casts). Its
    LayerNorms stay fp32: they normalise in fp32 (``x.float()``) and need fp32 weights."""
    model.half()
    for module in model.modules():
        if isinstance(module, torch.nn.LayerNorm):
            module.float()
    return model


def get_model(
    name: str | None = None, device: str = "cpu", quantize: str | None = None,
    engine: str | None = None,
) -> Model:
    """Process-wide cached model keyed by (name, device, weights): :func:`load_model` for
    the ``whisper`` engine, a :class:`~workers.asr.ct2_engine.Ct2Whisper` for ``ct2``
    (``engine``, else the registry's choice, :func:`~workers.asr.registry.engine_for`).
    ``quantize`` given for ``ct2`` on CPU: ``int8`` or ``off`` (float32) weights."""
    name = name or DEFAULT_MODEL
    device = resolve_device(device)
    if engine_for(name, engine) == "ct2":
        kind = device.partition(":")[0]
        compute = ct2_compute_type(name, kind)
        if quantize is not None and kind == "cpu":  # an explicit choice: int8 | off
            compute = "int8" if quantize_mode(name, kind, quantize) == "int8" else "float32"
        key = (name, device, f"ct2-{compute}")
    else:
        key = (name, device, quantize_mode(name, device, quantize))
    with _MODELS_LOCK:
        if key not in _MODELS:
            if key[2].startswith("ct2-"):
                from workers.asr.ct2_engine import Ct2Whisper

                _MODELS[key] = Ct2Whisper(name, device, key[2].removeprefix("ct2-"))
            else:
                _MODELS[key] = load_model(*key)
        return _MODELS[key]


def model_load_times() -> dict[tuple[str, str], float]:
    """Seconds each cached (name, device) model took to load, for metrics."""
    with _MODELS_LOCK:
        return {(n, d): m.hark_load_seconds for (n, d, _), m in _MODELS.items()}


def is_ct2(model: Model) -> bool:
    return getattr(model, "engine", None) == "ct2"
