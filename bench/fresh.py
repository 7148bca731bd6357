"""A fresh server on a fresh database, loaded with a generated corpus: what the bounded
commands (`bench.overload`, `bench.stall`) measure against. The bench's own machinery
(corpus, cached vectors, ServerProcess, throwaway PostgreSQL), in one place."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from docfoundry.v1 import search_pb2 as pb

from .corpus import embedding_texts, generate_documents, prefix, read_source
from .ingest import index_requests, send_documents
from .server import Database, PostgresHost, ServerProcess, settle, sqlite_database
from .vectors import corpus_vectors, open_cached_model


def corpus_requests(
    source: Path, chunks: int, *, cache_dir: Path, embed_pool: int, seed: int
) -> list[pb.IndexDocumentsRequest]:
    """`chunks` chunks of the BEIR `source`, eight per document, with caller vectors (the
    first `embed_pool` embedded for real and cached, the rest derived from them)."""
    generated = generate_documents(
        read_source(source / "corpus.jsonl"), chunks, seed=seed, chunks_per_document=8
    )
    documents = prefix(list(generated), chunks)
    model = open_cached_model(cache_dir / "bench-embeddings.sqlite")
    try:
        texts = embedding_texts(documents)
        vectors = corpus_vectors(model, texts, pool_size=embed_pool, seed=seed)
    finally:
        model.close()
    return index_requests(documents, vectors.vectors)


@dataclass(frozen=True)
class FreshServer:
    server: ServerProcess
    database: Database
    postgres: PostgresHost | None

    @property
    def postmaster(self) -> int | None:
        return self.postgres.postmaster_pid() if self.postgres else None

    def load(self, requests: list[pb.IndexDocumentsRequest]) -> float:
        """Waits for the server, indexes `requests`, and on PostgreSQL settles the database
        as the bench does (postings packed, statistics, checkpoint); returns the load's
        seconds."""
        self.server.wait_serving()
        seconds = asyncio.run(send_documents(self.server.target, requests))
        if self.postgres is not None:
            settle(self.database)
        return seconds


@contextlib.contextmanager
def fresh_server(backend: str, env: Mapping[str, str], *, name: str) -> Iterator[FreshServer]:
    """A server just started (not yet waited for) on a new SQLite file or PostgreSQL
    database; the server, database, cluster and temporary folder go when the block ends,
    however it ends."""
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"{name}-")))
        postgres: PostgresHost | None = None
        if backend == "postgresql":
            postgres = PostgresHost(None)
            stack.callback(postgres.close)
            database = stack.enter_context(postgres.database())
        else:
            database = stack.enter_context(sqlite_database(work / "sqlite"))
        database = replace(database, env={**database.env, **env})
        server = ServerProcess(database, log_path=work / "server.log")
        stack.callback(server.stop)
        yield FreshServer(server, database, postgres)
