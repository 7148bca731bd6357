"""Where a snippet's window starts and ends, on small exact examples: a quarter of the width
before the first query word, moved forward to a word start; cut back to a word end; an
ellipsis on each cut side only."""

from __future__ import annotations

import unicodedata

from docfoundry_grpc.snippets import snippet
from docfoundry_grpc.text import query_terms

LETTERS = "aaa bbb ccc ddd eee fff ggg hhh iii jjj kkk"  # words at 0, 4, 8, ... 40


def terms(q: str) -> frozenset[str]:
    return frozenset(query_terms(q))


def test_text_that_fits_is_returned_whole_with_whitespace_collapsed() -> None:
    assert snippet("  short\n\ttext  ", terms("x"), width=20) == "short text"
    assert snippet("a" * 240, terms("a")) == "a" * 240
    assert snippet(LETTERS, terms("kkk"), width=len(LETTERS)) == LETTERS


def test_the_default_width_is_240_characters() -> None:
    assert snippet("x" * 240, frozenset()) == "x" * 240
    assert snippet("x" * 241, frozenset()) == "x" * 240 + "…"


def test_without_a_match_the_window_is_the_start_cut_at_a_word_end() -> None:
    assert snippet(LETTERS, terms("zzz"), width=20) == "aaa bbb ccc ddd eee…"
    assert snippet(LETTERS, frozenset(), width=20) == "aaa bbb ccc ddd eee…"


def test_a_match_near_the_start_keeps_the_start() -> None:
    assert snippet(LETTERS, terms("bbb"), width=20) == "aaa bbb ccc ddd eee…"


def test_the_window_opens_a_quarter_width_before_the_match_at_a_word_start() -> None:
    # 'eee' at 16: the window opens at 16 - 20 // 4 = 11, a space, so at 'ddd' (12).
    assert snippet(LETTERS, terms("eee"), width=20) == "…ddd eee fff ggg hhh…"
    # 'hhh' at 28: opens at 23, the space before 'ggg', and runs to the end.
    assert snippet(LETTERS, terms("hhh"), width=20) == "…ggg hhh iii jjj kkk"
    # 'fff' at 20 with width 30: opens at 13, inside 'ddd', so at 'eee' (16).
    assert snippet(LETTERS, terms("fff"), width=30) == "…eee fff ggg hhh iii jjj kkk"


def test_without_a_space_before_the_match_the_window_opens_mid_word() -> None:
    """The window never moves past the match to find a word start."""
    text = "x" * 40 + "-hhh " + "y " * 30
    assert snippet(text, terms("hhh"), width=20) == "…xxxx-hhh y y y y y…"


def test_a_window_that_reaches_the_end_of_a_long_text_has_no_trailing_ellipsis() -> None:
    text = "word " * 60 + "target end"
    assert snippet(text, terms("target")) == "…" + ("word " * 11 + "target end")


def test_the_first_word_with_a_query_term_wins() -> None:
    assert snippet(LETTERS, terms("jjj ddd"), width=20) == "…ccc ddd eee fff ggg…"


def test_a_word_longer_than_the_window_is_cut_hard() -> None:
    assert snippet("x" * 50, terms("x"), width=20) == "x" * 20 + "…"
    assert snippet("aaa " + "y" * 40, terms("y"), width=20) == "aaa…"  # back to a word end


def test_words_match_by_their_index_terms() -> None:
    """'configure' and 'configuration' stem alike; '_' parts words as the index does."""
    text = "one two three four five six seven configuration_files studies end of text here"
    assert snippet(text, terms("configure"), width=24) == "…configuration_files…"
    assert snippet(text, terms("studying"), width=24) == "…studies end of text here"


def test_accented_and_decomposed_text() -> None:
    text = "ça va très bien, merci beaucoup, le résumé est là pour tout le monde"
    assert snippet(text, terms("resume"), width=24) == "…le résumé est là pour…"
    decomposed = unicodedata.normalize("NFD", text)
    assert snippet(decomposed, terms("resume"), width=24) == unicodedata.normalize(
        "NFD", "…le résumé est là…"
    )  # more code points, so fewer words
