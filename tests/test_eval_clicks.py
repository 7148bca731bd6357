"""`docfoundry eval-clicks` on a tiny BEIR data set: simulated users lift what they judge
relevant, the ranker trains, the adversary is held to the bound; and the user model."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from docfoundry_client import DocFoundryClient
from docfoundry_grpc.evaluation.beir import load_dataset
from docfoundry_grpc.evaluation.clicks import (
    SimulatedUsers,
    ceiling,
    evaluate_clicks,
    user_clicks,
)
from docfoundry_grpc.evaluation.runner import load
from tests.conftest import Harness, run_cli

TOPICS = [
    "apricot", "badger", "cedar", "dolphin", "eagle", "falcon", "garlic", "heron",
    "iguana", "juniper", "kestrel", "lobster", "mango", "narwhal", "otter", "parsnip",
    "quince", "raven", "salmon", "tapir",
]  # fmt: skip
HELD_APART = TOPICS[16:]


def write_dataset(root: Path) -> Path:
    """Per topic, one relevant document that names it once, beside two that repeat it (so
    BM25 ranks the relevant one below them); a train query per topic but the last four,
    which are test queries."""
    (root / "qrels").mkdir(parents=True)
    rows: list[dict[str, str]] = []
    queries: list[dict[str, str]] = []
    train: list[str] = []
    test: list[str] = []
    for i, topic in enumerate(TOPICS):
        rows.append({"_id": f"{topic}-guide", "title": "Field notes", "text": f"A {topic} guide."})
        for n in (1, 2):
            text = f"{topic} {topic} {topic} prices, {topic} auctions and {topic} tariffs {n}."
            rows.append({"_id": f"{topic}-market-{n}", "title": "Market", "text": text})
        queries.append({"_id": f"q{i}", "text": topic})
        (test if topic in HELD_APART else train).append(f"q{i}\t{topic}-guide\t1\n")
    (root / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    header = "query-id\tcorpus-id\tscore\n"
    (root / "qrels" / "train.tsv").write_text(header + "".join(train))
    (root / "qrels" / "test.tsv").write_text(header + "".join(test))
    return root


async def test_simulated_users_lift_what_they_judge_relevant(
    server: Harness, tmp_path: Path
) -> None:
    folder = write_dataset(tmp_path / "tiny")
    history, held = load_dataset(folder, "train"), load_dataset(folder, "test")
    users = SimulatedUsers(sessions=6, noise=0.2, eta=1.0, depth=10)
    async with DocFoundryClient(server.target) as client:

        async def train() -> str:
            ranker = await client.train_ranker()
            return f"v{ranker.version}"

        await load(client, history)
        report = await evaluate_clicks(
            client,
            history,
            history.queries,
            held.queries,
            held.qrels,
            users,
            attack_clicks=60,
            bound=server.app.settings.search.clicks.source_bound,
            train=train,
        )
    assert report.history_before < 0.8  # the guides start below the market pages
    assert report.history_after > report.history_before + 0.1
    assert report.clicks_counted > 0 and report.clicks_sent >= report.clicks_counted
    assert report.ranker == "v1"
    attack = report.attack
    assert attack is not None and (attack.clicks, attack.counted) == (60, 1)
    assert 0 < attack.score_gain <= attack.bound + 1e-9
    assert attack.other_queries_changed == 0
    assert "queries with history" in report.table()
    assert report.history_before <= report.history_after <= report.history_ceiling + 1e-9
    assert report.history_before <= report.history_clicked_ceiling <= report.history_ceiling


def test_simulated_users_click_by_position_and_judgment() -> None:
    shown = [(rank, f"d{rank}", rank) for rank in range(1, 11)]
    relevant = {"d1": 1, "d5": 1}
    careful = SimulatedUsers(noise=0.0, eta=0.0)  # everyone examines everything
    assert {c for c, _ in user_clicks(shown, relevant, careful, random.Random(1))} == {1, 5}
    blind = SimulatedUsers(noise=1.0, eta=0.0)  # and clicks everything irrelevant
    picked = user_clicks(shown, relevant, blind, random.Random(1))
    assert {c for c, _ in picked} == set(range(2, 11)) - {5}
    assert all(dwell < 8 or dwell >= 30 for _, dwell in picked)
    rng, biased = random.Random(7), SimulatedUsers(noise=0.0, eta=1.0)
    tops = sum(
        1 in {c for c, _ in user_clicks(shown, {"d1": 1, "d10": 1}, biased, rng)}
        for _ in range(400)
    )
    rng = random.Random(7)
    deep = sum(
        10 in {c for c, _ in user_clicks(shown, {"d1": 1, "d10": 1}, biased, rng)}
        for _ in range(400)
    )
    assert tops > 300 and 15 < deep < 80  # rank 1 is examined always, rank 10 a tenth of the time


async def test_the_eval_clicks_command_reports_and_writes_json(tmp_path: Path) -> None:
    folder = write_dataset(tmp_path / "tiny")
    output = tmp_path / "report.json"
    result = await run_cli(
        "eval-clicks", str(folder), "--sessions", "3", "--attack-clicks", "20",
        "--no-ranker", "--output", str(output),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "queries with history" in result.stdout and "held-apart queries" in result.stdout
    report = json.loads(output.read_text())
    assert (report["history_queries"], report["held_apart_queries"]) == (16, 4)
    assert report["attack"]["counted"] == 1 and report["ranker"] == ""


def test_the_ceiling_puts_the_visible_relevant_documents_first() -> None:
    tops = {"seen": ["a", "b", "c"], "unseen": ["x", "y"], "graded": ["p", "q"]}
    qrels = {"seen": {"c": 1}, "unseen": {"z": 1}, "graded": {"p": 1, "q": 2}}
    assert ceiling(tops, qrels) == pytest.approx((1.0 + 0.0 + 1.0) / 3)
    known = {"seen": {"c"}, "graded": {"p"}}  # nobody clicked q, the better one
    partial = ceiling(tops, qrels, known=known)
    assert partial < ceiling(tops, qrels) and partial > ceiling(tops, qrels, known={})
