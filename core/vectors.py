"""pgvector values without numpy or the ``pgvector`` package: the ``vector(n)`` column
type, its text literal (``[0.1,-0.2,...]``), and which text-search configuration a
segment's language gets. No Flask, no models.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Any

from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql.base import ischema_names
from sqlalchemy.types import UserDefinedType

DIMENSIONS = 384
LITTLE_ENDIAN_F4 = "<{}f"


def vector_literal(values: Iterable[Any]) -> str:
    """``[v1,v2,...]`` with 9 significant digits: a float32 reads back exactly."""
    items = values.tolist() if hasattr(values, "tolist") else values
    return "[" + ",".join(format(float(v), ".9g") for v in items) + "]"


def parse_vector(literal: str) -> list[float]:
    """The floats of a ``[v1,v2,...]`` literal."""
    body = literal.strip().removeprefix("[").removesuffix("]")
    return [float(v) for v in body.split(",")] if body.strip() else []


def vector_from_bytes(raw: bytes) -> list[float]:
    """Little-endian float32 bytes (how releases before 0011 stored vectors) as floats."""
    if len(raw) % 4:
        raise ValueError("float32 bytes expected")
    return list(struct.unpack(LITTLE_ENDIAN_F4.format(len(raw) // 4), raw))


def as_literal(value: Any) -> str:
    """A vector given as a literal, float32 bytes, a sequence or an array: its literal."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return vector_literal(vector_from_bytes(bytes(value)))
    return vector_literal(value)


class Vector(UserDefinedType):
    """pgvector's ``vector(dimensions)``: bound from any :func:`as_literal` input, read as
    a list of floats."""

    cache_ok = True

    def __init__(self, dimensions: int | None = None) -> None:
        self.dimensions = dimensions

    def get_col_spec(self, **_kw: Any) -> str:
        return f"VECTOR({self.dimensions})" if self.dimensions else "VECTOR"

    def bind_processor(self, dialect):
        return lambda value: None if value is None else as_literal(value)

    def bind_expression(self, bindvalue):
        return sql_cast(bindvalue, self)

    def result_processor(self, dialect, coltype):
        return lambda value: None if value is None else parse_vector(value)

    @property
    def python_type(self) -> type:
        return list

    def __repr__(self) -> str:
        return f"Vector({self.dimensions})"


# Reflection (Alembic's comparisons) knows the type by name.
ischema_names["vector"] = Vector


def text_search_config(language: str | None) -> str:
    """``english`` for English (``en``, ``en-US``, ...), ``simple`` for every other or
    unknown language: ``simple`` lower-cases words without stemming or stop words, which
    is right for any language, while ``english`` also finds ``rains`` for ``rain``."""
    code = (language or "").strip().lower().replace("_", "-")
    return "english" if code == "en" or code.startswith("en-") or code == "english" \
        else "simple"
