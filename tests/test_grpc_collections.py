"""Collections, metadata, filters, pages and per-document outcomes through a real server on
both backends."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import grpc
import numpy as np
import pytest
from google.rpc import error_details_pb2, status_pb2

from docfoundry.v1 import search_pb2 as pb

from .conftest import Harness
from .test_grpc import OUTCOME, expect_status, index, indexed

INVALID = grpc.StatusCode.INVALID_ARGUMENT


def unit(seed: int, dimension: int) -> list[float]:
    vector = np.random.default_rng(seed).standard_normal(dimension)
    unit: list[float] = (vector / np.linalg.norm(vector)).tolist()
    return unit


def text(value: str) -> pb.MetadataValue:
    return pb.MetadataValue(string_value=value)


async def index_into(
    harness: Harness, collection: str, docs: list[pb.Document]
) -> list[pb.IndexDocumentsResponse]:
    async def stream() -> AsyncIterator[pb.IndexDocumentsRequest]:
        for doc in docs:
            yield pb.IndexDocumentsRequest(document=doc, collection=collection)

    return [r async for r in harness.index.IndexDocuments(stream())]


def numbered(n: int) -> pb.Document:
    return pb.Document(
        path=f"notes/{n:02d}.md",
        content=f"# Note {n}\n\nA note about ports and servers, number {n}.",
        metadata={
            "n": pb.MetadataValue(number_value=n),
            "parity": text("odd" if n % 2 else "even"),
        },
    )


async def test_following_page_tokens_gives_each_result_once_in_order(server: Harness) -> None:
    await index(server, [numbered(n) for n in range(23)])
    for mode in ("Fulltext", "Semantic", "Hybrid"):
        call, request_type = getattr(server.search, mode), getattr(pb, f"{mode}Request")
        whole = await call(request_type(q="note about ports", k=23))
        paged: list[int] = []
        request = request_type(q="note about ports", k=5)
        while True:
            page = await call(request)
            paged += [h.chunk_id for h in page.hits]
            if not page.next_page_token:
                break
            request.page_token = page.next_page_token
        assert paged == [h.chunk_id for h in whole.hits]
        assert len(set(paged)) == 23


async def test_page_tokens_are_bound_to_their_query(server: Harness) -> None:
    await index(server, [numbered(n) for n in range(12)])
    first = await server.search.Fulltext(pb.FulltextRequest(q="ports", k=3))
    token = first.next_page_token
    assert token
    await expect_status(
        server.search.Fulltext(pb.FulltextRequest(q="servers", k=3, page_token=token)), INVALID
    )
    await expect_status(
        server.search.Hybrid(pb.HybridRequest(q="ports", k=3, page_token=token)), INVALID
    )
    other = pb.Filter(path_prefix="notes/0")
    await expect_status(
        server.search.Fulltext(pb.FulltextRequest(q="ports", k=3, filter=other, page_token=token)),
        INVALID,
    )
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[3] = ord("9") if raw[3] != ord("9") else ord("8")  # the offset's digit
    tampered = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    details = await expect_status(
        server.search.Fulltext(pb.FulltextRequest(q="ports", k=3, page_token=tampered)), INVALID
    )
    assert "page_token" in details
    await expect_status(
        server.search.Fulltext(pb.FulltextRequest(q="ports", k=3, page_token="%%")), INVALID
    )
    await server.collections.CreateCollection(pb.CreateCollectionRequest(name="elsewhere"))
    await expect_status(
        server.search.Fulltext(
            pb.FulltextRequest(q="ports", k=3, collection="elsewhere", page_token=token)
        ),
        INVALID,
    )


async def test_list_documents_pages_and_filters(server: Harness) -> None:
    await index(server, [numbered(n) for n in range(7)])
    paths: list[str] = []
    request = pb.ListDocumentsRequest(page_size=3)
    while True:
        page = await server.index.ListDocuments(request)
        paths += [d.path for d in page.documents]
        if not page.next_page_token:
            break
        request.page_token = page.next_page_token
    assert paths == [f"notes/{n:02d}.md" for n in range(7)]
    odd = pb.Filter(equals=pb.FieldEquals(field="parity", value=text("odd")))
    listed = await server.index.ListDocuments(pb.ListDocumentsRequest(filter=odd))
    assert [d.path for d in listed.documents] == ["notes/01.md", "notes/03.md", "notes/05.md"]
    assert listed.documents[0].metadata["n"].number_value == 1
    got = await server.index.GetDocument(pb.GetDocumentRequest(path="notes/04.md"))
    assert got.document.metadata["parity"].string_value == "even"
    assert got.document.chunk_count >= 1 and got.document.update_time.seconds > 0
    deleted = await server.index.DeleteDocuments(pb.DeleteDocumentsRequest(filter=odd))
    assert deleted.documents_deleted == 3
    await expect_status(server.index.DeleteDocuments(pb.DeleteDocumentsRequest()), INVALID)
    hits = await server.search.Hybrid(pb.HybridRequest(q="note", k=10))
    assert {h.metadata["parity"].string_value for h in hits.hits} == {"even"}


async def test_a_filtered_search_returns_k_hits_whenever_k_match(server: Harness) -> None:
    await index(server, [numbered(n) for n in range(30)])
    band = pb.Filter(range=pb.FieldRange(field="n", gte=10, lt=14))
    for mode in ("Fulltext", "Semantic", "Hybrid"):
        request = getattr(pb, f"{mode}Request")(q="note about ports", k=4, filter=band)
        found = await getattr(server.search, mode)(request)
        assert sorted(h.metadata["n"].number_value for h in found.hits) == [10, 11, 12, 13]
    notes = pb.Filter(
        all=pb.FilterList(
            filters=[
                pb.Filter(path_prefix="notes/"),
                pb.Filter(
                    negate=pb.Filter(one_of=pb.FieldOneOf(field="parity", values=[text("odd")]))
                ),
            ]
        )
    )
    found = await server.search.Semantic(pb.SemanticRequest(q="servers", k=15, filter=notes))
    assert len(found.hits) == 15
    assert {h.metadata["parity"].string_value for h in found.hits} == {"even"}


async def test_one_bad_document_does_not_abort_its_stream(server: Harness) -> None:
    good = [numbered(1), numbered(2)]
    bad = [
        pb.Document(path="nul.md", content="text with \x00 in it"),
        pb.Document(path="meta.md", content="x", metadata={"bad key!": text("v")}),
        pb.Document(path="dim.md", chunks=[pb.ChunkInput(text="t", embedding=[0.1, 0.2, 0.3])]),
        pb.Document(path="type.md", content="x", content_type=99),  # type: ignore[arg-type]
        pb.Document(
            path="nan.md", content="x", metadata={"v": pb.MetadataValue(number_value=float("nan"))}
        ),
    ]
    results = await index(server, [good[0], *bad, good[1]])
    assert [r.outcome for r in results] == [
        OUTCOME.OUTCOME_CREATED,
        *[OUTCOME.OUTCOME_REJECTED] * len(bad),
        OUTCOME.OUTCOME_CREATED,
    ]
    fields = [r.error.field for r in results[1:-1]]
    assert fields == [
        "document.content",
        "document.metadata",
        "document.chunks[0].embedding",
        "document.content_type",
        "document.metadata['v']",
    ]
    assert all(r.error.code == INVALID.value[0] and r.error.message for r in results[1:-1])
    listed = await server.index.ListDocuments(pb.ListDocumentsRequest())
    assert [d.path for d in listed.documents] == ["notes/01.md", "notes/02.md"]


async def test_one_server_serves_a_model_and_a_1536_dimension_collection(
    server: Harness,
) -> None:
    await indexed(server)
    created = await server.collections.CreateCollection(
        pb.CreateCollectionRequest(name="openai", vectors=pb.VECTOR_SOURCE_CALLER, dimension=1536)
    )
    assert created.collection.dimension == 1536
    docs = [
        pb.Document(
            path=f"v/{n}.md",
            title=f"Vector {n}",
            chunks=[
                pb.ChunkInput(heading="H", text=f"vector document {n}", embedding=unit(n, 1536))
            ],
        )
        for n in range(12)
    ]
    results = await index_into(server, "openai", docs)
    assert {r.outcome for r in results} == {OUTCOME.OUTCOME_CREATED}

    mine = await server.search.Semantic(
        pb.SemanticRequest(collection="openai", query_vector=unit(7, 1536), k=3)
    )
    assert mine.hits[0].document_path == "v/7.md"
    assert mine.hits[0].score == pytest.approx(1.0, abs=1e-5)
    hybrid = await server.search.Hybrid(
        pb.HybridRequest(collection="openai", q="vector document", query_vector=unit(3, 1536))
    )
    assert hybrid.hits[0].document_path == "v/3.md"
    default = await server.search.Semantic(pb.SemanticRequest(q="how do I change the port", k=3))
    assert default.hits[0].document_path == "guides/install.md"
    assert not {h.document_path for h in default.hits} & {d.path for d in docs}
    details = await expect_status(
        server.search.Semantic(pb.SemanticRequest(collection="openai", q="vector")), INVALID
    )
    assert "query_vector" in details
    wrong = await index_into(server, "openai", [pb.Document(path="w.md", content="text only")])
    assert wrong[0].outcome == OUTCOME.OUTCOME_REJECTED
    nowhere = await index_into(server, "nowhere", [pb.Document(path="n.md", content="text")])
    assert (nowhere[0].outcome, nowhere[0].error.code, nowhere[0].error.field) == (
        OUTCOME.OUTCOME_REJECTED,
        grpc.StatusCode.NOT_FOUND.value[0],
        "collection",
    )
    listed = await server.collections.ListCollections(pb.ListCollectionsRequest())
    assert [(c.name, c.document_count) for c in listed.collections] == [
        ("default", 5),
        ("openai", 12),
    ]


async def test_collection_calls_answer_with_clear_statuses(server: Harness) -> None:
    calls = server.collections
    await calls.CreateCollection(pb.CreateCollectionRequest(name="team-a"))
    await expect_status(
        calls.CreateCollection(pb.CreateCollectionRequest(name="team-a")),
        grpc.StatusCode.ALREADY_EXISTS,
    )
    await expect_status(
        calls.CreateCollection(pb.CreateCollectionRequest(name="Bad Name")), INVALID
    )
    await expect_status(
        calls.CreateCollection(
            pb.CreateCollectionRequest(name="x", vectors=pb.VECTOR_SOURCE_CALLER)
        ),
        INVALID,
    )
    await expect_status(
        calls.CreateCollection(pb.CreateCollectionRequest(name="x", dimension=1536)), INVALID
    )
    await expect_status(
        calls.CreateCollection(pb.CreateCollectionRequest(name="x", vectors=7)),  # type: ignore[arg-type]
        INVALID,
    )
    await expect_status(
        calls.GetCollection(pb.GetCollectionRequest(name="nope")), grpc.StatusCode.NOT_FOUND
    )
    await expect_status(calls.DeleteCollection(pb.DeleteCollectionRequest(name="default")), INVALID)
    await expect_status(
        server.search.Fulltext(pb.FulltextRequest(q="x", collection="nope")),
        grpc.StatusCode.NOT_FOUND,
    )
    await index_into(server, "team-a", [numbered(1)])
    gone = await calls.DeleteCollection(pb.DeleteCollectionRequest(name="team-a"))
    assert (gone.documents_deleted, gone.chunks_deleted) == (1, 1)
    empty = pb.Filter(equals=pb.FieldEquals(field="x"))
    await expect_status(server.search.Fulltext(pb.FulltextRequest(q="x", filter=empty)), INVALID)
    await expect_status(
        server.search.Fulltext(pb.FulltextRequest(q="x", filter=pb.Filter())), INVALID
    )


async def test_errors_carry_google_rpc_details(server: Harness) -> None:
    """A caller in any language reads the reason and the field from the status details."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await server.search.Fulltext(pb.FulltextRequest(q="port", k=-3))
    details = dict(info.value.trailing_metadata() or ())["grpc-status-details-bin"]
    status = status_pb2.Status.FromString(details)
    assert status.code == INVALID.value[0] and "k must be" in status.message
    reason, violations = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()
    assert status.details[0].Unpack(reason) and status.details[1].Unpack(violations)
    assert (reason.reason, reason.domain) == ("INVALID_ARGUMENT", "docfoundry.dev")
    assert [v.field for v in violations.field_violations] == ["k"]

    with pytest.raises(grpc.aio.AioRpcError) as info:
        await server.collections.GetCollection(pb.GetCollectionRequest(name="nope"))
    status = status_pb2.Status.FromString(
        dict(info.value.trailing_metadata() or ())["grpc-status-details-bin"]
    )
    assert status.details[0].Unpack(reason) and reason.reason == "NOT_FOUND"
    assert len(status.details) == 1


async def test_malformed_values_are_invalid_argument_on_both_backends(server: Harness) -> None:
    """Values that once became zeros, defaults or INTERNAL are refused, the same on both."""
    await index(server, [numbered(1)])
    # Large components are a direction like any other (normalised in float64), not zeros.
    huge = await server.search.Semantic(pb.SemanticRequest(q="x", query_vector=[1e20] * 384))
    assert huge.hits and all(h.score != 0 for h in huge.hits)
    await expect_status(
        server.search.Hybrid(pb.HybridRequest(q="ports", fusion=7)),  # type: ignore[arg-type]
        INVALID,
    )
    await expect_status(server.search.Fulltext(pb.FulltextRequest(q="por\x00t")), INVALID)
    await expect_status(
        server.index.GetDocument(pb.GetDocumentRequest(path="notes/\x0001.md")), INVALID
    )
