"""Query-biased snippets: the window of a chunk where the query's terms appear first."""

from __future__ import annotations

import re
from functools import lru_cache

from .text import analyze

_WORD = re.compile(r"[^\W_]+")
# A word of non-ASCII text with its combining marks: in decomposed (NFD) text 'résumé' is
# r, e, U+0301, s, …, and the index, which folds the marks away, sees one word 'resume'.
_MARKED_WORD = re.compile(
    r"[^\W_](?:[^\W_]|[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f])*"
)
SNIPPET_CHARS = 240


@lru_cache(maxsize=65536)
def _word_terms(word: str) -> tuple[str, ...]:
    """Index terms of one word, cached: analysing each word afresh cost ~0.5 ms per hit."""
    return tuple(analyze(word))


@lru_cache(maxsize=1024)
def _term_starts(terms: frozenset[str]) -> re.Pattern[str]:
    """Where, in lower-cased ASCII text, a word that may analyse to one of `terms` starts.

    Snowball's English stemmer only strips or rewrites a word's ending, and a rewrite
    ("biliti" -> "ble", "y" -> "i") changes at most the stem's last two letters, so every
    ASCII word stemmed to `t` begins with `t` minus its last two letters. One regex scan in
    C then finds the few candidate words, where a loop over every word of a hit without
    the query's terms (most semantic hits) cost ~50 µs. An ASCII word boundary scans in
    half the time of a look-behind for "not after a letter or digit"; it differs from that
    only after "_", which the caller blanks.
    """
    prefixes = sorted({t[: max(1, len(t) - 2)] for t in terms}, key=len, reverse=True)
    return re.compile(r"\b(?:" + "|".join(map(re.escape, prefixes)) + ")", re.ASCII)


def _first_term(flat: str, terms: frozenset[str]) -> re.Match[str] | None:
    """The first word of `flat` with one of `terms` among its index terms."""
    if not terms:
        return None
    if flat.isascii():  # lower-casing keeps every position, and is all ASCII folding does
        scanned = flat.lower().replace("_", " ")  # "_" parts words, as in `text.analyze`
        for start in _term_starts(terms).finditer(scanned):
            word = _WORD.match(flat, start.start())
            if word and not terms.isdisjoint(_word_terms(word.group())):
                return word
        return None
    for word in _MARKED_WORD.finditer(flat):
        if not terms.isdisjoint(_word_terms(word.group())):
            return word
    return None


def snippet(text: str, terms: frozenset[str], *, width: int = SNIPPET_CHARS) -> str:
    """About `width` characters of `text`, starting shortly before the first query term."""
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    start = 0
    match = _first_term(flat, terms)
    if match:
        start = max(0, match.start() - width // 4)
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
