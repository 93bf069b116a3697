"""Real English sentences available offline: the prose of installed packages.

Sources, in order: the long descriptions in every installed distribution's ``METADATA``
(READMEs: written by people, about everything from HTTP to astronomy), then the
docstrings of the standard library's modules. Sentences of 5-50 words that are mostly
letters are kept, deduplicated, in a stable order (so a run is repeatable on one
machine; another machine's packages give other sentences).
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sysconfig
from collections.abc import Iterator
from pathlib import Path

_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_MARKUP = re.compile(r"`+|\*+|_{2,}|\[|\]\([^)]*\)|<[^>]+>|https?://\S+|:\w+:|#+ ")


def _clean(sentence: str) -> str | None:
    text = " ".join(_MARKUP.sub(" ", sentence).split())
    words = text.split()
    if not 5 <= len(words) <= 50 or not text[0].isupper() or text[-1] not in ".!?":
        return None
    letters = sum(c.isalpha() or c == " " for c in text)
    if letters < 0.85 * len(text) or any(c in text for c in "{}=|\\$@"):
        return None
    return text


def _paragraphs_from_metadata() -> Iterator[str]:
    for dist in sorted(importlib.metadata.distributions(),
                       key=lambda d: (d.metadata.get("Name") or "").lower()):
        body = dist.metadata.get_payload() if hasattr(dist.metadata, "get_payload") else ""
        yield from re.split(r"\n\s*\n", str(body or ""))


def _paragraphs_from_stdlib() -> Iterator[str]:
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("**/*.py")):
        if "test" in path.parts or "site-packages" in path.parts:
            continue
        try:
            tree = ast.parse(path.read_text(errors="ignore"))
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef):
                doc = ast.get_docstring(node)
                if doc:
                    yield from re.split(r"\n\s*\n", doc)


def real_sentences(limit: int) -> list[str]:
    """Up to ``limit`` distinct English sentences from installed packages' prose."""
    seen: dict[str, str] = {}
    for source in (_paragraphs_from_metadata, _paragraphs_from_stdlib):
        for paragraph in source():
            for sentence in _SPLIT.split(" ".join(paragraph.split())):
                cleaned = _clean(sentence)
                if cleaned and cleaned.lower() not in seen:
                    seen[cleaned.lower()] = cleaned
                    if len(seen) >= limit:
                        return list(seen.values())
    return list(seen.values())
