"""A blocking facade over the async client."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Coroutine, Iterable, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar, Unpack

import grpc
import grpc.aio

from .client import DocFoundryClient
from .models import (
    ClickReceipt,
    CollectionInfo,
    DeletedCount,
    DeleteOutcome,
    DocumentInfo,
    DocumentLike,
    DocumentPage,
    FilterLike,
    HealthInfo,
    IndexOutcome,
    SearchMode,
    SearchOptions,
    SearchResult,
    VectorSource,
)
from .service_config import ChannelOption

_T = TypeVar("_T")


class SyncDocFoundryClient:
    """Blocking facade over DocFoundryClient for scripts and notebooks.

    The async client runs on a private event loop in a daemon thread, so one channel is
    reused across calls and the facade also works from code that already runs a loop
    (where `asyncio.run` would refuse). Use as a context manager or call `close()`.
    The arguments are DocFoundryClient's.
    """

    def __init__(
        self,
        target: str | None = None,
        *,
        timeout: float = 30.0,
        credentials: grpc.ChannelCredentials | None = None,
        api_key: str | None = None,
        options: Sequence[ChannelOption] = (),
    ) -> None:
        self._client = DocFoundryClient(
            target, timeout=timeout, credentials=credentials, api_key=api_key, options=options
        )
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="docfoundry-client", daemon=True
        )
        self._thread.start()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._run(self._client.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def fulltext(self, q: str, **options: Unpack[SearchOptions]) -> SearchResult:
        return self._run(self._client.fulltext(q, **options))

    def semantic(self, q: str, **options: Unpack[SearchOptions]) -> SearchResult:
        return self._run(self._client.semantic(q, **options))

    def hybrid(self, q: str, **options: Unpack[SearchOptions]) -> SearchResult:
        return self._run(self._client.hybrid(q, **options))

    def search(
        self, q: str, mode: SearchMode = "hybrid", **options: Unpack[SearchOptions]
    ) -> SearchResult:
        return self._run(self._client.search(q, mode, **options))

    def record_click(
        self,
        query: str,
        chunk_id: int,
        *,
        impression_id: str = "",
        position: int = 0,
        session_id: str = "",
        user_id: str = "",
        dwell_time: float = 0.0,
    ) -> ClickReceipt:
        return self._run(
            self._client.record_click(
                query,
                chunk_id,
                impression_id=impression_id,
                position=position,
                session_id=session_id,
                user_id=user_id,
                dwell_time=dwell_time,
            )
        )

    def health(self) -> HealthInfo:
        return self._run(self._client.health())

    def index_documents(
        self,
        documents: Iterable[DocumentLike],
        *,
        collection: str = "",
        timeout: float | None = None,
    ) -> list[IndexOutcome]:
        """All outcomes once the stream ends; `documents` is consumed on the client's thread."""
        outcomes = self._client.index_documents(documents, collection=collection, timeout=timeout)
        return self._run(_collect(outcomes))

    def delete_document(self, path: str, *, collection: str = "") -> DeleteOutcome:
        return self._run(self._client.delete_document(path, collection=collection))

    def delete_documents(self, filter: FilterLike, *, collection: str = "") -> DeletedCount:
        return self._run(self._client.delete_documents(filter, collection=collection))

    def get_document(self, path: str, *, collection: str = "") -> DocumentInfo:
        return self._run(self._client.get_document(path, collection=collection))

    def list_documents(
        self,
        *,
        collection: str = "",
        filter: FilterLike | None = None,
        page_size: int = 0,
        page_token: str = "",
    ) -> DocumentPage:
        return self._run(
            self._client.list_documents(
                collection=collection, filter=filter, page_size=page_size, page_token=page_token
            )
        )

    def create_collection(
        self,
        name: str,
        *,
        vectors: VectorSource = "model",
        dimension: int = 0,
        description: str = "",
    ) -> CollectionInfo:
        return self._run(
            self._client.create_collection(
                name, vectors=vectors, dimension=dimension, description=description
            )
        )

    def get_collection(self, name: str) -> CollectionInfo:
        return self._run(self._client.get_collection(name))

    def list_collections(self) -> list[CollectionInfo]:
        return self._run(self._client.list_collections())

    def delete_collection(self, name: str) -> DeletedCount:
        return self._run(self._client.delete_collection(name))

    def _run(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        if self._loop.is_closed():
            coroutine.close()
            raise RuntimeError("SyncDocFoundryClient is closed")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()


async def _collect(outcomes: AsyncIterator[IndexOutcome]) -> list[IndexOutcome]:
    return [outcome async for outcome in outcomes]
