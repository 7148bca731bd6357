"""Ingest through IndexDocuments: the bulk load with caller-supplied vectors, and a small
sample the server embeds itself, set against the model's own throughput on the same texts.

Request messages are built before the clock starts, so the figures are the server's rate,
not the rate at which this process converts numpy rows into protobuf.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence

import grpc
import numpy as np
import numpy.typing as npt

from docfoundry.v1 import search_pb2 as pb
from docfoundry.v1 import search_pb2_grpc as pb_grpc
from docfoundry_grpc.embedding import Embedder

from .corpus import BenchDocument, chunk_count, embedding_texts

F32 = npt.NDArray[np.float32]
_CHANNEL_OPTIONS = [("grpc.max_send_message_length", 64 * 1024 * 1024)]


def index_requests(
    documents: Sequence[BenchDocument], vectors: F32 | None
) -> list[pb.IndexDocumentsRequest]:
    """One request per document; chunks carry their vector when `vectors` is given."""
    requests = []
    row = 0
    for document in documents:
        chunks = []
        for chunk in document.chunks:
            embedding = vectors[row].tolist() if vectors is not None else []
            chunks.append(
                pb.ChunkInput(
                    heading=chunk.heading, anchor=chunk.anchor, text=chunk.text, embedding=embedding
                )
            )
            row += 1
        requests.append(
            pb.IndexDocumentsRequest(
                document=pb.Document(
                    path=document.path,
                    title=document.title,
                    chunks=chunks,
                )
            )
        )
    return requests


async def send_documents(target: str, requests: Sequence[pb.IndexDocumentsRequest]) -> float:
    """Streams `requests` through one IndexDocuments call; returns the seconds it took.
    Raises if any document was not created (the database must start empty)."""

    async def stream() -> AsyncIterator[pb.IndexDocumentsRequest]:
        for request in requests:
            yield request

    async with grpc.aio.insecure_channel(target, options=_CHANNEL_OPTIONS) as channel:
        stub = pb_grpc.IndexServiceStub(channel)
        started = time.perf_counter()
        results = [result async for result in stub.IndexDocuments(stream())]
        seconds = time.perf_counter() - started
    created = sum(r.outcome == pb.IndexDocumentsResponse.OUTCOME_CREATED for r in results)
    if created != len(requests):
        raise RuntimeError(f"{created} of {len(requests)} documents created")
    return seconds


async def delete_documents(target: str, paths: Sequence[str]) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.IndexServiceStub(channel)
        for path in paths:
            await stub.DeleteDocument(pb.DeleteDocumentRequest(path=path))


def sample_documents(documents: Sequence[BenchDocument], chunks: int) -> list[BenchDocument]:
    """The first documents holding `chunks` chunks, under their own paths, so they are new
    to the server and can be removed afterwards without touching the corpus."""
    out: list[BenchDocument] = []
    for document in documents:
        if chunk_count(out) >= chunks:
            break
        keep = document.chunks[: chunks - chunk_count(out)]
        out.append(BenchDocument("embed-sample/" + document.path, document.title, keep))
    return out


def time_model(model: Embedder, documents: Sequence[BenchDocument]) -> float:
    """Seconds the model takes for the chunks' texts, in one call, as one batch job."""
    texts = embedding_texts(list(documents))
    model.embed(texts[:4])
    started = time.perf_counter()
    model.embed(texts)
    return time.perf_counter() - started
