"""How documents become chunks, stated on small exact examples: where sections start and
end, which anchor each gets, and where a long section is cut."""

from __future__ import annotations

from docfoundry_grpc.chunking import (
    Section,
    chunk_content,
    content_type_for,
    github_slug,
    html_sections,
    markdown_sections,
    split_section,
)
from docfoundry_grpc.models import ContentType


def test_content_types_by_extension_only() -> None:
    assert content_type_for("a.markdown") is ContentType.MARKDOWN
    assert content_type_for("A.HTML") is ContentType.HTML
    for plain in ("notes.md.txt", "md", "page.html.bak", "readme"):
        assert content_type_for(plain) is ContentType.PLAIN_TEXT


def test_github_slugs() -> None:
    assert github_slug("  Hello, World! (v2)  ") == "hello-world-v2"
    assert github_slug("Snake_case and-hyphens") == "snake_case-and-hyphens"
    assert github_slug("Two  spaces") == "two--spaces"


def test_repeated_headings_count_up_like_github() -> None:
    markdown = "# Intro\none\n# Intro\ntwo\n# Intro\nthree\n"
    assert [s.anchor for s in markdown_sections(markdown)[1:]] == ["intro", "intro-1", "intro-2"]
    html = "<h2>Intro</h2><p>a</p><h2>Intro</h2><p>b</p><h2>Intro</h2><p>c</p>"
    assert [s.anchor for s in html_sections(html)[1:]] == ["intro", "intro-1", "intro-2"]


def test_markdown_sections_run_from_heading_to_heading() -> None:
    text = "Preamble\n\n# One\nbody one\n\nmore\n\nTwo\n===\nbody two\n## Three\n"
    assert markdown_sections(text) == [
        Section("", "", "Preamble\n"),
        Section("One", "one", "body one\n\nmore\n"),
        Section("Two", "two", "body two"),
        Section("Three", "three", ""),
    ]
    assert markdown_sections("no headings\nat all") == [Section("", "", "no headings\nat all")]


def test_html_sections_use_ids_skip_non_content_and_break_blocks() -> None:
    page = (
        "<html><head><title>T</title><style>p{}</style></head><body>intro"
        "<h1 id='top'>Main <em>title</em></h1><p>first</p><div>second</div>"
        "<script>var x = '<p>';</script><noscript><template>hidden</template>gone</noscript>"
        "<h2>Next   part</h2>tail</body></html>"
    )
    assert html_sections(page) == [
        Section("", "", "intro"),
        Section("Main title", "top", "\n\nfirst\n\nsecond"),
        Section("Next part", "next-part", "tail"),
    ]


def test_a_stray_closing_tag_of_a_skipped_element_hides_nothing() -> None:
    assert html_sections("<p>a</p></script></style><p>b</p>") == [Section("", "", "\n\na\n\nb")]


def test_malformed_html_is_indexed_as_its_text() -> None:
    """html.parser asserts on `<![ x`; the page falls back to its text, tags blanked."""
    assert html_sections("<p>a &amp; b</p><![ x>y") == [Section("", "", " a & b  y")]


def test_sections_are_packed_greedily_up_to_the_limit() -> None:
    assert split_section("aaa\n\nbbb", 8) == ["aaa\n\nbbb"]
    assert split_section("aaa\n\nbbb", 7) == ["aaa", "bbb"]
    assert split_section("aaa\n\n\n\nbbb\n \nccc", 20) == ["aaa\n\nbbb\n\nccc"]
    assert split_section("\n\n  \n\n", 5) == []


def test_long_paragraphs_are_cut_at_sentences_then_whitespace() -> None:
    assert split_section("One two. Three four! Five?", 10) == [
        "One two.",
        "Three",
        "four!",
        "Five?",
    ]
    assert split_section("One. Two. Three.", 10) == ["One. Two.", "Three."]
    assert split_section("abcdefghijkl", 5) == ["abcde", "fghij", "kl"]
    assert split_section("ab\tcdefgh", 5) == ["ab", "cdefg", "h"]
    assert split_section("abcd efgh", 4) == ["abcd", "efgh"]


def test_chunks_keep_their_section_and_fit() -> None:
    text = "# A\n" + "word " * 30 + "\n# B\nshort\n# Empty\n"
    chunks = chunk_content(text, ContentType.MARKDOWN, max_chars=40)
    assert all(len(c.text) <= 40 for c in chunks)
    assert [c.heading for c in chunks] == ["A"] * 4 + ["B"]
    assert " ".join(c.text for c in chunks[:4]).split() == ["word"] * 30
    assert [len(c.text) for c in chunk_content("y" * 1201, ContentType.PLAIN_TEXT)] == [1200, 1]
    plain = chunk_content("x " * 10, ContentType.PLAIN_TEXT, max_chars=8)
    assert [c.text for c in plain] == ["x x x x", "x x x x", "x x"]


def test_a_document_of_headings_only_is_indexed_by_its_headings() -> None:
    chunks = chunk_content("# Title\n## Sub title\n", ContentType.MARKDOWN, max_chars=6)
    assert [(c.heading, c.anchor, c.text) for c in chunks] == [
        ("Title", "title", "Title"),
        ("Sub title", "sub-title", "Sub"),
        ("Sub title", "sub-title", "title"),
    ]
    assert chunk_content("  \n", ContentType.MARKDOWN) == []


def test_an_anchor_handed_out_for_a_repeat_is_not_reused() -> None:
    markdown = "# Intro\none\n# Intro\ntwo\n# Intro-1\nthree\n# Intro\nfour\n"
    anchors = [s.anchor for s in markdown_sections(markdown)[1:]]
    assert anchors == ["intro", "intro-1", "intro-1-1", "intro-2"]  # as GitHub links them
