"""Benchmark corpora: documents of pre-chunked sections made of recombined SciFact sentences.

Real abstracts give the full-text index a realistic vocabulary and term distribution at any
size, which a fixed set of 5,183 abstracts could not. Generation is sequential from one
seed, so the corpus of N chunks is a prefix of every larger one: sizes share their texts,
and so their cached embeddings.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from docfoundry_grpc.ingest import embedding_text

CHUNK_MAX_CHARS = 1200  # the server's default CHUNK_MAX_CHARS: chunks it would have made
_MIN_TARGET, _MAX_TARGET = 300, 1100
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(])")
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True, slots=True)
class BenchChunk:
    heading: str
    anchor: str
    text: str


@dataclass(frozen=True, slots=True)
class BenchDocument:
    path: str
    title: str
    chunks: tuple[BenchChunk, ...]


@dataclass(frozen=True)
class SourceText:
    """Sentences and titles of the source corpus, the material chunks are drawn from."""

    sentences: list[str]
    titles: list[str]


def read_source(corpus_path: Path) -> SourceText:
    sentences: list[str] = []
    titles: list[str] = []
    with corpus_path.open(encoding="utf-8") as lines:
        for line in lines:
            if not line.strip():
                continue
            row = json.loads(line)
            if row.get("title"):
                titles.append(" ".join(str(row["title"]).split()))
            for sentence in _SENTENCE_END.split(str(row.get("text", ""))):
                sentence = " ".join(sentence.split())
                if 20 <= len(sentence) <= 500:
                    sentences.append(sentence)
    if len(sentences) < 10 or not titles:
        raise SystemExit(f"{corpus_path}: too little text to build a corpus from")
    return SourceText(sentences, titles)


def read_queries(queries_path: Path) -> list[str]:
    """Distinct query texts in file order, so each first pass embeds every one anew."""
    texts: dict[str, None] = {}
    with queries_path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                text = " ".join(str(json.loads(line)["text"]).split())
                if text:
                    texts[text] = None
    if not texts:
        raise SystemExit(f"{queries_path}: no queries")
    return list(texts)


def _slug(text: str) -> str:
    return _NOT_SLUG.sub("-", text.lower()).strip("-")[:60] or "section"


def _heading(title: str) -> str:
    words = title.rstrip(".").split()
    return " ".join(words[:8])


def _chunk_text(rng: random.Random, sentences: list[str]) -> str:
    target = rng.randint(_MIN_TARGET, _MAX_TARGET)
    parts: list[str] = []
    length = 0
    while length < target:
        sentence = sentences[rng.randrange(len(sentences))]
        if length + len(sentence) + 1 > CHUNK_MAX_CHARS:
            break
        parts.append(sentence)
        length += len(sentence) + 1
    return " ".join(parts) or sentences[0][:CHUNK_MAX_CHARS]


def generate_documents(
    source: SourceText, chunk_count: int, *, seed: int, chunks_per_document: int
) -> Iterator[BenchDocument]:
    """Documents holding `chunk_count` chunks in all (the last one may be shorter)."""
    rng = random.Random(seed)
    made = 0
    number = 0
    while made < chunk_count:
        title = source.titles[rng.randrange(len(source.titles))]
        chunks = []
        for ordinal in range(min(chunks_per_document, chunk_count - made)):
            heading = _heading(source.titles[rng.randrange(len(source.titles))])
            text = _chunk_text(rng, source.sentences)
            chunks.append(BenchChunk(heading, f"{_slug(heading)}-{ordinal}", text))
        yield BenchDocument(f"bench/{number:07d}.md", title, tuple(chunks))
        made += len(chunks)
        number += 1


def prefix(documents: list[BenchDocument], chunk_count: int) -> list[BenchDocument]:
    """The documents holding the first `chunk_count` chunks, the last one cut short."""
    out: list[BenchDocument] = []
    left = chunk_count
    for document in documents:
        if left <= 0:
            break
        if len(document.chunks) > left:
            document = BenchDocument(document.path, document.title, document.chunks[:left])
        out.append(document)
        left -= len(document.chunks)
    return out


def embedding_texts(documents: list[BenchDocument]) -> list[str]:
    """What the server's model would see for each chunk, in corpus order."""
    return [
        embedding_text(document.title, chunk.heading, chunk.text)
        for document in documents
        for chunk in document.chunks
    ]


def chunk_count(documents: list[BenchDocument]) -> int:
    return sum(len(document.chunks) for document in documents)
