"""Operator commands of `docfoundry`: migrate and eval."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path


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


def add_ops_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    add_eval_command(commands)


def _eval(args: argparse.Namespace) -> int:
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


def add_eval_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    evaluate = commands.add_parser(
        "eval", help="measure nDCG@10, Recall@100, MRR@10 and latency on a BEIR data set"
    )
    evaluate.add_argument(
        "dataset", type=Path, help="folder with corpus.jsonl, queries.jsonl and qrels/"
    )
    evaluate.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    evaluate.add_argument("--split", default="test")
    evaluate.add_argument(
        "--modes",
        default="fulltext,semantic,hybrid,hybrid:rrf",
        help="comma-separated; hybrid:score and hybrid:rrf pick the fusion (hybrid: default)",
    )
    evaluate.add_argument("--dsn", help="PostgreSQL to load into (default: a throwaway local one)")
    evaluate.add_argument("--target", help="evaluate a running server instead of starting one")
    evaluate.add_argument("--output", type=Path, help="JSON report path")
    evaluate.add_argument(
        "--embedding-cache",
        type=Path,
        default=DEFAULT_CACHE,
        help=f"embedding cache file (default {DEFAULT_CACHE})",
    )
    evaluate.set_defaults(func=_eval)
    compare = commands.add_parser(
        "eval-compare", help="top-10 agreement of two eval reports (e.g. the two backends)"
    )
    compare.add_argument("first", type=Path)
    compare.add_argument("second", type=Path)
    compare.set_defaults(func=_eval_compare)
