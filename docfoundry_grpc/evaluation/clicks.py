"""`docfoundry eval-clicks`: simulated users click on what the server shows them, over gRPC,
and nDCG@10 is measured before and after, for the queries they searched and for held-apart
queries that nobody clicked on. The click model of these users (docs/clicks.md):

- A user sees the top `depth` hits of a Hybrid search, and examines rank r with
  probability (1/r)^eta: position bias.
- An examined result is clicked with probability 1 − noise if it is relevant (judged > 0
  in the data set's qrels) and with probability `noise` if it is not.
- A relevant click is followed by a long dwell (30–120 s); an irrelevant one by a short
  dwell (1–8 s, a bounce) half of the time, and a long one otherwise.
- Every user is a new session; the same query is searched by `sessions` users one after
  the other, each seeing the ranking the earlier ones' clicks made.

Randomness is seeded per (session, query), so two backends that rank alike get the same
clicks. The adversary then sends `attack_clicks` clicks from one session on an irrelevant
result of one query, and the report says how far it moved and whether any other query's
ranking changed.
"""

from __future__ import annotations

import asyncio
import json
import random
import zlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from .beir import BeirDataset
from .scoring import score_run

if TYPE_CHECKING:
    from docfoundry_client import DocFoundryClient, SearchResult

DOC_DEPTH = 10
CHUNK_DEPTH = 30  # chunks asked for, so that DOC_DEPTH distinct documents remain


@dataclass(frozen=True)
class SimulatedUsers:
    sessions: int = 10
    noise: float = 0.2
    eta: float = 1.0
    depth: int = 10
    seed: int = 1
    concurrency: int = 4


@dataclass(frozen=True)
class AttackResult:
    query_id: str
    clicks: int
    counted: int
    rank_before: int
    rank_after: int
    score_gain: float  # what the attack added to the result's score, over the top score
    bound: float
    other_queries_changed: int


@dataclass
class ClickEvalReport:
    dataset: str
    backend: str
    click_model: str
    users: SimulatedUsers
    history_queries: int
    held_apart_queries: int
    clicks_sent: int = 0
    clicks_counted: int = 0
    history_before: float = 0.0
    history_after: float = 0.0
    # What perfect feedback could reach: every relevant document the users could see (in
    # the first top 10) ranked first. Clicks cannot lift what nobody was shown.
    history_ceiling: float = 0.0
    # The same for the relevant documents some user clicked: what the clicks revealed.
    history_clicked_ceiling: float = 0.0
    held_apart_before: float = 0.0
    held_apart_after: float = 0.0
    ranker: str = ""
    attack: AttackResult | None = None
    notes: list[str] = field(default_factory=list)

    def table(self) -> str:
        users = self.users
        head = (
            f"{self.dataset} on {self.backend}: {self.history_queries} queries with history "
            f"({users.sessions} sessions each, noise {users.noise:g}, eta {users.eta:g}), "
            f"{self.held_apart_queries} held apart; {self.clicks_counted} of "
            f"{self.clicks_sent} clicks counted; click model: {self.click_model or 'off'}"
            + (f"; ranker {self.ranker}" if self.ranker else "")
        )
        rows = [
            f"{'hybrid nDCG@10':<26}{'before':>8}{'after':>8}{'change':>9}",
            _row("queries with history", self.history_before, self.history_after),
            _row("held-apart queries", self.held_apart_before, self.held_apart_after),
            f"ceiling for the queries with history (their visible relevant documents first): "
            f"{self.history_ceiling:.4f}, of which the clicks reached "
            f"{_share(self.history_before, self.history_after, self.history_ceiling):.0%}",
            f"ceiling for what the users' clicks revealed (the relevant documents they "
            f"clicked first): {self.history_clicked_ceiling:.4f}, of which they reached "
            f"{_share(self.history_before, self.history_after, self.history_clicked_ceiling):.0%}",
        ]
        if self.attack is not None:
            a = self.attack
            rows.append(
                f"adversary: {a.clicks} clicks ({a.counted} counted) from one session on an "
                f"irrelevant result of query {a.query_id}: rank {a.rank_before} → "
                f"{a.rank_after}, score +{a.score_gain:.3f} × the top score (bound "
                f"{a.bound:g}); other queries' rankings changed: {a.other_queries_changed}"
            )
        return "\n".join([head, *rows, *self.notes])

    def write_json(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")


def _share(before: float, after: float, ceiling: float) -> float:
    return (after - before) / (ceiling - before) if ceiling > before else 0.0


def ceiling(
    tops: Mapping[str, list[str]],
    qrels: Mapping[str, Mapping[str, int]],
    *,
    known: Mapping[str, set[str]] | None = None,
) -> float:
    """Mean nDCG@10 with each query's relevant documents among `tops` moved to the front,
    best judged first: the most that feedback on those results can do. With `known`, only
    the relevant documents known per query (those users clicked) are moved."""
    run: dict[str, dict[str, float]] = {}
    for query, docs in tops.items():
        judged = qrels[query]
        if known is not None:
            judged = {d: g for d, g in judged.items() if d in known.get(query, set())}
        order = sorted(docs, key=lambda d: (-judged.get(d, 0), docs.index(d)))
        run[query] = {d: float(len(order) - i) for i, d in enumerate(order)}
    return score_run({q: dict(qrels[q]) for q in tops}, run)["ndcg@10"]


def _row(label: str, before: float, after: float) -> str:
    return f"{label:<26}{before:>8.4f}{after:>8.4f}{after - before:>+9.4f}"


def ranked_documents(result: SearchResult, depth: int = DOC_DEPTH) -> list[str]:
    """The documents of a result in order of their best chunk, `depth` of them."""
    return list(dict.fromkeys(hit.document_path for hit in result.hits))[:depth]


def shown_documents(result: SearchResult, depth: int) -> list[tuple[int, str, int]]:
    """(rank, document, chunk id) of what a user sees: each document once, at its best
    chunk, in the top `depth` hits."""
    seen: dict[str, tuple[int, str, int]] = {}
    for rank, hit in enumerate(result.hits[:depth], start=1):
        seen.setdefault(hit.document_path, (rank, hit.document_path, hit.chunk_id))
    return list(seen.values())


def user_clicks(
    shown: Sequence[tuple[int, str, int]],
    relevant: Mapping[str, int],
    users: SimulatedUsers,
    rng: random.Random,
) -> list[tuple[int, float]]:
    """(chunk id, dwell seconds) of what one simulated user clicks among `shown`."""
    clicks: list[tuple[int, float]] = []
    for rank, document, chunk_id in shown:
        if rng.random() >= rank**-users.eta:
            continue  # not examined
        good = relevant.get(document, 0) > 0
        if rng.random() >= (1 - users.noise if good else users.noise):
            continue
        bounce = not good and rng.random() < 0.5
        clicks.append((chunk_id, rng.uniform(1, 8) if bounce else rng.uniform(30, 120)))
    return clicks


def session_rng(seed: int, session: int, query_id: str) -> random.Random:
    return random.Random(zlib.crc32(f"{seed}|{session}|{query_id}".encode()))


async def ndcg(
    client: DocFoundryClient,
    queries: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, int]],
    *,
    plain: bool,
    concurrency: int,
) -> tuple[float, dict[str, list[str]]]:
    """Mean Hybrid nDCG@10 over `queries`, and each query's top 10 documents."""
    gate = asyncio.Semaphore(concurrency)

    async def top(text: str) -> list[str]:
        async with gate:
            result = await client.search(text, "hybrid", k=CHUNK_DEPTH, plain_ranking=plain)
        return ranked_documents(result)

    tops = dict(zip(queries, await asyncio.gather(*map(top, queries.values())), strict=True))
    run = {q: {d: float(len(docs) - i) for i, d in enumerate(docs)} for q, docs in tops.items()}
    subset = {q: dict(qrels[q]) for q in queries}
    return score_run(subset, run)["ndcg@10"], tops


async def simulate_sessions(
    client: DocFoundryClient,
    queries: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, int]],
    users: SimulatedUsers,
) -> tuple[int, int, dict[str, set[str]]]:
    """Every query searched by `users.sessions` users in turn; returns the clicks sent and
    counted, and per query the relevant documents some user clicked."""
    gate = asyncio.Semaphore(users.concurrency)
    sent = counted = 0
    found: dict[str, set[str]] = {q: set() for q in queries}

    async def one(session: int, query_id: str, text: str) -> None:
        nonlocal sent, counted
        async with gate:
            result = await client.search(text, "hybrid", k=users.depth)
            rng = session_rng(users.seed, session, query_id)
            shown = shown_documents(result, users.depth)
            documents = {chunk_id: document for _, document, chunk_id in shown}
            for chunk_id, dwell in user_clicks(shown, qrels[query_id], users, rng):
                if qrels[query_id].get(documents[chunk_id], 0) > 0:
                    found[query_id].add(documents[chunk_id])
                receipt = await client.record_click(
                    "",
                    chunk_id,
                    impression_id=result.impression_id,
                    session_id=f"sim-{session}-{query_id}",
                    dwell_time=round(dwell, 1),
                )
                sent += 1
                counted += receipt.counted

    for session in tqdm(range(users.sessions), desc="sessions", unit="session", leave=False):
        await asyncio.gather(*(one(session, q, text) for q, text in queries.items()))
    return sent, counted, found


async def attack(
    client: DocFoundryClient,
    queries: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, int]],
    tops: Mapping[str, list[str]],
    *,
    clicks: int,
    bound: float,
    concurrency: int,
) -> AttackResult:
    """`clicks` clicks from one session on the lowest irrelevant result of the first query
    that shows one; the other queries' top 10 are compared before and after."""
    for query_id, text in queries.items():
        result = await client.search(text, "hybrid", k=DOC_DEPTH)
        irrelevant = [
            (rank, hit)
            for rank, hit in enumerate(result.hits, start=1)
            if qrels[query_id].get(hit.document_path, 0) <= 0
        ]
        if irrelevant:
            break
    else:
        raise ValueError("no query shows an irrelevant result to attack")
    rank_before, target = irrelevant[-1]
    top_score = result.hits[0].score
    gate = asyncio.Semaphore(concurrency)

    async def one() -> bool:
        async with gate:
            receipt = await client.record_click(
                "", target.chunk_id, impression_id=result.impression_id, session_id="adversary"
            )
        return receipt.counted

    counted = sum(await asyncio.gather(*(one() for _ in range(clicks))))
    after = await client.search(text, "hybrid", k=CHUNK_DEPTH)
    ids = [h.chunk_id for h in after.hits]
    rank_after = ids.index(target.chunk_id) + 1 if target.chunk_id in ids else 0
    gain = (after.hits[rank_after - 1].score - target.score) / top_score if rank_after else 0.0
    others = {q: t for q, t in queries.items() if q != query_id}
    _, now = await ndcg(client, others, qrels, plain=False, concurrency=concurrency)
    changed = sum(now[q] != tops[q] for q in others)
    return AttackResult(query_id, clicks, counted, rank_before, rank_after, gain, bound, changed)


async def evaluate_clicks(
    client: DocFoundryClient,
    dataset: BeirDataset,
    history: Mapping[str, str],
    held_apart: Mapping[str, str],
    held_qrels: Mapping[str, Mapping[str, int]],
    users: SimulatedUsers,
    *,
    attack_clicks: int,
    bound: float,
    train: Callable[[], Awaitable[str]] | None = None,
) -> ClickEvalReport:
    """Measures before, simulates the sessions, trains the ranker through `train` (which
    says what it made) when given, measures after, then attacks."""
    health = await client.health()
    report = ClickEvalReport(
        dataset.name, health.database_type, health.click_model, users, len(history), len(held_apart)
    )
    c = users.concurrency
    report.history_before, first = await ndcg(
        client, history, dataset.qrels, plain=True, concurrency=c
    )
    report.history_ceiling = ceiling(first, dataset.qrels)
    report.held_apart_before, _ = await ndcg(
        client, held_apart, held_qrels, plain=True, concurrency=c
    )
    report.clicks_sent, report.clicks_counted, found = await simulate_sessions(
        client, history, dataset.qrels, users
    )
    report.history_clicked_ceiling = ceiling(first, dataset.qrels, known=found)
    if train is not None:
        report.ranker = await train()
    report.history_after, tops = await ndcg(
        client, history, dataset.qrels, plain=False, concurrency=c
    )
    report.held_apart_after, _ = await ndcg(
        client, held_apart, held_qrels, plain=False, concurrency=c
    )
    if attack_clicks:
        report.attack = await attack(
            client, history, dataset.qrels, tops, clicks=attack_clicks, bound=bound, concurrency=c
        )
    return report
