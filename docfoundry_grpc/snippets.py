"""Query-biased snippets: the window of a chunk where the query's terms appear first."""

from __future__ import annotations

import re
from functools import lru_cache

from .text import analyze

_WORD = re.compile(r"[^\W_]+")
SNIPPET_CHARS = 240


@lru_cache(maxsize=65536)
def _word_terms(word: str) -> tuple[str, ...]:
    """Index terms of one word, cached: a hit with none of the query's terms is scanned to
    its end, and analysing each word afresh cost ~0.5 ms per such hit."""
    return tuple(analyze(word))


def snippet(text: str, terms: frozenset[str], *, width: int = SNIPPET_CHARS) -> str:
    """About `width` characters of `text`, starting shortly before the first query term."""
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    start = 0
    for match in _WORD.finditer(flat):
        if not terms.isdisjoint(_word_terms(match.group())):
            start = max(0, match.start() - width // 4)
            break
    if start:
        space = flat.find(" ", start)
        start = space + 1 if 0 <= space < match.start() else start
    end = min(len(flat), start + width)
    if end < len(flat):
        space = flat.rfind(" ", start, end)
        end = space if space > start else end
    prefix = "…" if start else ""
    suffix = "…" if end < len(flat) else ""
    return f"{prefix}{flat[start:end]}{suffix}"
