"""The `docfoundry` command: server-side operations here, client commands from
`docfoundry_client.cli` (ingest, search, click, health, delete)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from .config import Settings
from .errors import DocFoundryError
from .interrupts import exit_interrupted
from .logs import configure_logging

log = logging.getLogger("docfoundry_grpc")


def _serve(args: argparse.Namespace) -> int:
    from .allocator import keep_freed_memory
    from .embedding.factory import build_embedder
    from .service.app import serve

    settings: Settings = args.settings
    embedder = build_embedder(
        batch_size=settings.embedding_batch_size,
        cache_path=settings.embedding_cache_path,
        threads=settings.embedding_threads,
        precision=settings.embedding_precision,
    )
    keep_freed_memory()  # after the model's load-time garbage is gone
    asyncio.run(serve(settings, embedder=embedder, ingest=args.ingest))
    return 0


def _init_db(args: argparse.Namespace) -> int:
    from .embedding import model_dimension
    from .storage import build_store

    async def run() -> None:
        settings: Settings = args.settings
        store = build_store(settings.database, dimension=model_dimension())
        await store.open()
        stats = await store.stats()
        await store.close()
        print(
            f"{store.backend} schema v{stats.schema_version} ready: "
            f"{stats.documents} documents, {stats.chunks} chunks, {stats.clicks} clicks"
        )

    asyncio.run(run())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="docfoundry", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the gRPC server (settings from environment)")
    serve.add_argument(
        "--ingest",
        action="append",
        type=Path,
        default=[],
        metavar="PATH",
        help="index these files or folders once the server is up (repeatable)",
    )
    serve.set_defaults(func=_serve)

    init_db = commands.add_parser("init-db", help="create or upgrade the database schema")
    init_db.set_defaults(func=_init_db)

    from .ops_cli import add_ops_commands

    add_ops_commands(commands)

    from .backup_cli import add_backup_commands

    add_backup_commands(commands)

    from .learning_cli import add_learning_commands

    add_learning_commands(commands)

    from docfoundry_client.cli import add_client_commands

    add_client_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.settings = Settings.from_env()
        configure_logging(args.settings.log_level, args.settings.log_format)
        return int(args.func(args))
    except DocFoundryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `docfoundry keys list | head`
        from docfoundry_client.cli import reader_gone

        return reader_gone()
    except OSError as exc:  # a port in use, an unwritable database folder…
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        exit_interrupted()
