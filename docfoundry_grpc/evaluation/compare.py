"""How closely two eval reports (e.g. SQLite and PostgreSQL) agree on their top-10 lists."""

from __future__ import annotations

import json
from pathlib import Path


def compare_reports(first: Path, second: Path) -> str:
    a, b = (json.loads(p.read_text()) for p in (first, second))
    lines = [f"{'mode':<12}{'overlap@10':>11}{'same order':>11}{'Δ nDCG@10':>11}"]
    b_modes = {m["mode"]: m for m in b["modes"]}
    for mode in a["modes"]:
        other = b_modes.get(mode["mode"])
        if other is None:
            continue
        queries = mode["top10"].keys() & other["top10"].keys()
        overlap = sum(_overlap(mode["top10"][q], other["top10"][q]) for q in queries) / max(
            len(queries), 1
        )
        same = sum(mode["top10"][q] == other["top10"][q] for q in queries) / max(len(queries), 1)
        delta = mode["ndcg_at_10"] - other["ndcg_at_10"]
        lines.append(f"{mode['mode']:<12}{overlap:>11.4f}{same:>11.4f}{delta:>+11.4f}")
    return "\n".join(lines)


def _overlap(first: list[str], second: list[str]) -> float:
    """Share of the longer list the two have in common: 1 when both found nothing (they
    agree), 0 when only one did."""
    if not first and not second:
        return 1.0
    return len(set(first) & set(second)) / max(len(first), len(second))
