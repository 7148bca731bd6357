"""Reads a BEIR-layout folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv.

A corpus row is `_id`, `title`, `text`, and may say what its text is in `content_type`
(at the top or in its `metadata`): markdown, html or text, or their MIME types. A row that
does not say is left to the server, which infers the type from the document's path (here
its `_id`) as it does for any client: `guide.md` is Markdown, `4983` plain text.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InvalidArgumentError
from ..models import ContentType

_CONTENT_TYPES = {
    **{kind.value: kind for kind in ContentType},
    "text/markdown": ContentType.MARKDOWN,
    "text/html": ContentType.HTML,
    "text/plain": ContentType.PLAIN_TEXT,
}


@dataclass(frozen=True)
class BeirDocument:
    id: str
    title: str
    text: str
    content_type: ContentType | None = None  # None: the server infers it from `id`


@dataclass(frozen=True)
class BeirDataset:
    name: str
    root: Path
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]

    def documents(self) -> Iterator[BeirDocument]:
        with (self.root / "corpus.jsonl").open(encoding="utf-8") as lines:
            for line in lines:
                if line.strip():
                    yield _document(json.loads(line))

    def count_documents(self) -> int:
        with (self.root / "corpus.jsonl").open(encoding="utf-8") as lines:
            return sum(1 for line in lines if line.strip())


def _document(row: dict[str, Any]) -> BeirDocument:
    doc_id = str(row["_id"])
    metadata = row.get("metadata")
    declared = row.get("content_type") or (
        metadata.get("content_type") if isinstance(metadata, dict) else None
    )
    return BeirDocument(
        doc_id, row.get("title") or "", row["text"], _content_type(declared, doc_id)
    )


def _content_type(declared: object, doc_id: str) -> ContentType | None:
    """The type a row declares; None when it declares none. An unknown one is refused
    rather than guessed: indexed as the wrong type, a document loses its headings."""
    if declared is None or declared == "":
        return None
    kind = _CONTENT_TYPES.get(str(declared).strip().lower())
    if kind is None:
        raise InvalidArgumentError(
            f"corpus document {doc_id!r}: content_type must be one of "
            f"{', '.join(_CONTENT_TYPES)}, got {declared!r}"
        )
    return kind


def load_dataset(root: Path, split: str = "test") -> BeirDataset:
    """Loads the judged queries of `split`; only queries with judgements are kept."""
    required = [root / "corpus.jsonl", root / "queries.jsonl", root / "qrels" / f"{split}.tsv"]
    missing = [str(p) for p in required if not p.is_file()]
    if missing:
        raise InvalidArgumentError(f"not a BEIR data set, missing: {', '.join(missing)}")
    qrels: dict[str, dict[str, int]] = {}
    with required[2].open(encoding="utf-8", newline="") as tsv:
        reader = csv.reader(tsv, delimiter="\t")
        for row in reader:
            if len(row) < 3 or row[0] == "query-id":
                continue
            qrels.setdefault(row[0], {})[row[1]] = int(row[2])
    queries: dict[str, str] = {}
    with required[1].open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                row = json.loads(line)
                if str(row["_id"]) in qrels:
                    queries[str(row["_id"])] = row["text"]
    return BeirDataset(root.name, root, queries, {q: qrels[q] for q in queries})
