"""API keys, scopes and TLS, through a real server on both backends: anonymous calls are
UNAUTHENTICATED except health Check, a key does only what its scopes and collections allow,
keys are stored hashed and revocable from the command line, and TLS (with and without client
certificates) admits exactly the clients it should."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import ssl
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
import trustme
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_client import CollectorRegistry

from docfoundry.v1 import search_pb2 as pb
from docfoundry_client import DocFoundryClient, tls_credentials
from docfoundry_grpc.config import DatabaseConfig, Settings, TlsConfig
from docfoundry_grpc.devdb import free_port
from docfoundry_grpc.embedding import MiniLMEmbedder
from docfoundry_grpc.errors import InvalidArgumentError
from docfoundry_grpc.keys import new_key
from docfoundry_grpc.models import Scope
from docfoundry_grpc.service.app import build_app, start_metrics

from .conftest import Harness, run_cli, start_harness, stop_harness

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
DENIED = grpc.StatusCode.PERMISSION_DENIED
DOCS = [
    pb.Document(path="guides/a.md", title="A", content="# Ports\n\nThe port is 50051."),
    pb.Document(path="guides/b.md", title="B", content="# Cats\n\nCats purr when happy."),
]


@pytest.fixture
async def keyed(database: DatabaseConfig, embedder: MiniLMEmbedder) -> AsyncIterator[Harness]:
    """A server with keys on (plaintext, on loopback) and a key cache of 0.2 s."""
    harness = await start_harness(database, embedder, auth="keys", auth_cache_seconds=0.2)
    yield harness
    await stop_harness(harness)


async def make_key(harness: Harness, *scopes: Scope, collections: tuple[str, ...] = ()) -> str:
    token, key = new_key("test", scopes, collections)
    await harness.app.store.create_api_key(key)
    return token


def bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


async def status_of(call: Any) -> grpc.StatusCode:
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def every_method() -> list[tuple[str, Any, bool]]:
    """(path, empty request, is a stream) for every method of the three services."""
    methods = []
    for service in pb.DESCRIPTOR.services_by_name.values():
        for method in service.methods:
            request = getattr(pb, method.input_type.name)()
            path = f"/{service.full_name}/{method.name}"
            methods.append((path, request, method.client_streaming))
    return methods


async def call_raw(
    channel: grpc.aio.Channel, path: str, request: Any, stream: bool, metadata: Any = None
) -> grpc.StatusCode:
    serialize = type(request).SerializeToString
    if stream:
        call: Any = channel.stream_stream(path, request_serializer=serialize)
        responses = call(iter([request]), metadata=metadata, timeout=10)
        try:
            async for _ in responses:
                pass
        except grpc.aio.AioRpcError as exc:
            return exc.code()
        return grpc.StatusCode.OK
    if path.endswith("/TrainRanker"):  # the one server stream
        streamed: Any = channel.unary_stream(path, request_serializer=serialize)
        try:
            async for _ in streamed(request, metadata=metadata, timeout=10):
                pass
        except grpc.aio.AioRpcError as exc:
            return exc.code()
        return grpc.StatusCode.OK
    unary: Any = channel.unary_unary(path, request_serializer=serialize)
    return await status_of(unary(request, metadata=metadata, timeout=10))


async def test_anonymous_calls_are_refused_except_health_check(keyed: Harness) -> None:
    methods = every_method()
    assert len(methods) == 15
    codes = {
        path: await call_raw(keyed.channel, path, request, stream)
        for path, request, stream in methods
    }
    assert codes == dict.fromkeys(codes, UNAUTHENTICATED)
    check = await keyed.health.Check(health_pb2.HealthCheckRequest())
    assert check.status == health_pb2.HealthCheckResponse.SERVING
    assert await status_of(keyed.health.List(health_pb2.HealthListRequest())) == UNAUTHENTICATED
    reflection = reflection_pb2_grpc.ServerReflectionStub(keyed.channel)
    listing = reflection_pb2.ServerReflectionRequest(list_services="")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        async for _ in reflection.ServerReflectionInfo(iter([listing])):
            pass
    assert refused.value.code() == UNAUTHENTICATED
    assert "authorization: Bearer" in (refused.value.details() or "")


async def test_a_key_does_what_its_scopes_allow(keyed: Harness) -> None:
    reader = await make_key(keyed, Scope.SEARCH)
    writer = await make_key(keyed, Scope.WRITE)
    admin = await make_key(keyed, Scope.ADMIN)
    index = keyed.index.IndexDocuments

    async def ingest(token: str) -> grpc.StatusCode:
        requests = iter([pb.IndexDocumentsRequest(document=d) for d in DOCS])
        try:
            async for _ in index(requests, metadata=bearer(token)):
                pass
        except grpc.aio.AioRpcError as exc:
            return exc.code()
        return grpc.StatusCode.OK

    # Refused before the server reads a message, while the caller is still writing: every
    # try must see the server's status, not the client library's INTERNAL for a failed write.
    assert [await ingest(reader) for _ in range(10)] == [DENIED] * 10
    assert await ingest(writer) == grpc.StatusCode.OK
    search = keyed.search.Fulltext(pb.FulltextRequest(q="port"), metadata=bearer(reader))
    assert (await search).hits
    assert await status_of(
        keyed.search.Fulltext(pb.FulltextRequest(q="port"), metadata=bearer(writer))
    ) == (DENIED)
    delete = pb.DeleteDocumentRequest(path="guides/a.md")
    assert await status_of(keyed.index.DeleteDocument(delete, metadata=bearer(reader))) == DENIED
    create = pb.CreateCollectionRequest(name="more")
    assert (
        await status_of(keyed.collections.CreateCollection(create, metadata=bearer(writer)))
        == DENIED
    )
    assert (
        await status_of(keyed.collections.CreateCollection(create, metadata=bearer(admin)))
        == grpc.StatusCode.OK
    )
    assert (
        await status_of(keyed.index.DeleteDocument(delete, metadata=bearer(admin)))
        == grpc.StatusCode.OK
    )
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await keyed.index.DeleteDocument(delete, metadata=bearer(reader))
    assert "'write'" in (denied.value.details() or "")


async def test_a_key_limited_to_collections_stays_in_them(keyed: Harness) -> None:
    admin = await make_key(keyed, Scope.ADMIN)
    for name in ("docs", "blog"):
        await keyed.collections.CreateCollection(
            pb.CreateCollectionRequest(name=name), metadata=bearer(admin)
        )
    docs_only = await make_key(keyed, Scope.SEARCH, Scope.WRITE, collections=("docs",))

    async def search(collection: str) -> grpc.StatusCode:
        request = pb.HybridRequest(q="port", collection=collection)
        return await status_of(keyed.search.Hybrid(request, metadata=bearer(docs_only)))

    assert await search("docs") == grpc.StatusCode.OK
    assert await search("blog") == DENIED
    assert await search("") == DENIED  # the default collection
    listing = pb.ListCollectionsRequest()
    assert (
        await status_of(keyed.collections.ListCollections(listing, metadata=bearer(docs_only)))
        == DENIED
    )
    wrong = [
        pb.IndexDocumentsRequest(collection="docs", document=DOCS[0]),
        pb.IndexDocumentsRequest(collection="blog", document=DOCS[1]),
    ]
    with pytest.raises(grpc.aio.AioRpcError) as stream:
        async for _ in keyed.index.IndexDocuments(iter(wrong), metadata=bearer(docs_only)):
            pass
    assert stream.value.code() == DENIED and "'blog'" in (stream.value.details() or "")
    blog = await keyed.index.ListDocuments(
        pb.ListDocumentsRequest(collection="blog"), metadata=bearer(admin)
    )
    assert not blog.documents  # the refused message stored nothing


async def test_bad_and_revoked_keys_are_unauthenticated_and_never_echoed(
    keyed: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = await make_key(keyed, Scope.SEARCH)
    _, key_id, secret = token.split("_", 2)
    wrong_secret = f"dfk_{key_id}_{secret[::-1]}"
    request = pb.FulltextRequest(q="port")
    for metadata in (
        (("authorization", "Basic abc"),),
        bearer("not-a-key"),
        bearer(wrong_secret),
        bearer(f"dfk_{'0' * 16}_{secret}"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await keyed.search.Fulltext(request, metadata=metadata)
        assert refused.value.code() == UNAUTHENTICATED
        assert secret not in (refused.value.details() or "")
        assert secret[::-1] not in (refused.value.details() or "")
    assert await status_of(keyed.search.Fulltext(request, metadata=bearer(token))) == (
        grpc.StatusCode.OK
    )
    assert await keyed.app.store.revoke_api_key(key_id)
    await asyncio.sleep(0.3)  # the key cache's period
    with pytest.raises(grpc.aio.AioRpcError) as revoked:
        await keyed.search.Fulltext(request, metadata=bearer(token))
    assert revoked.value.code() == UNAUTHENTICATED and "revoked" in (revoked.value.details() or "")
    health = await keyed.search.Health(
        pb.HealthRequest(), metadata=bearer(await make_key(keyed, Scope.SEARCH))
    )
    assert secret not in str(health)
    assert secret not in caplog.text and secret[::-1] not in caplog.text


async def test_clicks_are_attributed_to_their_key(keyed: Harness, database: DatabaseConfig) -> None:
    writer = await make_key(keyed, Scope.WRITE, Scope.SEARCH)
    async for _ in keyed.index.IndexDocuments(
        iter([pb.IndexDocumentsRequest(document=d) for d in DOCS]), metadata=bearer(writer)
    ):
        pass
    hit = (await keyed.search.Fulltext(pb.FulltextRequest(q="purr"), metadata=bearer(writer))).hits[
        0
    ]
    click = pb.RecordClickRequest(query="purr", chunk_id=hit.chunk_id, position=1)
    await keyed.search.RecordClick(click, metadata=bearer(writer))
    key_id = writer.split("_")[1]
    query = "SELECT key_id FROM click_feedback"
    if database.type == "sqlite":
        with sqlite3.connect(database.sqlite_path) as connection:
            stored = [row[0] for row in connection.execute(query)]
    else:
        connection = await asyncpg.connect(database.postgres.url)
        try:
            stored = [row[0] for row in await connection.fetch(query)]
        finally:
            await connection.close()
    assert stored == [key_id]


async def test_keys_are_managed_from_the_command_line_beside_a_running_server(
    tmp_path: Path, embedder: MiniLMEmbedder
) -> None:
    """`docfoundry keys` opens the database a running server holds (the server keeps no
    keys in memory), prints the token once, lists no secrets, and revokes."""
    path = tmp_path / "keys.db"
    database = DatabaseConfig(type="sqlite", sqlite_path=path)
    harness = await start_harness(database, embedder, auth="keys", auth_cache_seconds=0.2)
    env = {"SQLITE_PATH": str(path)}
    try:
        created = await run_cli("keys", "create", "docs site", "--scope", "search", env=env)
        assert created.returncode == 0, created.stderr
        token = created.stdout.strip()
        _, key_id, secret = token.split("_", 2)
        assert "only copy" in created.stderr
        async with DocFoundryClient(harness.target, api_key=token) as client:
            assert (await client.health()).document_count == 0
        listed = await run_cli("keys", "list", env=env)
        assert key_id in listed.stdout and "docs site" in listed.stdout
        assert secret not in listed.stdout and "active" in listed.stdout
        with sqlite3.connect(path) as connection:
            [(stored,)] = connection.execute("SELECT secret_hash FROM api_keys").fetchall()
        assert secret not in stored and len(stored) == 64
        revoked = await run_cli("keys", "revoke", key_id, env=env)
        assert revoked.returncode == 0, revoked.stderr
        assert (await run_cli("keys", "revoke", key_id, env=env)).returncode == 1
        await asyncio.sleep(0.3)
        async with DocFoundryClient(harness.target, api_key=token) as client:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await client.health()
        assert refused.value.code() == UNAUTHENTICATED
        bad = await run_cli(
            "keys", "create", "x", "--scope", "search", "--collection", "Bad!", env=env
        )
        assert bad.returncode == 2 and "collection" in bad.stderr
    finally:
        await stop_harness(harness)


# TLS ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_files(ca: trustme.CA, tmp_path: Path) -> dict[str, Path]:
    """Server certificate and key for 127.0.0.1 and localhost, the CA that signed it, and
    a client certificate from the same CA."""
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("client.test")
    files = {
        "ca": tmp_path / "ca.pem",
        "cert": tmp_path / "server.pem",
        "key": tmp_path / "server.key",
        "client_cert": tmp_path / "client.pem",
        "client_key": tmp_path / "client.key",
    }
    ca.cert_pem.write_to_path(str(files["ca"]))
    server.cert_chain_pems[0].write_to_path(str(files["cert"]))
    server.private_key_pem.write_to_path(str(files["key"]))
    client.cert_chain_pems[0].write_to_path(str(files["client_cert"]))
    client.private_key_pem.write_to_path(str(files["client_key"]))
    return files


async def health_over(target: str, credentials: grpc.ChannelCredentials | None) -> grpc.StatusCode:
    channel = (
        grpc.aio.secure_channel(target, credentials)
        if credentials
        else grpc.aio.insecure_channel(target)
    )
    async with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return await status_of(stub.Check(health_pb2.HealthCheckRequest(), timeout=5))


@pytest.mark.parametrize("mutual", [False, True], ids=["tls", "mutual-tls"])
async def test_tls_admits_the_clients_it_should(
    mutual: bool, tls_files: dict[str, Path], tmp_path: Path, embedder: MiniLMEmbedder
) -> None:
    tls = TlsConfig(tls_files["cert"], tls_files["key"], tls_files["ca"] if mutual else None)
    database = DatabaseConfig(type="sqlite", sqlite_path=tmp_path / "tls.db")
    harness = await start_harness(database, embedder, tls=tls, grpc_host="localhost")
    target = f"localhost:{harness.app.port}"
    ok = grpc.StatusCode.OK
    try:
        with_ca = tls_credentials(ca_file=tls_files["ca"])
        with_cert = tls_credentials(
            ca_file=tls_files["ca"],
            cert_file=tls_files["client_cert"],
            key_file=tls_files["client_key"],
        )
        assert await health_over(target, None) == grpc.StatusCode.UNAVAILABLE  # plaintext
        assert await health_over(target, grpc.ssl_channel_credentials()) == (
            grpc.StatusCode.UNAVAILABLE  # the system's roots do not know this CA
        )
        assert await health_over(target, with_ca) == (grpc.StatusCode.UNAVAILABLE if mutual else ok)
        assert await health_over(target, with_cert) == ok
        async with DocFoundryClient(target, credentials=with_cert) as client:
            assert (await client.health()).document_count == 0
    finally:
        await stop_harness(harness)


async def test_the_cli_speaks_tls(
    tls_files: dict[str, Path], tmp_path: Path, embedder: MiniLMEmbedder
) -> None:
    tls = TlsConfig(tls_files["cert"], tls_files["key"], tls_files["ca"])
    database = DatabaseConfig(type="sqlite", sqlite_path=tmp_path / "cli.db")
    harness = await start_harness(database, embedder, tls=tls, grpc_host="localhost")
    target = f"localhost:{harness.app.port}"
    try:
        plain = await run_cli("health", "--target", target, "--timeout", "5")
        assert plain.returncode == 1 and "UNAVAILABLE" in plain.stderr
        secured = await run_cli(
            "health",
            "--target",
            target,
            "--tls-ca",
            str(tls_files["ca"]),
            "--tls-cert",
            str(tls_files["client_cert"]),
            "--tls-key",
            str(tls_files["client_key"]),
            "--json",
        )
        assert secured.returncode == 0, secured.stderr
        assert '"status": "SERVING"' in secured.stdout
    finally:
        await stop_harness(harness)


def test_metrics_endpoint_serves_tls_when_asked(tls_files: dict[str, Path]) -> None:
    tls = TlsConfig(tls_files["cert"], tls_files["key"], None)
    port = free_port()
    settings = replace(Settings(), metrics_port=port, metrics_tls=True, tls=tls)
    server = start_metrics(settings, CollectorRegistry())
    assert server is not None
    try:
        context = ssl.create_default_context(cafile=str(tls_files["ca"]))
        with urllib.request.urlopen(f"https://localhost:{port}/metrics", context=context) as r:
            assert r.status == 200
        with pytest.raises(OSError):  # plain HTTP to a TLS port gets no answer it can use
            urllib.request.urlopen(f"http://localhost:{port}/metrics", timeout=5).read()
    finally:
        server.shutdown()
        server.server_close()


async def test_plaintext_off_loopback_needs_an_explicit_waiver(
    tmp_path: Path, embedder: MiniLMEmbedder
) -> None:
    settings = Settings.from_env({"GRPC_HOST": "0.0.0.0", "SQLITE_PATH": str(tmp_path / "x.db")})
    assert settings.auth == "keys"  # keys are on by default off loopback
    with pytest.raises(InvalidArgumentError, match="TLS_CERT_FILE"):
        build_app(settings, embedder=embedder)
    waived = Settings.from_env({"GRPC_HOST": "0.0.0.0", "INSECURE_PLAINTEXT": "true"})
    waived.check_exposure()
    assert Settings.from_env({}).auth == "none"  # loopback: plaintext and no keys
    with pytest.raises(InvalidArgumentError, match="go together"):
        Settings.from_env({"TLS_CERT_FILE": "/x.pem"})


async def test_training_a_ranker_takes_an_admin_key(keyed: Harness) -> None:
    request = pb.TrainRankerRequest()
    path = "/docfoundry.v1.CollectionService/TrainRanker"
    for scope, expected in (
        (Scope.SEARCH, DENIED),
        (Scope.WRITE, DENIED),
        (Scope.ADMIN, grpc.StatusCode.FAILED_PRECONDITION),  # allowed: no clicks yet
    ):
        token = await make_key(keyed, scope)
        assert await call_raw(keyed.channel, path, request, False, bearer(token)) == expected
