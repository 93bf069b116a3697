"""How the CLI shows things: aligned tables, key/value blocks, JSON."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, TextIO

from .models import SearchHit, Task


def to_jsonable(value: Any) -> Any:
    """Models as the JSON the server sent (``.raw``); lists of them as lists."""
    if hasattr(value, "raw") and isinstance(value.raw, dict):
        return value.raw
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


def print_json(value: Any, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    json.dump(to_jsonable(value), out, indent=2, ensure_ascii=False, default=str)
    out.write("\n")


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value) or "-"
    return " ".join(str(value).split())


def print_table(headers: Sequence[str], rows: Iterable[Sequence[Any]],
                out: TextIO | None = None, max_width: int = 60) -> None:
    """Columns aligned to their widest cell (cells cut at ``max_width``)."""
    out = out or sys.stdout
    text_rows = [[_cut(cell(v), max_width) for v in row] for row in rows]
    if not text_rows:
        out.write("(none)\n")
        return
    widths = [max(len(h), *(len(r[i]) for r in text_rows)) for i, h in enumerate(headers)]
    for row in [list(headers), *text_rows]:
        line = "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True))
        out.write(line.rstrip() + "\n")


def print_fields(pairs: Iterable[tuple[str, Any]], out: TextIO | None = None) -> None:
    """``key: value`` lines with the values aligned; dicts and lists as indented JSON."""
    out = out or sys.stdout
    pairs = list(pairs)
    width = max((len(k) for k, _ in pairs), default=0)
    for key, value in pairs:
        if isinstance(value, dict | list) and value:
            text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
            text = text.replace("\n", "\n" + " " * (width + 2))
        else:
            text = cell(value)
        out.write(f"{key + ':':<{width + 1}} {text}\n")


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def task_fields(task: Task) -> list[tuple[str, Any]]:
    pairs: list[tuple[str, Any]] = [
        ("id", task.id), ("endpoint", task.endpoint), ("status", task.status),
        ("progress", f"{task.progress}%" if task.progress is not None else None),
        ("priority", task.priority), ("queue", task.queue), ("device", task.device),
        ("worker", task.worker), ("attempts", task.attempts), ("retries", task.retry_count),
        ("created", task.created_at), ("started", task.started_at),
        ("completed", task.completed_at),
    ]
    if task.error:
        pairs.append(("error", f"{task.error.get('type')}: {task.error.get('message')}"))
    if task.result is not None:
        pairs.append(("result", task.result))
    return pairs


def task_row(task: Task) -> list[Any]:
    progress = f"{task.progress}%" if task.progress is not None else None
    return [task.id, task.status, progress, task.endpoint, task.created_at]


TASK_HEADERS = ("ID", "STATUS", "PROGRESS", "ENDPOINT", "CREATED")


def _rank(rank: int | None, similarity: float | None = None) -> str | None:
    if rank is None:
        return None
    return f"#{rank}" if similarity is None else f"#{rank} ({similarity:.2f})"


def hit_headers(with_collection: bool) -> tuple[str, ...]:
    """Search hits: why each matched (rank by meaning, with its similarity; rank by words)."""
    where = ("COLLECTION",) if with_collection else ()
    return ("SCORE", "MEANING", "WORDS", *where, "MEDIA", "START", "END", "TEXT")


def hit_row(hit: SearchHit, with_collection: bool) -> list[Any]:
    where = [hit.collection_id] if with_collection else []
    return [f"{hit.score:.4f}" if hit.score is not None else None,
            _rank(hit.vector_rank, hit.similarity), _rank(hit.keyword_rank), *where,
            hit.media_id, hit.start, hit.end, hit.text]
