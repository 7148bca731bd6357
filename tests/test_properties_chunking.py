"""Property tests of chunking (chunking.py): bounded, non-empty, deterministic chunks that
keep every word of the content under the heading it belongs to."""

from __future__ import annotations

import string

from hypothesis import example, given
from hypothesis import strategies as st

from docfoundry_grpc.chunking import Section, chunk_content
from docfoundry_grpc.models import ContentType

from .properties import property_settings

PROFILE = property_settings(150)

ANY_CHAR = st.one_of(
    st.characters(exclude_categories=()),
    st.sampled_from(["\x00", "\ud800", "\n", "\n\n", " ", ".", "#", "<", ">", "&", "\x0c"]),
)
TAG = st.sampled_from(
    [
        "<p>",
        "</p>",
        "<h1>",
        "</h1>",
        "<h2 id='x'>",
        "</h2>",
        "<br>",
        "<script>",
        "</script>",
        "<div>",
        "</div>",
        "<!-- c -->",
        "&amp;",
        "&#x41;",
        "<pre>",
        "</pre>",
        "<li>",
        "<![CDATA[x]]>",
    ]
)
MARKUP = st.sampled_from(["# ", "## ", "\n# ", "\n\n", "```\n", "    ", "- ", "1. ", "===\n", "*"])
ANY_CONTENT = st.one_of(
    st.lists(ANY_CHAR, max_size=200).map("".join),
    st.lists(st.one_of(st.lists(ANY_CHAR, max_size=12).map("".join), TAG, MARKUP), max_size=40).map(
        "".join
    ),
)
MAX_CHARS = st.integers(1, 120)
TYPES = st.sampled_from(ContentType)


def fits(chunk: Section, max_chars: int) -> bool:
    """Within the bound; a heading-only fallback chunk is its heading, bounded apart
    (test_heading_only_chunks_fit_max_chars)."""
    return len(chunk.text) <= max_chars or chunk.text == chunk.heading


@PROFILE
@given(content=ANY_CONTENT, content_type=TYPES, max_chars=MAX_CHARS)
@example(content="x" * 300, content_type=ContentType.PLAIN_TEXT, max_chars=7)
@example(content="# T\n\n" + "word " * 50, content_type=ContentType.MARKDOWN, max_chars=12)
def test_chunks_are_bounded_nonempty_and_deterministic(
    content: str, content_type: ContentType, max_chars: int
) -> None:
    try:
        chunks = chunk_content(content, content_type, max_chars=max_chars)
    except AssertionError as exc:  # html.parser's own: test_html_chunking_never_raises
        assert content_type is ContentType.HTML and "expected name token" in str(exc)
        return
    assert chunks == chunk_content(content, content_type, max_chars=max_chars)
    for chunk in chunks:
        assert chunk.text.strip(), chunk
        assert fits(chunk, max_chars), (len(chunk.text), chunk)
    if content.strip() and content_type is ContentType.PLAIN_TEXT:
        assert chunks


@PROFILE
@given(content=ANY_CONTENT)
@example(content="<p>text</p><![ x]]>")
def test_html_chunking_never_raises(content: str) -> None:
    chunk_content(content, ContentType.HTML, max_chars=1200)


@PROFILE
@given(heading=st.text(string.ascii_letters + " ", min_size=1, max_size=80), max_chars=MAX_CHARS)
@example(heading="x" * 50, max_chars=20)
def test_heading_only_chunks_fit_max_chars(heading: str, max_chars: int) -> None:
    for content, kind in (
        (f"# {heading}\n", ContentType.MARKDOWN),
        (f"<h2>{heading}</h2>", ContentType.HTML),
    ):
        for chunk in chunk_content(content, kind, max_chars=max_chars):
            assert len(chunk.text) <= max_chars, chunk


# What is kept -------------------------------------------------------------------------


def squeeze(text: str) -> str:
    return "".join(text.split())


PLAIN_CHAR = st.one_of(
    st.characters(exclude_categories=()),
    st.sampled_from(list(" \n\t.!?,") + ["\n\n", ". ", "\r\n", "\x0c", "\u2028"]),
)


@PROFILE
@given(content=st.lists(PLAIN_CHAR, max_size=300).map("".join), max_chars=MAX_CHARS)
def test_plain_text_keeps_every_non_space_character_in_order(content: str, max_chars: int) -> None:
    chunks = chunk_content(content, ContentType.PLAIN_TEXT, max_chars=max_chars)
    assert "".join(squeeze(c.text) for c in chunks) == squeeze(content)


WORD = st.text(string.ascii_letters + string.digits + "éßж", min_size=1, max_size=14)
# Separators with a space in them: where a long sentence is cut between words.
SPACED = st.sampled_from([" ", " ", " ", "  ", ". ", "! ", "? ", ", ", "\n\n", " \n", "\n \n"])


def join(words: list[str], separators: list[str]) -> str:
    """The words, each followed by its separator (a space where they run out)."""
    padded = separators + [" "] * (len(words) - len(separators))
    return "".join(w + s for w, s in zip(words, padded, strict=False))


@PROFILE
@given(
    words=st.lists(WORD, min_size=1, max_size=80),
    separators=st.lists(SPACED, max_size=80),
    max_chars=st.integers(14, 100),
)
def test_plain_text_keeps_every_word_whole(
    words: list[str], separators: list[str], max_chars: int
) -> None:
    chunks = chunk_content(join(words, separators), ContentType.PLAIN_TEXT, max_chars=max_chars)
    pieces = {
        token
        for c in chunks
        for token in c.text.replace(".", " ")
        .replace("!", " ")
        .replace("?", " ")
        .replace(",", " ")
        .split()
    }
    assert set(words) <= pieces


@PROFILE
@given(
    words=st.lists(WORD, min_size=1, max_size=60),
    separators=st.lists(st.sampled_from(["\n", "\t", " "]), max_size=60),
    max_chars=st.integers(14, 100),
)
@example(words=[f"word{i}" for i in range(10)], separators=["\n"] * 9, max_chars=20)
def test_plain_text_keeps_every_word_whole_across_line_breaks(
    words: list[str], separators: list[str], max_chars: int
) -> None:
    chunks = chunk_content(join(words, separators), ContentType.PLAIN_TEXT, max_chars=max_chars)
    assert set(words) <= {token for c in chunks for token in c.text.split()}


# Markdown and HTML: paragraphs of words under headings --------------------------------

HEADING = st.lists(st.text(string.ascii_letters, min_size=1, max_size=8), min_size=1, max_size=3)
PARAGRAPH = st.lists(WORD, min_size=1, max_size=25)
BLOCKS = st.lists(st.tuples(st.one_of(st.none(), HEADING), PARAGRAPH), min_size=1, max_size=6)


def expected_words(blocks: list[tuple[list[str] | None, list[str]]]) -> list[tuple[str, str]]:
    """(heading, word) for every paragraph word; a block without a heading continues the
    section before it."""
    pairs: list[tuple[str, str]] = []
    heading = ""
    for title, paragraph in blocks:
        heading = " ".join(title) if title else heading
        pairs += [(heading, word) for word in paragraph]
    return pairs


def markdown(blocks: list[tuple[list[str] | None, list[str]]], level: int, line_break: str) -> str:
    parts = []
    for title, paragraph in blocks:
        if title:
            parts.append("#" * level + " " + " ".join(title))
        parts.append(
            line_break.join(" ".join(paragraph[i : i + 4]) for i in range(0, len(paragraph), 4))
        )
    return "\n\n".join(parts) + "\n"


def html(blocks: list[tuple[list[str] | None, list[str]]], level: int) -> str:
    parts = ["<html><head><title>t_t</title></head><body><style>p_p {}</style>"]
    for title, paragraph in blocks:
        if title:
            parts.append(f"<h{level}>{' '.join(title)}</h{level}>")
        parts.append(f"<p>{' '.join(paragraph)}</p><script>s_s()</script>")
    return "".join(parts) + "</body></html>"


def located(chunks: list[Section]) -> set[tuple[str, str]]:
    return {(c.heading, token) for c in chunks for token in c.text.split()}


@PROFILE
@given(blocks=BLOCKS, level=st.integers(1, 6), max_chars=st.integers(14, 200))
@example(
    blocks=[(None, ["intro"]), (["Getting", "Started"], ["step", "one"])], level=2, max_chars=1200
)
def test_markdown_keeps_every_paragraph_word_under_its_heading(
    blocks: list[tuple[list[str] | None, list[str]]], level: int, max_chars: int
) -> None:
    chunks = chunk_content(
        markdown(blocks, level, " \n"), ContentType.MARKDOWN, max_chars=max_chars
    )
    assert set(expected_words(blocks)) <= located(chunks)
    assert not any(line.startswith("#") for c in chunks for line in c.text.splitlines())


@PROFILE
@given(blocks=BLOCKS, level=st.integers(1, 6), max_chars=st.integers(14, 200))
def test_html_keeps_every_paragraph_word_under_its_heading(
    blocks: list[tuple[list[str] | None, list[str]]], level: int, max_chars: int
) -> None:
    chunks = chunk_content(html(blocks, level), ContentType.HTML, max_chars=max_chars)
    assert set(expected_words(blocks)) <= located(chunks)
    assert not {"t_t", "p_p", "s_s()"} & {token for c in chunks for token in c.text.split()}


@PROFILE
@given(
    blocks=BLOCKS.filter(lambda bs: any(title for title, _ in bs[1:])),
    level=st.integers(1, 6),
    line_break=st.sampled_from(["\x0b", "\x0c", "\x1c", "\x85", "\u2028", "\u2029"]).map(
        lambda c: " " + c
    ),
)
@example(
    blocks=[(None, "one two three four five six seven eight nine".split()), (["H"], ["body"])],
    level=1,
    line_break="\u2028",
)
def test_markdown_keeps_every_word_across_unicode_line_breaks(
    blocks: list[tuple[list[str] | None, list[str]]], level: int, line_break: str
) -> None:
    chunks = chunk_content(markdown(blocks, level, line_break), ContentType.MARKDOWN)
    assert set(expected_words(blocks)) <= located(chunks)
    assert not any(line.startswith("#") for c in chunks for line in c.text.splitlines())
