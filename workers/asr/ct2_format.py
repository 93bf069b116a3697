"""Reader for CTranslate2's ``model.bin`` binary format.

Layout (all integers little-endian; see ``ModelSpec._serialize`` in CTranslate2's
``python/ctranslate2/specs/model_spec.py``)::

    uint32  binary_version               (6 for current releases)
    string  spec_name                    (version >= 2, e.g. "WhisperSpec")
    uint32  spec_revision                (version >= 2)
    uint32  num_variables
    num_variables times:
        string  name                     (e.g. "encoder/layer_0/ffn/linear_0/weight")
        uint8   rank
        uint32  dim[rank]
        version >= 4:  uint8 dtype_id, uint32 num_bytes
        version <  4:  uint8 item_size, uint32 num_items
        bytes   raw data (row-major)
    uint32  num_aliases                  (version >= 3)
    num_aliases times:
        string  alias_name
        string  target_variable_name

A ``string`` is a uint16 length (including the trailing NUL) followed by the UTF-8
bytes and a NUL byte. dtype ids follow ``DataType`` in ``include/ctranslate2/types.h``:
0 float32, 1 int8, 2 int16, 3 int32, 4 float16, 5 bfloat16.

Quantized weights (int8 / int16) come with a companion ``<name>_scale`` variable:
int8 has one float32 scale per output row (``value = q / scale[:, None]``), int16 a
single scalar scale. :func:`load_variables` dequantizes them and drops the scales.

A model directory may ship ``model.bin`` split into byte ranges (``model.bin.part1``,
``model.bin.part2``...): pass the parts in order and they are concatenated.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

DTYPES: dict[int, str] = {
    0: "float32",
    1: "int8",
    2: "int16",
    3: "int32",
    4: "float16",
    5: "bfloat16",
}
_LEGACY_ITEM_SIZE = {4: "float32", 2: "int16", 1: "int8"}
MAX_SUPPORTED_VERSION = 6


class CT2FormatError(ValueError):
    """The bytes are not a CTranslate2 model.bin we can read."""


@dataclass
class CT2Model:
    """Raw content of a model.bin: variables as stored plus alias table."""

    version: int
    spec: str
    revision: int
    variables: dict[str, np.ndarray] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)


class _Cursor:
    def __init__(self, buf: memoryview) -> None:
        self.buf = buf
        self.pos = 0

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.buf):
            raise CT2FormatError(
                f"truncated model.bin: need {n} bytes at offset {self.pos}, "
                f"file has {len(self.buf)}"
            )
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str) -> int:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        length = self.unpack("<H")
        raw = bytes(self.take(length))
        return raw.rstrip(b"\x00").decode("utf-8")


def _as_paths(paths: Path | str | Sequence[Path | str]) -> list[Path]:
    if isinstance(paths, (str, Path)):
        return [Path(paths)]
    return [Path(p) for p in paths]


def read_bytes(paths: Path | str | Sequence[Path | str]) -> bytes:
    """Read a model.bin, concatenating split parts in the given order."""
    parts = _as_paths(paths)
    if not parts:
        raise CT2FormatError("no model.bin file given")
    if len(parts) == 1:
        return parts[0].read_bytes()
    total = sum(p.stat().st_size for p in parts)
    buf = bytearray(total)
    view = memoryview(buf)
    pos = 0
    for p in parts:
        with open(p, "rb") as fh:
            n = fh.readinto(view[pos:])
        pos += n
    return bytes(buf) if pos == total else bytes(buf[:pos])


def _decode_array(raw: memoryview, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    if dtype == "bfloat16":
        bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        return bits.view(np.float32).reshape(shape)
    arr = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<"))
    return arr.reshape(shape)


def parse_model_bin(data: bytes | bytearray | memoryview) -> CT2Model:
    """Parse the bytes of a model.bin. Arrays are read-only views of ``data``."""
    cur = _Cursor(memoryview(data))
    version = cur.unpack("<I")
    if version < 1 or version > MAX_SUPPORTED_VERSION:
        raise CT2FormatError(f"unsupported CTranslate2 binary version {version}")
    spec, revision = "", 1
    if version >= 2:
        spec = cur.string()
        revision = cur.unpack("<I")
    model = CT2Model(version=version, spec=spec, revision=revision)
    for _ in range(cur.unpack("<I")):
        name = cur.string()
        rank = cur.unpack("<B")
        shape = tuple(cur.unpack("<I") for _ in range(rank))
        if version >= 4:
            type_id = cur.unpack("<B")
            if type_id not in DTYPES:
                raise CT2FormatError(f"variable {name!r}: unknown dtype id {type_id}")
            dtype = DTYPES[type_id]
            num_bytes = cur.unpack("<I")
        else:
            item_size = cur.unpack("<B")
            dtype = _LEGACY_ITEM_SIZE.get(item_size, "")
            if not dtype:
                raise CT2FormatError(f"variable {name!r}: unknown item size {item_size}")
            num_bytes = cur.unpack("<I") * item_size
        itemsize = 2 if dtype == "bfloat16" else np.dtype(dtype).itemsize
        expected = int(np.prod(shape, dtype=np.int64)) * itemsize
        if num_bytes != expected:
            raise CT2FormatError(f"variable {name!r}: {num_bytes} bytes for shape {shape} {dtype}")
        model.variables[name] = _decode_array(cur.take(num_bytes), dtype, shape)
    if version >= 3:
        for _ in range(cur.unpack("<I")):
            alias = cur.string()
            model.aliases[alias] = cur.string()
    return model


def read_model_bin(paths: Path | str | Sequence[Path | str]) -> CT2Model:
    """Read and parse a model.bin (or its split parts, in order)."""
    return parse_model_bin(read_bytes(paths))


def _dequantize(value: np.ndarray, scale: np.ndarray) -> np.ndarray:
    v = value.astype(np.float32)
    s = np.asarray(scale, dtype=np.float32)
    if s.ndim == 0 or s.size == 1:
        return v / s.reshape(())
    return v / s.reshape((-1,) + (1,) * (v.ndim - 1))


def resolve(model: CT2Model, dequantize: bool = True) -> dict[str, np.ndarray]:
    """Variables by name with aliases resolved and (optionally) int8/int16 dequantized.

    Dequantized weights become float32; everything else keeps its stored dtype.
    """
    out: dict[str, np.ndarray] = {}
    scales = {n for n in model.variables if n.endswith("_scale")}
    for name, value in model.variables.items():
        if dequantize and name in scales and name[: -len("_scale")] in model.variables:
            continue
        scale = model.variables.get(name + "_scale")
        if dequantize and scale is not None and value.dtype in (np.int8, np.int16):
            value = _dequantize(value, scale)
        out[name] = value
    for alias, target in model.aliases.items():
        seen = {alias}
        while target in model.aliases and target not in seen:  # alias chains
            seen.add(target)
            target = model.aliases[target]
        if target not in out:
            raise CT2FormatError(f"alias {alias!r} points to missing variable {target!r}")
        out[alias] = out[target]
    return out


def load_variables(
    paths: Path | str | Sequence[Path | str], dequantize: bool = True
) -> dict[str, np.ndarray]:
    """Read a model.bin and return ``{name: ndarray}`` with aliases resolved."""
    return resolve(read_model_bin(paths), dequantize=dequantize)
