"""Turns incoming documents into chunks ready for storage: hash, chunk, analyse, embed."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from .chunking import content_type_for
from .embedding import Embedder
from .errors import InvalidArgumentError
from .models import (
    Chunk,
    Collection,
    ContentType,
    Document,
    DocumentChunks,
    Metadata,
    Vector,
    VectorSource,
)
from .preparation import PreparedText, prepare_text_off_loop
from .storage.base import metadata_json
from .tracing import STEPS_OFF, Attributes, StepSpans
from .validation import (
    MAX_CONTENT_CHARS,
    check_document_path,
    check_metadata,
    check_text,
    check_vectors,
)

# Chunks embedded per executor job: about half a second of model time for long chunks.
EMBED_SLICE = 16


@dataclass(frozen=True)
class ChunkInput:
    heading: str
    anchor: str
    text: str
    embedding: Sequence[float] | Vector = ()  # the service passes float32 arrays

    @property
    def has_embedding(self) -> bool:
        return len(self.embedding) > 0


@dataclass(frozen=True)
class DocumentInput:
    path: str
    title: str = ""
    source_url: str = ""
    content: str = ""
    content_type: ContentType | None = None
    chunks: Sequence[ChunkInput] = field(default_factory=tuple)
    metadata: Metadata = field(default_factory=dict)


def content_hash(doc: DocumentInput, *, chunking: str) -> str:
    """A hash of everything that decides the stored chunks, so re-sending is a no-op."""
    digest = hashlib.sha256()
    content_type = doc.content_type or content_type_for(doc.path)
    parts = (chunking, doc.title, doc.source_url, content_type.value, doc.content)
    for part in (*parts, metadata_json(doc.metadata)):
        digest.update(part.encode("utf-8", "surrogatepass") + b"\x00")
    for chunk in doc.chunks:
        for part in (chunk.heading, chunk.anchor, chunk.text):
            digest.update(part.encode("utf-8", "surrogatepass") + b"\x00")
        digest.update(np.asarray(chunk.embedding, dtype=np.float32).tobytes() + b"\x01")
    return digest.hexdigest()


def check_document(
    doc: DocumentInput, collection: Collection, *, max_bytes: int
) -> dict[int, Vector]:
    """Raises InvalidArgumentError naming the field at fault (as `document.…`). `max_bytes`
    bounds the UTF-8 size of the content, or of all chunk texts together. Returns the
    caller's vectors, checked and of unit length, by chunk number, for `prepare`."""
    check_document_path(doc.path, field="document.path")
    check_text(doc.title, "document.title")
    check_text(doc.source_url, "document.source_url")
    check_text(doc.content, "document.content", max_chars=MAX_CONTENT_CHARS)
    size = len(doc.content.encode("utf-8", "surrogatepass")) + sum(
        len(c.text.encode("utf-8", "surrogatepass")) for c in doc.chunks
    )
    if size > max_bytes:
        raise InvalidArgumentError(
            f"the document is {size:,} bytes of text; this server takes at most "
            f"{max_bytes:,} (MAX_DOCUMENT_BYTES): split it",
            field="document.content",
        )
    check_metadata(doc.metadata, field="document.metadata")
    if doc.content and doc.chunks:
        raise InvalidArgumentError("send content or chunks, not both", field="document.content")
    caller_vectors = collection.vectors is VectorSource.CALLER
    if caller_vectors and doc.content:
        raise InvalidArgumentError(
            f"collection {collection.name!r} takes caller vectors: send chunks with embeddings",
            field="document.content",
        )
    for n, chunk in enumerate(doc.chunks):
        at = f"document.chunks[{n}]"
        check_text(chunk.heading, f"{at}.heading")
        check_text(chunk.anchor, f"{at}.anchor")
        check_text(chunk.text, f"{at}.text", max_chars=MAX_CONTENT_CHARS)
        if caller_vectors and not chunk.has_embedding:
            raise InvalidArgumentError(
                f"collection {collection.name!r} takes caller vectors: this chunk has none",
                field=f"{at}.embedding",
            )
    return given_vectors(doc, collection.dimension)


def given_vectors(doc: DocumentInput, dimension: int | None) -> dict[int, Vector]:
    """The unit-length vectors of the document's chunks that carry one, by chunk number;
    raises InvalidArgumentError naming the first bad one."""
    numbers = [n for n, chunk in enumerate(doc.chunks) if chunk.has_embedding]
    if not numbers:
        return {}
    rows = [doc.chunks[n].embedding for n in numbers]
    names = [f"document.chunks[{n}].embedding" for n in numbers]
    return dict(zip(numbers, check_vectors(rows, dimension, names=names), strict=True))


def embedding_text(title: str, heading: str, text: str) -> str:
    """What the model sees for a chunk: its document title and heading give it context."""
    return "\n".join(part for part in (title, heading, text) if part.strip())


class DocumentPreparer:
    """Chunks and embeds documents; embeds all chunks of a batch in one model call.
    `spans` traces the two steps, chunking and embedding."""

    def __init__(
        self,
        embedder: Embedder,
        *,
        max_chars: int,
        executor: Executor,
        spans: StepSpans = STEPS_OFF,
    ) -> None:
        self.embedder = embedder
        self.max_chars = max_chars
        self.executor = executor
        self._spans = spans
        self.chunking = f"chars={max_chars};model={embedder.model_name}"

    async def _sections(self, doc: DocumentInput) -> list[PreparedText]:
        """The document's chunks with their index terms (large ones off the event loop)."""
        given = [(c.heading, c.anchor, c.text) for c in doc.chunks]
        content_type = doc.content_type or content_type_for(doc.path)
        return await prepare_text_off_loop(
            doc.title, doc.content, content_type, self.max_chars, given
        )

    async def _embed(self, texts: list[str]) -> Vector:
        """The texts' vectors, EMBED_SLICE at a time: each slice is its own executor job,
        so a cancelled call (a stream the client dropped, a server shutting down) stops
        after the slice at hand instead of embedding the rest of a large document."""
        loop = asyncio.get_running_loop()
        parts = []
        attributes: Attributes = {
            "docfoundry.embedding.model": self.embedder.model_name,
            "docfoundry.embedding.texts": len(texts),
        }
        with self._spans("embed chunks", attributes):
            for start in range(0, len(texts), EMBED_SLICE):
                piece = texts[start : start + EMBED_SLICE]
                parts.append(await loop.run_in_executor(self.executor, self.embedder.embed, piece))
        return np.concatenate(parts)

    async def prepare(
        self,
        docs: Sequence[DocumentInput],
        hashes: Sequence[str],
        given: Sequence[dict[int, Vector]],
    ) -> list[DocumentChunks]:
        """The documents' chunks, embedded by the model unless `given` (what
        `check_document` returned for each) holds the caller's vector."""
        with self._spans("chunk", {"docfoundry.documents": len(docs)}) as span:
            sections = [await self._sections(doc) for doc in docs]
            span.set_attribute("docfoundry.chunks", sum(map(len, sections)))
        to_embed = [
            embedding_text(doc.title, heading, text)
            for doc, doc_sections in zip(docs, sections, strict=True)
            for (heading, _, text, _), given in _with_given(doc, doc_sections)
            if given is None or not given.has_embedding
        ]
        vectors: Iterator[Vector] = iter(await self._embed(to_embed) if to_embed else [])
        prepared = []
        for doc, doc_sections, digest, given_by_number in zip(
            docs, sections, hashes, given, strict=True
        ):
            chunks = [
                Chunk(
                    heading=heading,
                    anchor=anchor,
                    text=text,
                    tokens=tokens,
                    embedding=given_by_number[n] if n in given_by_number else next(vectors),
                )
                for n, (heading, anchor, text, tokens) in enumerate(doc_sections)
            ]
            document = Document(doc.path, doc.title, doc.source_url, digest, doc.metadata)
            prepared.append(DocumentChunks(document, chunks))
        return prepared


def _with_given(
    doc: DocumentInput, sections: Sequence[PreparedText]
) -> Iterator[tuple[PreparedText, ChunkInput | None]]:
    """Each prepared chunk with the caller's chunk it came from (None: from content)."""
    if doc.chunks:
        yield from zip(sections, doc.chunks, strict=True)
    else:
        for section in sections:
            yield section, None
