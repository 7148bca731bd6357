"""Query-biased snippets: the window of a chunk where the query's terms appear first."""

from __future__ import annotations

import re
from functools import lru_cache

from .text import analyze

_WORD = re.compile(r"[^\W_]+")
# A word of non-ASCII text with its combining marks: in decomposed (NFD) text 'résumé' is
# r, e, U+0301, s, …, and the index, which folds the marks away, sees one word 'resume'.
_MARK_CLASS = r"[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]"
_MARK = re.compile(_MARK_CLASS)
_MARKED_WORD = re.compile(rf"[^\W_](?:[^\W_]|{_MARK_CLASS})*")
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
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
    return _first_term_mixed(flat, terms)


def _first_term_mixed(flat: str, terms: frozenset[str]) -> re.Match[str] | None:
    """`_first_term` of text with non-ASCII characters, most of whose words (in English
    documentation, and in SciFact, whose chunks a third of hits come from) are ASCII all
    the same. Its ASCII words are found as in ASCII text, by the prefix scan; the words
    with a non-ASCII letter or mark are each analysed. The earlier of the two firsts wins.
    On SciFact's mixed chunks this takes 0.06 ms a hit, where checking every word took
    0.16 (ASCII text: 0.04)."""
    scanned = flat.lower()
    if len(scanned) != len(flat):  # a letter lower-cased into several: positions shift
        return _first_term_of_each(flat, terms)
    scanned = scanned.replace("_", " ")
    ascii_first = None
    for start in _term_starts(terms).finditer(scanned):
        # The start may be inside a word, after a non-ASCII letter: the whole word counts.
        word = _word_from(flat, start.start())
        if word and not terms.isdisjoint(_word_terms(word.group())):
            ascii_first = word
            break
    end = ascii_first.start() if ascii_first else len(flat)
    checked = 0  # where the last word analysed ends
    for char in _NON_ASCII.finditer(flat, 0, end):
        if char.start() < checked:
            continue
        word = _word_from(flat, char.start())
        if word is None:
            break
        checked = word.end()
        if not terms.isdisjoint(_word_terms(word.group())):
            return word
    return ascii_first


def _word_from(flat: str, position: int) -> re.Match[str] | None:
    """The word holding `position`, or else the next one (after a symbol, or a mark with
    no letter before it), as `_MARKED_WORD` scanning from the start finds them."""
    start = position
    while start and _in_word(flat[start - 1]):
        start -= 1
    return _MARKED_WORD.search(flat, start)


def _first_term_of_each(flat: str, terms: frozenset[str]) -> re.Match[str] | None:
    for word in _MARKED_WORD.finditer(flat):
        if not terms.isdisjoint(_word_terms(word.group())):
            return word
    return None


def _in_word(char: str) -> bool:
    """Whether `char` continues a word: a letter or digit ([^\\W_] is `isalnum`), or one of
    the combining marks `_MARKED_WORD` takes."""
    return char.isalnum() or _MARK.match(char) is not None


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
