"""Client subcommands of the `docfoundry` command: ingest, search, click, health, delete.

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
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import grpc.aio
from tqdm import tqdm

from .client import DocFoundryClient
from .files import count_files, iter_documents
from .models import DEFAULT_TARGET, HealthInfo, SearchResult

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

    ingest = subparsers.add_parser(
        "ingest", parents=[common], help="index files and folders (.md, .html, .txt)"
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
    ingest.set_defaults(func=_runner(_ingest))

    search = subparsers.add_parser("search", parents=[common], help="search the index")
    search.add_argument("query", metavar="QUERY")
    search.add_argument("--mode", choices=("fulltext", "semantic", "hybrid"), default="hybrid")
    search.add_argument("-k", type=int, default=10, metavar="N", help="number of hits")
    search.add_argument("--path-prefix", default="", metavar="P")
    search.add_argument(
        "--fusion", choices=("score", "rrf"), help="hybrid fusion (default: the server's)"
    )
    search.add_argument("--json", action="store_true", help="print the result as JSON")
    search.set_defaults(func=_runner(_search))

    click = subparsers.add_parser("click", parents=[common], help="record a click on a hit")
    click.add_argument("--query", required=True)
    click.add_argument("--chunk-id", type=int, required=True)
    click.add_argument("--position", type=int, required=True, help="1-based rank of the hit")
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
        "delete", parents=[common], help="delete a document with its chunks and clicks"
    )
    delete.add_argument("path", metavar="PATH", help="document path as stored in the index")
    delete.set_defaults(func=_runner(_delete))


def _runner(command: Command) -> Callable[[argparse.Namespace], int]:
    """The one place where failures become `error: …` lines and exit code 1."""

    def run(args: argparse.Namespace) -> int:
        try:
            return asyncio.run(_with_client(command, args))
        except grpc.aio.AioRpcError as exc:
            print(f"error: {exc.code().name}: {exc.details() or ''}", file=sys.stderr)
        except (OSError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
        return 1

    return run


async def _with_client(command: Command, args: argparse.Namespace) -> int:
    async with DocFoundryClient(args.target, timeout=args.timeout) as client:
        return await command(args, client)


async def _ingest(args: argparse.Namespace, client: DocFoundryClient) -> int:
    total = count_files(args.paths, root=args.root)
    documents = iter_documents(args.paths, root=args.root)
    outcomes: Counter[str] = Counter()
    chunks = 0
    started = time.perf_counter()
    with tqdm(total=total, unit="file", file=sys.stderr, dynamic_ncols=True) as progress:
        for batch in _batches(documents, args.batch):
            async for outcome in client.index_documents(batch):
                outcomes[outcome.outcome] += 1
                chunks += outcome.chunk_count
                progress.update(1)
    elapsed = time.perf_counter() - started
    rate = chunks / elapsed if elapsed > 0 else 0.0
    print(
        f"indexed {sum(outcomes.values())} documents: {outcomes['created']} created, "
        f"{outcomes['replaced']} replaced, {outcomes['unchanged']} unchanged, "
        f"{chunks} chunks in {elapsed:.1f} s ({rate:.1f} chunks/s)"
    )
    return 0


async def _search(args: argparse.Namespace, client: DocFoundryClient) -> int:
    result = await client.search(
        args.query, args.mode, k=args.k, path_prefix=args.path_prefix, fusion=args.fusion
    )
    print(_search_json(result) if args.json else _search_text(result))
    return 0


async def _click(args: argparse.Namespace, client: DocFoundryClient) -> int:
    click_id = await client.record_click(
        args.query,
        args.chunk_id,
        position=args.position,
        session_id=args.session_id,
        user_id=args.user_id,
        dwell_time=args.dwell_time,
    )
    print(click_id)
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
        if legs:
            details.append(f"[{', '.join(legs)}]")
        if details:
            lines.append("     " + "  ".join(details))
        if hit.snippet:
            lines.append(f"     {' '.join(hit.snippet.split())}")
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
