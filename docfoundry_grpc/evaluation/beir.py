"""Reads a BEIR-layout folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidArgumentError


@dataclass(frozen=True)
class BeirDocument:
    id: str
    title: str
    text: str


@dataclass(frozen=True)
class BeirDataset:
    name: str
    root: Path
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]

    def documents(self) -> Iterator[BeirDocument]:
        with (self.root / "corpus.jsonl").open(encoding="utf-8") as lines:
            for line in lines:
                if line.strip():
                    row = json.loads(line)
                    yield BeirDocument(str(row["_id"]), row.get("title") or "", row["text"])

    def count_documents(self) -> int:
        with (self.root / "corpus.jsonl").open(encoding="utf-8") as lines:
            return sum(1 for line in lines if line.strip())


def load_dataset(root: Path, split: str = "test") -> BeirDataset:
    """Loads the judged queries of `split`; only queries with judgements are kept."""
    required = [root / "corpus.jsonl", root / "queries.jsonl", root / "qrels" / f"{split}.tsv"]
    missing = [str(p) for p in required if not p.is_file()]
    if missing:
        raise InvalidArgumentError(f"not a BEIR data set, missing: {', '.join(missing)}")
    qrels: dict[str, dict[str, int]] = {}
    with required[2].open(encoding="utf-8", newline="") as tsv:
        reader = csv.reader(tsv, delimiter="\t")
        for row in reader:
            if len(row) < 3 or row[0] == "query-id":
                continue
            qrels.setdefault(row[0], {})[row[1]] = int(row[2])
    queries: dict[str, str] = {}
    with required[1].open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                row = json.loads(line)
                if str(row["_id"]) in qrels:
                    queries[str(row["_id"])] = row["text"]
    return BeirDataset(root.name, root, queries, {q: qrels[q] for q in queries})
