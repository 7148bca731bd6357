"""Commands of `docfoundry` about learning from clicks: eval-clicks (simulated users; the
ranker is trained through the server, see `docfoundry train-ranker`)."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
from pathlib import Path

from .errors import InvalidArgumentError


def _eval_clicks(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("pytrec_eval") is None:
        raise InvalidArgumentError(
            "docfoundry eval-clicks scores with pytrec_eval, of the `eval` extra: "
            "pip install 'docfoundry[eval]' (make run installs it)"
        )
    from docfoundry_client import DocFoundryClient

    from .config import Settings
    from .evaluation.beir import load_dataset
    from .evaluation.clicks import SimulatedUsers, evaluate_clicks
    from .evaluation.runner import load, local_server
    from .interrupts import stop_on_sigterm
    from .text import query_key, query_terms

    stop_on_sigterm()
    history = load_dataset(args.dataset, args.split)
    held = load_dataset(args.dataset, args.held_apart_split)
    history_queries = dict(list(history.queries.items())[: args.queries or None])
    # Held apart means without history: a held-out query whose analysed text is one of the
    # history queries' (SciFact repeats a dozen claims across its splits) has history.
    with_history = {query_key(query_terms(t)) for t in history_queries.values()}
    held_queries = {
        q: t
        for q, t in held.queries.items()
        if q not in history.queries and query_key(query_terms(t)) not in with_history
    }
    held_queries = dict(list(held_queries.items())[: args.queries or None])
    users = SimulatedUsers(sessions=args.sessions, noise=args.noise, eta=args.eta, seed=args.seed)
    bound = Settings.from_env().search.clicks.source_bound

    async def run() -> None:
        async with local_server(args.backend, args.dsn, cache_path=args.embedding_cache) as address:
            async with DocFoundryClient(address, timeout=120) as client:

                async def train() -> str:
                    ranker = await client.train_ranker()
                    return (
                        f"v{ranker.version} {'live' if ranker.live else 'not live'} "
                        f"(held-out clicked queries: nDCG@10 {ranker.validation_ndcg:.4f}, "
                        f"plain fusion {ranker.plain_validation_ndcg:.4f})"
                    )

                await load(client, history)
                report = await evaluate_clicks(
                    client,
                    history,
                    history_queries,
                    held_queries,
                    held.qrels,
                    users,
                    attack_clicks=args.attack_clicks,
                    bound=bound,
                    train=None if args.no_ranker else train,
                )
        print(report.table())
        output = (
            args.output or Path("eval-results") / f"{history.name}-clicks-{report.backend}.json"
        )
        report.write_json(output)
        print(f"wrote {output}")

    asyncio.run(run())
    return 0


def add_learning_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from .ops_cli import add_local_eval_arguments

    evaluate = commands.add_parser(
        "eval-clicks",
        help="simulate position-biased, noisy users from a BEIR data set's judgments and "
        "measure hybrid nDCG@10 before and after their clicks",
    )
    add_local_eval_arguments(evaluate)
    evaluate.add_argument(
        "--split", default="train", help="judgments the users click by (default: %(default)s)"
    )
    evaluate.add_argument(
        "--held-apart-split",
        default="test",
        help="queries nobody clicks on, measured too (default: %(default)s)",
    )
    evaluate.add_argument("--sessions", type=int, default=10, help="users per query")
    evaluate.add_argument(
        "--noise", type=float, default=0.2, help="click probability of an irrelevant result"
    )
    evaluate.add_argument("--eta", type=float, default=1.0, help="users examine rank r w.p. r^-eta")
    evaluate.add_argument("--seed", type=int, default=1)
    evaluate.add_argument(
        "--queries", type=int, default=0, help="use only the first N queries of each split"
    )
    evaluate.add_argument(
        "--attack-clicks",
        type=int,
        default=1000,
        help="clicks of one adversary session on an irrelevant result (0: no attack)",
    )
    evaluate.add_argument(
        "--no-ranker",
        action="store_true",
        help="measure the per-query click prior alone, without training the learned ranker",
    )
    evaluate.set_defaults(func=_eval_clicks)
