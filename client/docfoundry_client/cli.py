"""Client subcommands of the `docfoundry` command: ingest, search, click, health, delete,
documents and collections.

They are registered on the parser the main command builds, so the server and client
commands share one entry point. Every command runs one async client and reports a failed
call as `error: CODE: details` with exit code 1, never as a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import grpc.aio

from .client import DocFoundryClient
from .files import MetadataValue, count_files, iter_documents
from .models import (
    DEFAULT_TARGET,
    CollectionInfo,
    DocumentInfo,
    FilterLike,
    HealthInfo,
    SearchResult,
)
from .security import API_KEY_ENV, tls_credentials

_T = TypeVar("_T")
Command = Callable[[argparse.Namespace, DocFoundryClient], Awaitable[int]]


def add_client_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds the client subcommands; each sets `func(args) -> exit code`."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--target",
        default=os.environ.get("DOCFOUNDRY_TARGET", DEFAULT_TARGET),
        help="server address host:port (default: $DOCFOUNDRY_TARGET or %(default)s)",
    )
    common.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="deadline of each call; an ingest stream has none (default: %(default)s)",
    )
    secure = common.add_argument_group("security")
    secure.add_argument(
        "--tls",
        action="store_true",
        help="connect with TLS, verifying the server with the system's roots or --tls-ca",
    )
    secure.add_argument("--tls-ca", metavar="PEM", help="CA that signed the server (implies --tls)")
    secure.add_argument(
        "--tls-cert", metavar="PEM", help="this client's certificate, for mutual TLS"
    )
    secure.add_argument("--tls-key", metavar="PEM", help="this client's private key")
    secure.add_argument(
        "--api-key",
        default=os.environ.get(API_KEY_ENV),
        metavar="KEY",
        help=f"API key (default: ${API_KEY_ENV}); prefer the variable: arguments show in ps",
    )

    scoped = argparse.ArgumentParser(add_help=False, parents=[common])
    scoped.add_argument(
        "--collection", default="", metavar="NAME", help="collection (default: default)"
    )
    filtered = argparse.ArgumentParser(add_help=False)
    filtered.add_argument(
        "--filter",
        type=_filter,
        default=None,
        metavar="JSON",
        help='a filter as JSON, e.g. \'{"equals": {"field": "product", "value": '
        '{"string_value": "cli"}}}\' (see docs/api.md)',
    )

    ingest = subparsers.add_parser(
        "ingest", parents=[scoped], help="index files and folders (.md, .html, .txt)"
    )
    ingest.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    ingest.add_argument(
        "--batch",
        type=_non_negative,
        default=100,
        metavar="N",
        help="documents per IndexDocuments stream; 0 sends all in one (default: %(default)s)",
    )
    ingest.add_argument(
        "--root",
        type=Path,
        default=None,
        metavar="DIR",
        help="make document paths relative to DIR instead of each folder's parent",
    )
    ingest.add_argument(
        "--metadata",
        type=_metadata_pair,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help='metadata for every document; a JSON value (3, true, ["a","b"]) or a string;'
        " repeat for more keys",
    )
    ingest.set_defaults(func=_runner(_ingest))

    search = subparsers.add_parser("search", parents=[scoped, filtered], help="search the index")
    search.add_argument("query", metavar="QUERY")
    search.add_argument("--mode", choices=("fulltext", "semantic", "hybrid"), default="hybrid")
    search.add_argument("-k", type=int, default=10, metavar="N", help="hits per page")
    search.add_argument("--path-prefix", default="", metavar="P")
    search.add_argument(
        "--page-token", default="", metavar="TOKEN", help="continue from a previous page"
    )
    search.add_argument(
        "--fusion", choices=("score", "rrf"), help="hybrid fusion (default: the server's)"
    )
    search.add_argument(
        "--plain",
        action="store_true",
        help="hybrid: rank without click feedback or the learned ranker",
    )
    search.add_argument("--json", action="store_true", help="print the result as JSON")
    search.set_defaults(func=_runner(_search))

    train = subparsers.add_parser(
        "train-ranker",
        parents=[scoped],
        help="train the collection's learned ranker from its clicks (an admin key)",
    )
    train.set_defaults(func=_runner(_train_ranker))

    click = subparsers.add_parser("click", parents=[common], help="record a click on a hit")
    click.add_argument("--query", default="", help="the query (carried by --impression)")
    click.add_argument("--chunk-id", type=int, required=True)
    click.add_argument(
        "--impression",
        default="",
        metavar="ID",
        help="the search's impression id (search prints it); without it the click is kept "
        "but does not count",
    )
    click.add_argument(
        "--position", type=int, default=0, help="1-based rank of the hit (without --impression)"
    )
    click.add_argument("--session-id", default="")
    click.add_argument("--user-id", default="")
    click.add_argument("--dwell-time", type=float, default=0.0, metavar="SECONDS")
    click.set_defaults(func=_runner(_click))

    health = subparsers.add_parser(
        "health", parents=[common], help="show service health (exit 1 unless SERVING)"
    )
    health.add_argument("--json", action="store_true", help="print the fields as JSON")
    health.set_defaults(func=_runner(_health))

    delete = subparsers.add_parser(
        "delete", parents=[scoped], help="delete a document with its chunks and clicks"
    )
    delete.add_argument("path", metavar="PATH", help="document path as stored in the index")
    delete.set_defaults(func=_runner(_delete))

    _add_document_commands(subparsers, scoped, filtered)
    _add_collection_commands(subparsers, common)


def _add_document_commands(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    scoped: argparse.ArgumentParser,
    filtered: argparse.ArgumentParser,
) -> None:
    documents = subparsers.add_parser("documents", help="list, show or delete stored documents")
    actions = documents.add_subparsers(dest="action", required=True)
    listing = actions.add_parser(
        "list", parents=[scoped, filtered], help="documents by path, a page at a time"
    )
    listing.add_argument("--page-size", type=_non_negative, default=0, metavar="N")
    listing.add_argument("--page-token", default="", metavar="TOKEN")
    listing.add_argument("--json", action="store_true", help="print the page as JSON")
    listing.set_defaults(func=_runner(_documents_list))
    show = actions.add_parser("get", parents=[scoped], help="one document with its metadata")
    show.add_argument("path", metavar="PATH")
    show.set_defaults(func=_runner(_documents_get))
    purge = actions.add_parser(
        "delete", parents=[scoped, filtered], help="delete every document matching --filter"
    )
    purge.set_defaults(func=_runner(_documents_delete))


def _add_collection_commands(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    collections = subparsers.add_parser("collections", help="create, list, show or delete")
    actions = collections.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", parents=[common], help="every collection")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=_runner(_collections_list))
    create = actions.add_parser("create", parents=[common], help="a new, empty collection")
    create.add_argument("name", metavar="NAME")
    create.add_argument(
        "--vectors",
        choices=("model", "caller"),
        default="model",
        help="the server's model, or vectors the caller sends (default: %(default)s)",
    )
    create.add_argument(
        "--dimension", type=_non_negative, default=0, help="caller vectors' dimension"
    )
    create.add_argument("--description", default="")
    create.set_defaults(func=_runner(_collections_create))
    show = actions.add_parser("get", parents=[common], help="one collection with its counts")
    show.add_argument("name", metavar="NAME")
    show.set_defaults(func=_runner(_collections_get))
    drop = actions.add_parser(
        "delete", parents=[common], help="delete a collection and everything it holds"
    )
    drop.add_argument("name", metavar="NAME")
    drop.set_defaults(func=_runner(_collections_delete))


def _runner(command: Command) -> Callable[[argparse.Namespace], int]:
    """The one place where failures become `error: …` lines and exit code 1."""

    def run(args: argparse.Namespace) -> int:
        try:
            return asyncio.run(_with_client(command, args))
        except grpc.aio.AioRpcError as exc:
            print(f"error: {exc.code().name}: {exc.details() or ''}", file=sys.stderr)
        except BrokenPipeError:
            return reader_gone()
        except (OSError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
        return 1

    return run


def reader_gone() -> int:
    """The reader of our output left early (`… | head`): not an error to report. Standard
    output goes to /dev/null, so the interpreter's last flush cannot fail too, and the exit
    status is a pipe's (128 + SIGPIPE), as `head` users expect from other tools."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 141


async def _with_client(command: Command, args: argparse.Namespace) -> int:
    credentials = None
    if args.tls or args.tls_ca or args.tls_cert:
        credentials = tls_credentials(
            ca_file=args.tls_ca, cert_file=args.tls_cert, key_file=args.tls_key
        )
    async with DocFoundryClient(
        args.target, timeout=args.timeout, credentials=credentials, api_key=args.api_key or ""
    ) as client:
        return await command(args, client)


async def _ingest(args: argparse.Namespace, client: DocFoundryClient) -> int:
    total = count_files(args.paths, root=args.root)
    documents = iter_documents(args.paths, root=args.root, metadata=dict(args.metadata))
    outcomes: Counter[str] = Counter()
    chunks = 0
    started = time.perf_counter()
    with _progress_bar(total) as advance:
        for batch in _batches(documents, args.batch):
            async for outcome in client.index_documents(batch, collection=args.collection):
                outcomes[outcome.outcome] += 1
                chunks += outcome.chunk_count
                rejected = outcome.outcome == "rejected"
                advance(f"rejected {outcome.path}: {outcome.error}" if rejected else "")
    elapsed = time.perf_counter() - started
    rate = chunks / elapsed if elapsed > 0 else 0.0
    print(
        f"indexed {sum(outcomes.values())} documents: {outcomes['created']} created, "
        f"{outcomes['replaced']} replaced, {outcomes['unchanged']} unchanged, "
        f"{outcomes['rejected']} rejected, "
        f"{chunks} chunks in {elapsed:.1f} s ({rate:.1f} chunks/s)"
    )
    return 1 if outcomes["rejected"] else 0


@contextmanager
def _progress_bar(total: int) -> Iterator[Callable[[str], None]]:
    """A function that moves a bar on standard error on by one file and prints its message,
    if any, above the bar. Without tqdm (the client's `cli` extra) there is no bar."""
    try:
        from tqdm import tqdm
    except ModuleNotFoundError:

        def say(message: str) -> None:
            if message:
                print(message, file=sys.stderr)

        yield say
        return
    with tqdm(total=total, unit="file", file=sys.stderr, dynamic_ncols=True) as bar:

        def advance(message: str) -> None:
            bar.update(1)
            if message:
                bar.write(message, file=sys.stderr)

        yield advance


async def _search(args: argparse.Namespace, client: DocFoundryClient) -> int:
    result = await client.search(
        args.query,
        args.mode,
        k=args.k,
        path_prefix=args.path_prefix,
        fusion=args.fusion,
        collection=args.collection,
        filter=args.filter,
        page_token=args.page_token,
        plain_ranking=args.plain,
    )
    print(_search_json(result) if args.json else _search_text(result))
    return 0


async def _documents_list(args: argparse.Namespace, client: DocFoundryClient) -> int:
    page = await client.list_documents(
        collection=args.collection,
        filter=args.filter,
        page_size=args.page_size,
        page_token=args.page_token,
    )
    if args.json:
        print(_to_json(dataclasses.asdict(page)))
        return 0
    for document in page.documents:
        print(_document_line(document))
    if page.next_page_token:
        print(f"next page: --page-token {page.next_page_token}")
    return 0


async def _documents_get(args: argparse.Namespace, client: DocFoundryClient) -> int:
    document = await client.get_document(args.path, collection=args.collection)
    print(_to_json(dataclasses.asdict(document)))
    return 0


async def _documents_delete(args: argparse.Namespace, client: DocFoundryClient) -> int:
    if args.filter is None:
        raise ValueError("--filter is required; '{\"all\": {}}' deletes every document")
    deleted = await client.delete_documents(args.filter, collection=args.collection)
    print(
        f"deleted {deleted.documents_deleted} documents: {deleted.chunks_deleted} chunks, "
        f"{deleted.clicks_deleted} clicks"
    )
    return 0


async def _collections_list(args: argparse.Namespace, client: DocFoundryClient) -> int:
    found = await client.list_collections()
    if args.json:
        print(_to_json([dataclasses.asdict(c) for c in found]))
    else:
        for collection in found:
            print(_collection_line(collection))
    return 0


async def _collections_create(args: argparse.Namespace, client: DocFoundryClient) -> int:
    created = await client.create_collection(
        args.name, vectors=args.vectors, dimension=args.dimension, description=args.description
    )
    print(f"created {_collection_line(created)}")
    return 0


async def _collections_get(args: argparse.Namespace, client: DocFoundryClient) -> int:
    print(_to_json(dataclasses.asdict(await client.get_collection(args.name))))
    return 0


async def _collections_delete(args: argparse.Namespace, client: DocFoundryClient) -> int:
    deleted = await client.delete_collection(args.name)
    print(
        f"deleted {args.name}: {deleted.documents_deleted} documents, "
        f"{deleted.chunks_deleted} chunks, {deleted.clicks_deleted} clicks"
    )
    return 0


def _document_line(document: DocumentInfo) -> str:
    metadata = json.dumps(document.metadata, ensure_ascii=False) if document.metadata else ""
    return f"{document.path}  {document.chunk_count} chunks  {metadata}".rstrip()


def _collection_line(collection: CollectionInfo) -> str:
    return (
        f"{collection.name}: {collection.dimension}-d {collection.vectors} vectors, "
        f"{collection.document_count} documents, {collection.chunk_count} chunks"
    )


async def _train_ranker(args: argparse.Namespace, client: DocFoundryClient) -> int:
    def progress(done: int, total: int) -> None:
        print(f"scored the candidates of {done} of {total} clicked queries", file=sys.stderr)

    ranker = await client.train_ranker(args.collection, progress=progress)
    state = "live" if ranker.live else "stored, not live (plain fusion did as well)"
    print(
        f"ranker v{ranker.version} of {args.collection or 'default'}: {state}; nDCG@10 on "
        f"{ranker.validation_queries} held-out clicked queries {ranker.validation_ndcg:.4f}, "
        f"plain fusion {ranker.plain_validation_ndcg:.4f} (fitted on {ranker.fitted_queries})"
    )
    return 0


async def _click(args: argparse.Namespace, client: DocFoundryClient) -> int:
    receipt = await client.record_click(
        args.query,
        args.chunk_id,
        impression_id=args.impression,
        position=args.position,
        session_id=args.session_id,
        user_id=args.user_id,
        dwell_time=args.dwell_time,
    )
    print(f"click {receipt.click_id}: {receipt.outcome}")
    return 0


async def _health(args: argparse.Namespace, client: DocFoundryClient) -> int:
    info = await client.health()
    print(_to_json(dataclasses.asdict(info)) if args.json else _health_text(info))
    return 0 if info.serving else 1


async def _delete(args: argparse.Namespace, client: DocFoundryClient) -> int:
    deleted = await client.delete_document(args.path)
    print(
        f"deleted {deleted.path}: {deleted.chunks_deleted} chunks, {deleted.clicks_deleted} clicks"
    )
    return 0


def _search_text(result: SearchResult) -> str:
    lines = [f"{result.search_type}: {len(result.hits)} hits in {result.took_ms:.1f} ms"]
    if result.next_page_token:
        lines[0] += f" (next page: --page-token {result.next_page_token})"
    for rank, hit in enumerate(result.hits, start=1):
        lines.append(f"{rank:>3}. {hit.score:.4f}  {hit.link}")
        label = hit.title
        if hit.heading and hit.heading != hit.title:
            label = f"{hit.title} › {hit.heading}" if hit.title else hit.heading
        legs = [
            f"{name} #{leg.rank}"
            for name, leg in (("fulltext", hit.fulltext), ("semantic", hit.semantic))
            if leg is not None
        ]
        details = [label] if label else []
        details.append(f"chunk {hit.chunk_id}")
        if legs:
            details.append(f"[{', '.join(legs)}]")
        if details:
            lines.append("     " + "  ".join(details))
        if hit.snippet:
            lines.append(f"     {' '.join(hit.snippet.split())}")
    if result.hits and result.impression_id:
        lines.append(f"impression (for click --impression): {result.impression_id}")
    return "\n".join(lines)


def _search_json(result: SearchResult) -> str:
    data = dataclasses.asdict(result)
    for hit, raw in zip(result.hits, data["hits"], strict=True):
        raw["link"] = hit.link
    return _to_json(data)


def _health_text(info: HealthInfo) -> str:
    fields = dataclasses.asdict(info)
    pool = fields.pop("pool")
    if pool is not None:
        fields["pool"] = " ".join(f"{key}={value}" for key, value in pool.items())
    if info.timestamp is not None:
        fields["timestamp"] = info.timestamp.isoformat()
    width = max(len(key) for key in fields)
    return "\n".join(f"{key:<{width}}  {value}" for key, value in fields.items())


def _to_json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, default=_json_default)


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def _batches(items: Iterator[_T], size: int) -> Iterator[Iterator[_T]]:
    """Lazy consecutive slices; each must be consumed before the next is taken."""
    if size <= 0:
        yield items
        return
    for first in items:
        yield itertools.chain([first], itertools.islice(items, size - 1))


def _filter(text: str) -> FilterLike:
    """A filter's JSON form; checked when the request is built (a ValueError then)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"--filter is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("--filter must be a JSON object")
    return value


def _metadata_pair(text: str) -> tuple[str, MetadataValue]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return key, raw
    if isinstance(value, str | bool | int | float) or (
        isinstance(value, list) and all(isinstance(v, str) for v in value)
    ):
        return key, value
    return key, raw


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry point with only the client commands, for installs without the server."""
    parser = argparse.ArgumentParser(prog="docfoundry-client", description=__doc__)
    add_client_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
