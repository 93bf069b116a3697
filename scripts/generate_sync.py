#!/usr/bin/env python
"""Generate the synchronous client from the asynchronous one (as httpcore does).

    python scripts/generate_sync.py          # rewrite client/hark_client/_sync/
    python scripts/generate_sync.py --check  # exit 1 if _sync/ is not what _async/ generates

``async``/``await`` are dropped and the names below renamed; a line ending with
``# unasync: remove`` exists only in the async code.
"""

from __future__ import annotations

import sys
from pathlib import Path

import tokenize_rt
import unasync

ROOT = Path(__file__).resolve().parent.parent / "client" / "hark_client"
SOURCE, TARGET = ROOT / "_async", ROOT / "_sync"
REPLACEMENTS = {
    "AsyncClient": "Client",
    "AsyncTasks": "Tasks",
    "AsyncCollections": "Collections",
    "AsyncWebhooks": "Webhooks",
    "_AsyncResource": "_Resource",
    "aclose": "close",
    "sleep_async": "sleep_sync",
    "notify_async": "notify_sync",
    "aiter_bytes": "iter_bytes",
}
REMOVE_MARK = "# unasync: remove"
HEADER = ("# Generated from hark_client/_async/{name} by scripts/generate_sync.py: do not edit.\n"
          "# Change the async code, then run `python scripts/generate_sync.py`.\n")


def generate(source: str, name: str) -> str:
    """The synchronous version of one async module's text."""
    kept = "".join(line for line in source.splitlines(keepends=True)
                   if not line.rstrip().endswith(REMOVE_MARK))
    rule = unasync.Rule("/_async/", "/_sync/", additional_replacements=REPLACEMENTS)
    tokens = rule._unasync_tokens(tokenize_rt.src_to_tokens(kept))
    return HEADER.format(name=name) + tokenize_rt.tokens_to_src(tokens)


def expected() -> dict[Path, str]:
    """Every generated file and the text it must have."""
    return {TARGET / path.name: generate(path.read_text(), path.name)
            for path in sorted(SOURCE.glob("*.py"))}


def stale() -> list[Path]:
    """Generated files missing or different from what the async code generates."""
    return [path for path, text in expected().items()
            if not path.exists() or path.read_text() != text]


def main(argv: list[str]) -> int:
    if "--check" in argv:
        out_of_date = stale()
        for path in out_of_date:
            print(f"{path} is stale: run python scripts/generate_sync.py", file=sys.stderr)
        return 1 if out_of_date else 0
    TARGET.mkdir(exist_ok=True)
    for path, text in expected().items():
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
