"""Every RPC, fed arbitrary bytes and corrupted versions of valid messages through a real
server on both backends, answers with a status a client can act on: never INTERNAL or
UNKNOWN, never a crash, and nothing stored is lost."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from docfoundry.v1 import search_pb2 as pb

from .conftest import Harness
from .test_grpc import indexed

# What a malformed or hostile request may get; INTERNAL and UNKNOWN mean the server did
# not understand its own failure.
ACCEPTABLE = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.FAILED_PRECONDITION,
}

VALID: dict[str, Any] = {
    "SearchService/Fulltext": pb.FulltextRequest(q="purr", k=3, path_prefix="blog/"),
    "SearchService/Semantic": pb.SemanticRequest(q="cats", k=3, min_similarity=0.1),
    "SearchService/Hybrid": pb.HybridRequest(q="cats purr", k=3, rrf_k=60),
    "SearchService/RecordClick": pb.RecordClickRequest(
        query="purr", chunk_id=1, position=1, session_id="s", dwell_time=2.5
    ),
    "SearchService/Health": pb.HealthRequest(),
    "IndexService/IndexDocuments": pb.IndexDocumentsRequest(
        collection="default",
        document=pb.Document(path="fuzz/a.md", title="A", content="# A\n\nSome text."),
    ),
    "IndexService/DeleteDocument": pb.DeleteDocumentRequest(path="fuzz/none.md"),
    "IndexService/DeleteDocuments": pb.DeleteDocumentsRequest(
        filter=pb.Filter(path_prefix="fuzz/none/")
    ),
    "IndexService/GetDocument": pb.GetDocumentRequest(path="blog/cats.md"),
    "IndexService/ListDocuments": pb.ListDocumentsRequest(page_size=2),
    "CollectionService/CreateCollection": pb.CreateCollectionRequest(name="fuzzed"),
    "CollectionService/GetCollection": pb.GetCollectionRequest(name="default"),
    "CollectionService/ListCollections": pb.ListCollectionsRequest(),
    "CollectionService/DeleteCollection": pb.DeleteCollectionRequest(name="fuzzed"),
}
PROTECTED_PATHS = ("blog/", "guides/")  # what `indexed` stores; fuzzing must not lose it


def corrupted(data: bytes, flips: list[tuple[int, int]], cut: int | None) -> bytes:
    buffer = bytearray(data)
    for position, value in flips:
        if buffer:
            buffer[position % len(buffer)] ^= value
    return bytes(buffer[:cut] if cut is not None else buffer)


payloads = st.one_of(
    st.binary(max_size=256),
    st.builds(
        lambda method, flips, cut: (
            method,
            corrupted(VALID[method].SerializeToString(), flips, cut),
        ),
        st.sampled_from(sorted(VALID)),
        st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)), max_size=4),
        st.one_of(st.none(), st.integers(0, 64)),
    ),
)


async def call(channel: grpc.aio.Channel, method: str, payload: bytes) -> grpc.StatusCode:
    path = f"/docfoundry.v1.{method}"
    try:
        if method.endswith("IndexDocuments"):
            stream: Any = channel.stream_stream(path)
            async for _ in stream(iter([payload]), timeout=20):
                pass
        else:
            unary: Any = channel.unary_unary(path)
            await unary(payload, timeout=20)
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def test_arbitrary_bytes_never_get_internal_or_unknown(server: Harness) -> None:
    await indexed(server)
    before = await server.index.ListDocuments(pb.ListDocumentsRequest(page_size=100))
    kept = {d.path for d in before.documents if d.path.startswith(PROTECTED_PATHS)}
    loop = asyncio.get_running_loop()
    seen: list[tuple[str, grpc.StatusCode]] = []

    @settings(
        max_examples=150,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(st.sampled_from(sorted(VALID)), payloads)
    def check(method: str, payload: bytes | tuple[str, bytes]) -> None:
        if isinstance(payload, tuple):
            method, payload = payload
        future = asyncio.run_coroutine_threadsafe(call(server.channel, method, payload), loop)
        code = future.result(timeout=60)
        seen.append((method, code))
        assert code in ACCEPTABLE, (method, payload, code)

    await asyncio.to_thread(check)
    assert {code for _, code in seen} >= {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT}
    after = await server.index.ListDocuments(pb.ListDocumentsRequest(page_size=100))
    deletes = [m for m, code in seen if "Delete" in m and code is grpc.StatusCode.OK]
    if not any(m.endswith(("DeleteDocument", "DeleteDocuments")) for m in deletes):
        assert kept <= {d.path for d in after.documents}  # nothing stored was lost
    health = await server.search.Health(pb.HealthRequest())
    assert health.status == pb.HealthResponse.STATUS_SERVING


@pytest.mark.parametrize("method", sorted(VALID))
async def test_each_valid_message_is_served(server: Harness, method: str) -> None:
    """The corpus the fuzzer corrupts is itself valid (or a plain NOT_FOUND)."""
    await indexed(server)
    code = await call(server.channel, method, VALID[method].SerializeToString())
    assert code in {grpc.StatusCode.OK, grpc.StatusCode.NOT_FOUND}
