"""Splits Markdown, HTML and plain text into sections with a heading and a deep-link anchor.

A section longer than `max_chars` is cut on paragraph boundaries, then sentences, then words,
so every chunk fits the embedding model's window and the snippet stays readable.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser

from markdown_it import MarkdownIt

from .models import ContentType

DEFAULT_MAX_CHARS = 1200
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_SLUG_DROP = re.compile(r"[^\w\- ]")
# markdown-it's own line breaks (its source map counts these), unlike str.splitlines,
# which also breaks at \v, \f, \x1c-\x1e, \x85, \u2028 and \u2029.
_MARKDOWN_NEWLINE = re.compile(r"\r\n?|\n")
_TAG = re.compile(r"<[^>]*>")


@dataclass(frozen=True)
class Section:
    heading: str
    anchor: str
    text: str


def content_type_for(path: str) -> ContentType:
    lowered = path.lower()
    if lowered.endswith((".md", ".markdown")):
        return ContentType.MARKDOWN
    if lowered.endswith((".html", ".htm")):
        return ContentType.HTML
    return ContentType.PLAIN_TEXT


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    return _SLUG_DROP.sub("", heading.strip().lower()).replace(" ", "-")


class _SlugRegistry:
    """Makes repeated headings unique the way GitHub does (`intro`, `intro-1`, …), as
    github-slugger does: every anchor handed out counts as taken, so a later heading
    "Intro-1" gets `intro-1-1`, not a second `intro-1`."""

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}

    def unique(self, slug: str) -> str:
        result = slug
        while result in self._seen:
            self._seen[slug] += 1
            result = f"{slug}-{self._seen[slug]}"
        self._seen[result] = 0
        return result


def markdown_sections(content: str) -> list[Section]:
    lines = _MARKDOWN_NEWLINE.split(content)
    tokens = MarkdownIt("commonmark").parse(content)
    slugs = _SlugRegistry()
    headings: list[tuple[int, int, str]] = []  # (heading line, first body line, text)
    for i, token in enumerate(tokens):
        if token.type == "heading_open" and token.map:
            text = tokens[i + 1].content.strip()
            headings.append((token.map[0], token.map[1], text))
    sections = [Section("", "", "\n".join(lines[: headings[0][0] if headings else len(lines)]))]
    for n, (_, body_start, text) in enumerate(headings):
        end = headings[n + 1][0] if n + 1 < len(headings) else len(lines)
        body = "\n".join(lines[body_start:end])
        sections.append(Section(text, slugs.unique(github_slug(text)), body))
    return sections


class _HTMLSectionParser(HTMLParser):
    _HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
    _SKIPPED = frozenset({"script", "style", "head", "template", "noscript"})
    _BLOCKS = frozenset({"p", "div", "li", "pre", "br", "tr", "section", "article", "table"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: list[Section] = []
        self._slugs = _SlugRegistry()
        self._heading: str = ""
        self._anchor: str = ""
        self._body: list[str] = []
        self._in_heading: str | None = None
        self._heading_id: str | None = None
        self._heading_text: list[str] = []
        self._skip_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIPPED:
            self._skip_depth += 1
        elif tag in self._HEADINGS:
            self._flush()
            self._in_heading = tag
            self._heading_id = dict(attrs).get("id")
            self._heading_text = []
        elif tag in self._BLOCKS:
            self._body.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIPPED:
            self._skip_depth = max(0, self._skip_depth - 1)
        elif tag == self._in_heading:
            self._heading = " ".join("".join(self._heading_text).split())
            self._anchor = self._heading_id or self._slugs.unique(github_slug(self._heading))
            self._in_heading = None

    def handle_data(self, data: str) -> None:
        if self._skip_depth:
            return
        (self._heading_text if self._in_heading else self._body).append(data)

    def _flush(self) -> None:
        self.sections.append(Section(self._heading, self._anchor, "".join(self._body)))
        self._body = []

    def close(self) -> None:
        super().close()
        self._flush()


def html_sections(content: str) -> list[Section]:
    parser = _HTMLSectionParser()
    try:
        parser.feed(content)
        parser.close()
    except AssertionError:
        # html.parser asserts on some malformed declarations (`<![ x`) instead of reading
        # them as text: such a page is indexed as its text without tags, not refused.
        return [Section("", "", html.unescape(_TAG.sub(" ", content)))]
    return parser.sections


def _pieces(text: str, max_chars: int) -> Iterator[tuple[str, str]]:
    """(separator, piece): paragraphs, any over the bound cut into sentences, then words."""
    for paragraph in _PARAGRAPH_BREAK.split(text):
        paragraph = paragraph.strip()
        if len(paragraph) <= max_chars:
            yield "\n\n", paragraph
            continue
        separator = "\n\n"
        for sentence in _SENTENCE_END.split(paragraph):
            while len(sentence) > max_chars:
                cut = _last_space(sentence, max_chars)
                yield separator, sentence[:cut]
                separator, sentence = " ", sentence[cut:].strip()
            yield separator, sentence
            separator = " "


def _last_space(text: str, limit: int) -> int:
    """Where to cut `text` to at most `limit` characters: its last whitespace (any kind:
    a word must not be cut at a tab or a line break) before the limit, else the limit."""
    for cut in range(limit, 0, -1):
        if text[cut].isspace():
            return cut
    return limit


def split_section(text: str, max_chars: int) -> list[str]:
    """Packs pieces greedily into chunks of at most `max_chars` characters."""
    chunks: list[str] = []
    current = ""
    for separator, piece in _pieces(text, max_chars):
        if not piece:
            continue
        candidate = f"{current}{separator}{piece}" if current else piece
        if len(candidate) <= max_chars:
            current = candidate
        else:
            chunks.append(current)
            current = piece
    if current:
        chunks.append(current)
    return chunks


def chunk_content(
    content: str, content_type: ContentType, *, max_chars: int = DEFAULT_MAX_CHARS
) -> list[Section]:
    """Sections of `content`, each no longer than `max_chars`; empty sections are dropped."""
    if content_type is ContentType.MARKDOWN:
        sections = markdown_sections(content)
    elif content_type is ContentType.HTML:
        sections = html_sections(content)
    else:
        sections = [Section("", "", content)]
    chunks = [
        Section(s.heading, s.anchor, piece)
        for s in sections
        for piece in split_section(s.text, max_chars)
    ]
    headed_but_empty = [s for s in sections if s.heading and not s.text.strip()]
    return chunks or [
        Section(s.heading, s.anchor, piece)
        for s in headed_but_empty
        for piece in split_section(s.heading, max_chars)
    ]
