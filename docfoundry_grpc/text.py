"""Text analysis shared by every backend, so that stemming and stop words match exactly.

Both adapters index and query the output of `analyze`: SQLite's FTS5 sees space-separated
stems, PostgreSQL stores them as postings. Any text a person can type is valid input.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache

import Stemmer

_WORD = re.compile(r"[^\W_]+")
# The same words in lower-cased ASCII text, where [^\W_] is [a-z0-9]: a narrower class
# is a quarter faster to scan, and most documentation is ASCII.
_ASCII_WORD = re.compile(r"[a-z0-9]+")
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
    # Decomposed before folding too: compatibility letters such as 𝐇 or ℌ only become
    # letters with a case ('H') when decomposed.
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", text).casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


@lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    return str(_STEMMER.stemWord(word))


def words(text: str) -> list[str]:
    """Folded words of `text`, stop words included (used for snippets)."""
    if text.isascii():
        return _ASCII_WORD.findall(text.lower())
    return _WORD.findall(_fold(text))


def analyze(text: str) -> list[str]:
    """Index terms of `text` in order: folded, stop words removed, Snowball-stemmed."""
    return [_stem(w)[:_MAX_TOKEN_CHARS] for w in words(text) if w not in STOP_WORDS]


def query_terms(text: str) -> list[str]:
    """Distinct index terms of a query, in first-seen order; empty for stop-word-only text."""
    return list(dict.fromkeys(analyze(text)))


def chunk_tokens(title: str, heading: str, text: str) -> tuple[str, ...]:
    """Index terms of a chunk: its document's title and its heading count as its text."""
    return tuple(analyze(f"{title}\n{heading}\n{text}"))


def query_key(terms: Sequence[str]) -> str:
    """The form under which clicks are grouped: 'Install guides' and 'install guide' meet."""
    return " ".join(sorted(terms))
