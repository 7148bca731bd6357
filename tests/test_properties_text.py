"""Property tests of query analysis (text.py, engine.query_key) and snippets (snippets.py)."""

from __future__ import annotations

import re
import string
import unicodedata

import Stemmer
from hypothesis import HealthCheck, example, given
from hypothesis import strategies as st

from docfoundry_grpc.snippets import _first_term, _first_term_of_each, snippet
from docfoundry_grpc.text import (
    STOP_WORDS,
    _fold,
    analyze,
    chunk_tokens,
    query_key,
    query_terms,
    words,
)

from .properties import property_settings

PROFILE = property_settings(200, HealthCheck.filter_too_much)

# Any text: every code point, NUL and lone surrogates included.
ANY_CHAR = st.one_of(
    st.characters(exclude_categories=()), st.sampled_from(["\x00", "\ud800", " ", "É", "_"])
)
ANY_TEXT = st.text(ANY_CHAR, max_size=60)


def canonical(c: str) -> bool:
    """No compatibility decomposition (as 'ϒ' -> 'Υ' or '𝐇' -> 'H' have)."""
    return unicodedata.normalize("NFKD", c) == unicodedata.normalize("NFD", c)


# Latin, Greek and Cyrillic letters with their diacritics, digits, punctuation and spaces,
# without compatibility characters (see test_query_terms_are_lower_case_in_any_text).
CASED_TEXT = st.text(
    st.one_of(
        st.characters(max_codepoint=0x4FF, categories=["L", "N", "P", "Zs", "Mn"]).filter(
            canonical
        ),
        st.sampled_from(list(" .,!?-_'\"()")),
    ),
    max_size=60,
)
# Words that Snowball rewrites (stems that are not prefixes of their word), stop words,
# non-ASCII words, and words made of ASCII letters.
TRICKY = """sensibility dying lying skies skis early only gently ugly happily happy
relational organization hopping hoped agreed running studies conditional generously
apologies indices analyses ionization centre 5G IL_6 x_ray rate install installing
guides guide Zürich café naïve the and of what 日本語 текст straße""".split()
WORD = st.one_of(
    st.sampled_from(TRICKY),
    st.text(string.ascii_letters + string.digits, min_size=1, max_size=12),
    st.text(st.characters(max_codepoint=0x4FF, categories=["L"]), min_size=1, max_size=10),
)


# Query analysis -----------------------------------------------------------------------


@PROFILE
@given(text=ANY_TEXT)
@example(text="The Running CAFÉS of Zürich! \x00 \ud800")
@example(text="Pneumono" * 12 + " the_end")
def test_query_terms_are_distinct_nonempty_tokens_of_the_analysis(text: str) -> None:
    terms = query_terms(text)
    assert terms == query_terms(text)  # deterministic
    assert terms == list(dict.fromkeys(analyze(text)))  # distinct, in first-seen order
    for term in terms:
        assert term and len(term) <= 64
        assert not any(c.isspace() for c in term)
        assert "_" not in term  # "_" parts words


@PROFILE
@given(text=st.text(st.characters(max_codepoint=127), max_size=80))
def test_ascii_text_has_the_words_of_the_general_analysis(text: str) -> None:
    """ASCII text takes a narrower, faster pattern; its words must be those of the general
    path (Unicode word characters less '_', after full case folding)."""
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", text).casefold())
    assert words(text) == re.findall(r"[^\W_]+", folded)


# Mostly ASCII text with runs of other characters, combining marks among them.
MIXED_TEXT = st.lists(
    st.one_of(
        st.text(st.characters(max_codepoint=127), max_size=8),
        ANY_TEXT,
        st.sampled_from(["\u0301", "e\u0301\u0323", "ϒ", "𝐇", "ß", "İ", "Σ", "ꭰ"]),
    ),
    max_size=8,
).map("".join)


def fold_whole(text: str) -> str:
    """The folding's definition: case-folded and decomposed whole, marks removed."""
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", text).casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


@PROFILE
@given(text=MIXED_TEXT)
@example(text="Ab\u0301c ΔE 𝐇i STRASSE Straße İx e\u0323\u0301")
def test_folding_a_run_at_a_time_is_folding_the_whole_text(text: str) -> None:
    assert _fold(text) == fold_whole(text)


STEMMER = Stemmer.Stemmer("english")


@PROFILE
@given(text=MIXED_TEXT)
@example(text="The running CAFÉS of Zürich, the skies " + "Pneumono" * 12)
def test_analysis_is_stems_of_the_words_less_stop_words(text: str) -> None:
    """Words looked up in the term table give what stemming each word gives, whichever
    words the table held before (the same text twice: once unseen, once seen)."""
    expected = [STEMMER.stemWord(w)[:64] for w in words(text) if w not in STOP_WORDS]
    assert analyze(text) == expected
    assert analyze(text) == expected


@PROFILE
@given(text=CASED_TEXT)
@example(text="Ǆemal ÉCOLE Straße ΣΟΦΙΑ")
def test_query_terms_are_lower_case_in_cased_alphabets(text: str) -> None:
    for term in query_terms(text):
        assert term == term.lower(), term


@PROFILE
@given(text=ANY_TEXT)
@example(text="𝐇𝐞𝐥𝐥𝐨")
@example(text="ꭰ Ꭰ")
def test_query_terms_are_case_folded_in_any_text(text: str) -> None:
    """Case-folded, the Unicode form for caseless matching; not always lower case:
    Cherokee folds to its capital letters, so 'ꭰ' and 'Ꭰ' both give 'Ꭰ'."""
    for term in query_terms(text):
        assert term == term.casefold(), term


def round_trips(c: str) -> bool:
    return c.upper().lower() == c.lower() and c.lower().upper() == c.upper()


@PROFILE
@given(text=st.text(ANY_CHAR.filter(round_trips), max_size=40))
@example(text="Install GUIDES für Straße İstanbul")
def test_query_terms_ignore_case(text: str) -> None:
    assert query_terms(text.upper()) == query_terms(text.lower())


TOKENS = st.lists(
    st.one_of(WORD, st.text(ANY_CHAR, min_size=1, max_size=8)).map(lambda w: "".join(w.split())),
    max_size=8,
).map(lambda ws: [w for w in ws if w])


@PROFILE
@given(tokens=TOKENS, data=st.data())
def test_word_order_does_not_change_the_terms(tokens: list[str], data: st.DataObject) -> None:
    shuffled = data.draw(st.permutations(tokens))
    assert sorted(analyze(" ".join(tokens))) == sorted(analyze(" ".join(shuffled)))
    assert set(query_terms(" ".join(tokens))) == set(query_terms("\n".join(shuffled)))


@PROFILE
@given(title=ANY_TEXT, heading=ANY_TEXT, text=ANY_TEXT)
def test_a_chunk_is_indexed_under_every_term_of_its_title_heading_and_text(
    title: str, heading: str, text: str
) -> None:
    tokens = chunk_tokens(title, heading, text)
    assert tokens == chunk_tokens(title, heading, text)
    assert tokens == (*analyze(title), *analyze(heading), *analyze(text))
    for part in (title, heading, text):
        assert set(query_terms(part)) <= set(tokens)


def test_query_key_groups_case_and_plural_variants() -> None:
    assert query_key(query_terms("Install guides")) == query_key(query_terms("install guide"))
    assert query_key(query_terms("guides install")) == query_key(query_terms("INSTALL GUIDE"))
    assert query_key(query_terms("install guide")) != query_key(query_terms("install"))


@PROFILE
@given(
    words=st.lists(st.text(string.ascii_letters, min_size=1, max_size=10), max_size=6),
    data=st.data(),
)
def test_query_key_ignores_order_case_and_repetition(words: list[str], data: st.DataObject) -> None:
    key = query_key(query_terms(" ".join(words)))
    shuffled = data.draw(st.permutations(words))
    repeated = shuffled + data.draw(
        st.lists(st.sampled_from(words), max_size=3) if words else st.just([])
    )
    variant = " ".join(w.upper() if i % 2 else w.lower() for i, w in enumerate(repeated))
    assert query_key(query_terms(variant)) == key
    assert key == " ".join(sorted(set(query_terms(" ".join(words)))))


# Snippets -----------------------------------------------------------------------------

MARKERS = ("", "…")


def drawn_from(out: str, flat: str) -> bool:
    """Whether `out` is a piece of `flat`, with an ellipsis where it was cut."""
    for prefix in MARKERS:
        for suffix in MARKERS:
            if not (out.startswith(prefix) and out.endswith(suffix)):
                continue
            if len(out) < len(prefix) + len(suffix):
                continue
            core = out[len(prefix) : len(out) - len(suffix)]
            if not core or core not in flat:
                continue
            if (not prefix and not flat.startswith(core)) or (
                not suffix and not flat.endswith(core)
            ):
                continue
            return True
    return False


@PROFILE
@given(
    text=st.one_of(ANY_TEXT, st.lists(WORD, max_size=80).map(" ".join)),
    terms=st.one_of(
        st.frozensets(st.text(ANY_CHAR, max_size=6), max_size=3),
        st.lists(WORD, max_size=3).map(lambda ws: frozenset(query_terms(" ".join(ws)))),
    ),
    width=st.integers(1, 300),
)
@example(text="word " * 100, terms=frozenset({"", "(", "wor"}), width=240)
def test_snippets_are_bounded_pieces_of_the_text(
    text: str, terms: frozenset[str], width: int
) -> None:
    out = snippet(text, terms, width=width)
    assert out == snippet(text, terms, width=width)
    flat = " ".join(text.split())
    if len(flat) <= width:
        assert out == flat
        return
    assert len(out) <= width + 2  # at most `width` of the text, and an ellipsis at each end
    assert drawn_from(out, flat), (out, flat)


def with_target(before: list[str], target: str, after: list[str]) -> str:
    return " ".join([*before, target, *after])


SNIPPET_TEXT = st.builds(
    with_target,
    st.lists(WORD, min_size=0, max_size=120),
    WORD,
    st.lists(WORD, max_size=30),
)


@PROFILE
@given(text=SNIPPET_TEXT, query=st.lists(WORD, min_size=1, max_size=3).map(" ".join))
@example(text=" ".join(["filler"] * 60 + ["happy"]), query="happy")
@example(text=" ".join(["filler"] * 60 + ["sensibility"]), query="sensibility")
@example(text=" ".join(["filler"] * 60 + ["Zürich"]), query="zurich")
def test_a_snippet_shows_a_query_term_the_text_has(text: str, query: str) -> None:
    terms = frozenset(query_terms(query))
    out = snippet(text, terms)
    if terms & set(analyze(text)):
        assert terms & set(analyze(out)), (query, out)


MIXED_WORD = st.one_of(
    st.sampled_from(
        [
            "cell",
            "cells",
            "naïve",
            "résumé",
            "Zürich",
            "β-cells",
            "μm",
            "±2",
            "İstanbul",
            "ﬁle",
            "Straße",
            "x_y",
            "café_au",
            "über",
            "ε",
            "ÉCLAIR",
        ]
    ),
    WORD,
    st.text(ANY_CHAR, min_size=1, max_size=6),
)


@PROFILE
@given(
    words=st.lists(MIXED_WORD, max_size=40),
    query=st.lists(MIXED_WORD, min_size=1, max_size=3),
    nfd=st.booleans(),
)
@example(words=["éclair", "clair"], query=["clair"], nfd=False)
@example(words=["\u0301abc", "\u0301é", "abc"], query=["abc", "e"], nfd=False)
@example(words=["xé", "clair", "résumé"], query=["résumé", "clair"], nfd=True)
@example(words=["rééclair", "clair"], query=["clair"], nfd=True)  # a term after marks
def test_mixed_text_finds_the_first_term_as_a_word_by_word_scan(
    words: list[str], query: list[str], nfd: bool
) -> None:
    """The fast scan of text with non-ASCII characters finds the same first word with a
    query term as checking every word in turn."""
    flat = " ".join(" ".join(words).split())
    if nfd:
        flat = unicodedata.normalize("NFD", flat)
    terms = frozenset(query_terms(" ".join(query)))
    fast, each = _first_term(flat, terms), _first_term_of_each(flat, terms)
    assert (fast and (fast.start(), fast.group())) == (each and (each.start(), each.group()))


@PROFILE
@given(text=SNIPPET_TEXT.map(lambda t: unicodedata.normalize("NFD", t)), query=WORD)
@example(
    text=" ".join(["filler"] * 60) + " " + unicodedata.normalize("NFD", "résumé"), query="résumé"
)
def test_a_snippet_shows_a_query_term_of_decomposed_text(text: str, query: str) -> None:
    terms = frozenset(query_terms(query))
    out = snippet(text, terms)
    if terms & set(analyze(text)):
        assert terms & set(analyze(out)), (query, out)
