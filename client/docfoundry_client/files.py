"""Turns files and folders on disk into documents for the IndexDocuments stream.

Document paths are the index's keys, so they are derived from what the caller named rather
than from absolute locations: indexing `docs/` from two different checkouts, or twice from
the same one, yields the same keys and lets the server answer UNCHANGED.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from docfoundry.v1 import search_pb2 as pb

CONTENT_TYPES: dict[str, pb.ContentType.ValueType] = {
    ".md": pb.CONTENT_TYPE_MARKDOWN,
    ".markdown": pb.CONTENT_TYPE_MARKDOWN,
    ".html": pb.CONTENT_TYPE_HTML,
    ".htm": pb.CONTENT_TYPE_HTML,
    ".txt": pb.CONTENT_TYPE_PLAIN_TEXT,
}
SKIPPED_DIRS = frozenset({"node_modules", "__pycache__"})
# A document's metadata value: a string, a number, a boolean or a list of strings.
MetadataValue = str | float | bool | Sequence[str]

_ATX_H1 = re.compile(r"^ {0,3}#[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
_SETEXT_H1 = re.compile(r"^ {0,3}=+[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_HTML_TITLE = re.compile(r"<title\b[^>]*>(.*?)</title\s*>", re.DOTALL | re.IGNORECASE)
_HTML_H1 = re.compile(r"<h1\b[^>]*>(.*?)</h1\s*>", re.DOTALL | re.IGNORECASE)
_HTML_TAG = re.compile(r"<[^>]*>")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class ChunkSpec:
    """A chunk prepared by the caller; without an embedding the server embeds it."""

    heading: str
    anchor: str
    text: str
    embedding: Sequence[float] = ()


@dataclass(frozen=True)
class DocumentSpec:
    """A document to index, free of protobuf so callers can build and compare it easily.

    Send either `content` (the server chunks it) or `chunks`, not both. An unspecified
    content type lets the server infer it from the path's extension.
    """

    path: str
    title: str = ""
    source_url: str = ""
    content: str = ""
    content_type: pb.ContentType.ValueType = pb.CONTENT_TYPE_UNSPECIFIED
    chunks: Sequence[ChunkSpec] = ()
    metadata: Mapping[str, MetadataValue] = field(default_factory=dict)


def iter_documents(
    paths: Sequence[Path],
    *,
    root: Path | None = None,
    metadata: Mapping[str, MetadataValue] | None = None,
) -> Iterator[DocumentSpec]:
    """Reads each file named or found under a named folder, lazily and in a stable order.

    Folders contribute their .md/.markdown/.html/.htm/.txt files, hidden and tool folders
    excluded; a file named explicitly is read whatever its extension. A document's path is
    relative to `root` when given, else to the folder's parent (so the folder's own name is
    kept), else, for a file argument, to the working directory or just its name.
    Undecodable bytes become U+FFFD rather than failing a whole ingest. `metadata` is
    given to every document.
    """
    for file, key in _iter_files(paths, root=root):
        content = file.read_text(encoding="utf-8-sig", errors="replace")
        content_type = content_type_for(file)
        yield DocumentSpec(
            path=key,
            title=extract_title(content, content_type) or file.stem,
            content=content,
            content_type=content_type,
            metadata=dict(metadata or {}),
        )


def count_files(paths: Sequence[Path], *, root: Path | None = None) -> int:
    """How many documents `iter_documents` will yield, without reading any file."""
    return sum(1 for _ in _iter_files(paths, root=root))


def content_type_for(file: Path) -> pb.ContentType.ValueType:
    return CONTENT_TYPES.get(file.suffix.lower(), pb.CONTENT_TYPE_PLAIN_TEXT)


def extract_title(content: str, content_type: pb.ContentType.ValueType) -> str:
    """The document's own title, or "" when it has none (callers fall back to the name)."""
    if content_type == pb.CONTENT_TYPE_MARKDOWN:
        return markdown_title(content)
    if content_type == pb.CONTENT_TYPE_HTML:
        return html_title(content)
    return ""


def markdown_title(content: str) -> str:
    """First level-1 heading (ATX `# ` or Setext `===`) outside fenced code blocks.

    Fences matter: a `# comment` in a shell example is not a heading.
    """
    fence = ""
    previous = ""
    for line in content.splitlines():
        opener = _FENCE.match(line)
        if fence:
            if opener and opener.group(1)[0] == fence[0] and len(opener.group(1)) >= len(fence):
                fence = ""
            continue
        if opener:
            fence, previous = opener.group(1), ""
            continue
        atx = _ATX_H1.match(line)
        if atx and atx.group(1).strip():
            return _clean(atx.group(1))
        if previous.strip() and _SETEXT_H1.match(line):
            return _clean(previous)
        previous = line
    return ""


def html_title(content: str) -> str:
    """Text of <title>, else of the first <h1>, with tags dropped and entities decoded."""
    visible = _HTML_COMMENT.sub("", content)
    for pattern in (_HTML_TITLE, _HTML_H1):
        match = pattern.search(visible)
        if match:
            title = _clean(html.unescape(_HTML_TAG.sub(" ", match.group(1))))
            if title:
                return title
    return ""


def _clean(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


def _iter_files(paths: Sequence[Path], *, root: Path | None) -> Iterator[tuple[Path, str]]:
    """(file, document path) pairs; a file reached twice is yielded once.

    Keys come from absolute but unresolved paths, so a symlinked folder keeps the name the
    caller used; duplicates are detected on resolved paths.
    """
    base = _absolute(root) if root is not None else None
    seen: set[Path] = set()
    for given in paths:
        path = _absolute(given)
        if path.is_dir():
            files = _walk(path)
            anchor = base or path.parent
        elif path.is_file():
            files = iter([path])
            anchor = base or _file_anchor(path)
        else:
            raise FileNotFoundError(f"no such file or directory: {given}")
        for file in files:
            real = file.resolve()
            if real not in seen:
                seen.add(real)
                yield file, _relative_key(file, anchor)


def _walk(folder: Path) -> Iterator[Path]:
    for current, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not _skipped_dir(d))
        for name in sorted(names):
            if not name.startswith(".") and Path(name).suffix.lower() in CONTENT_TYPES:
                yield Path(current, name)


def _skipped_dir(name: str) -> bool:
    return name.startswith(".") or name in SKIPPED_DIRS


def _absolute(path: Path) -> Path:
    """Absolute with `..` folded but symlinks kept, unlike Path.resolve()."""
    return Path(os.path.abspath(path))


def _file_anchor(file: Path) -> Path:
    cwd = Path.cwd()
    return cwd if file.is_relative_to(cwd) else file.parent


def _relative_key(file: Path, anchor: Path) -> str:
    if not file.is_relative_to(anchor):
        raise ValueError(f"{file} is not under {anchor}")
    return file.relative_to(anchor).as_posix()
