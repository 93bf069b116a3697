"""Whisper prompts: folding hotwords into the initial prompt, and its token budget.

openai-whisper has no hotwords option. As faster-whisper does, the hotwords are put in
front of the prompt text that Whisper conditions on (after ``<|startofprev|>``), so the
decoder sees the names and spellings as "previous text" and favours them. The whole
prompt must fit Whisper's budget: half the 448-token text context, one position of which
is ``<|startofprev|>``, leaves :data:`PROMPT_TOKEN_LIMIT` tokens (openai-whisper would
silently drop the oldest ones).

Counting here needs no torch: the vocabularies are read from openai-whisper's asset files
with tiktoken, and the larger of the English-only and multilingual counts is used, so a
prompt accepted by the API fits every model (the worker checks again with its model's own
tokenizer).
"""

from __future__ import annotations

import base64
import functools
import importlib.util
from pathlib import Path
from typing import Any

PROMPT_TOKEN_LIMIT = 223  # 448 // 2 - 1: Whisper's 224 prompt positions less <|startofprev|>
PAT = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def fold_prompt(prompt: str | None, hotwords: list[str] | None) -> str | None:
    """The text Whisper is prompted with: ``"hot, words prompt"`` (None when empty)."""
    parts = []
    words = [w.strip() for w in hotwords or () if w and w.strip()]
    if words:
        parts.append(", ".join(words))
    if prompt and prompt.strip():
        parts.append(prompt.strip())
    return " ".join(parts) or None


@functools.cache
def _encodings() -> tuple[Any, ...]:
    try:
        import tiktoken
    except ImportError:
        return ()
    spec = importlib.util.find_spec("whisper")
    if spec is None or spec.origin is None:
        return ()
    found = []
    for name in ("gpt2", "multilingual"):
        path = Path(spec.origin).parent / "assets" / f"{name}.tiktoken"
        if not path.exists():
            continue
        with path.open() as fh:
            ranks = {base64.b64decode(t): int(r) for t, r in (ln.split() for ln in fh if ln)}
        found.append(tiktoken.Encoding(name=name, pat_str=PAT, mergeable_ranks=ranks,
                                       special_tokens={}))
    return tuple(found)


def count_prompt_tokens(text: str) -> int | None:
    """Tokens Whisper spends on prompt ``text`` (the most of its vocabularies), or None
    when openai-whisper's vocabulary files are not installed here."""
    encodings = _encodings()
    if not encodings:
        return None
    return max(len(enc.encode_ordinary(" " + text.strip())) for enc in encodings)
