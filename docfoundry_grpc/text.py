"""Text analysis shared by every backend, so that stemming and stop words match exactly.

Both adapters index and query the output of `analyze`: SQLite's FTS5 sees space-separated
stems, PostgreSQL stores them as postings. Any text a person can type is valid input.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

import Stemmer

_WORD = re.compile(r"[^\W_]+")
# The same words in lower-cased ASCII text, where [^\W_] is [a-z0-9]: a narrower class
# is a quarter faster to scan, and most documentation is ASCII.
_ASCII_WORD = re.compile(r"[a-z0-9]+")
_NON_ASCII_RUN = re.compile(r"([^\x00-\x7f]+)")
_STEMMER = Stemmer.Stemmer("english")
_MAX_TOKEN_CHARS = 64

# Lucene's English stop words, with a few question words that carry no topic.
STOP_WORDS = frozenset(
    """a an and are as at be but by for if in into is it no not of on or such that the their
    then there these they this to was will with what which who whom how why when where do does
    did""".split()
)


def _fold(text: str) -> str:
    """Lower-cases and strips diacritics, so 'Café' and 'cafe' meet."""
    if text.isascii():  # nothing to decompose: a quarter of the cost of the general case
        return text.lower()
    # Mostly ASCII text with a few other characters (Greek letters, symbols) is folded a
    # run at a time: lower-cased ASCII runs as they are, the other runs in full. The same
    # text as folding it whole, since ASCII letters decompose to themselves and combining
    # marks are never reordered across them; on the bench's mixed chunks, 13 µs a chunk
    # against 58 for the whole text's per-character scan.
    parts = _NON_ASCII_RUN.split(text)  # ASCII runs at even places, the others between
    parts[0::2] = [part.lower() for part in parts[0::2]]
    parts[1::2] = [_fold_all(part) for part in parts[1::2]]
    return "".join(parts)


def _fold_all(text: str) -> str:
    # Decomposed before folding too: compatibility letters such as 𝐇 or ℌ only become
    # letters with a case ('H') when decomposed.
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", text).casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


# Word → its index term ('' for a stop word), filled as words come. Analysis then looks
# each word up in C (map over dict.get) instead of a Python call per word; cleared when
# full, so a corpus's vocabulary cannot grow it without bound.
_TERMS: dict[str, str] = {}
_TERMS_MAX = 1 << 17


def _term(word: str) -> str:
    if len(_TERMS) >= _TERMS_MAX:
        _TERMS.clear()
    term = "" if word in STOP_WORDS else str(_STEMMER.stemWord(word))[:_MAX_TOKEN_CHARS]
    _TERMS[word] = term
    return term


def words(text: str) -> list[str]:
    """Folded words of `text`, stop words included (used for snippets)."""
    if text.isascii():
        return _ASCII_WORD.findall(text.lower())
    return _WORD.findall(_fold(text))


def analyze(text: str) -> list[str]:
    """Index terms of `text` in order: folded, stop words removed, Snowball-stemmed."""
    found = words(text)
    terms = list(map(_TERMS.get, found))
    if None in terms:  # a word not seen yet
        terms = [_term(w) if t is None else t for w, t in zip(found, terms, strict=True)]
    return list(filter(None, terms))


def query_terms(text: str) -> list[str]:
    """Distinct index terms of a query, in first-seen order; empty for stop-word-only text."""
    return list(dict.fromkeys(analyze(text)))


def chunk_tokens(title: str, heading: str, text: str) -> tuple[str, ...]:
    """Index terms of a chunk: its document's title and its heading count as its text."""
    return tuple(analyze(f"{title}\n{heading}\n{text}"))


def query_key(terms: Sequence[str]) -> str:
    """The form under which clicks are grouped: 'Install guides' and 'install guide' meet."""
    return " ".join(sorted(terms))
