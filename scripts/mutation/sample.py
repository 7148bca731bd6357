"""Trims a cosmic-ray session before `cosmic-ray exec`: mutants inside type annotations are
skipped (with `from __future__ import annotations` they are never evaluated, so every one
is an equivalent mutant), and of the rest an even sample of at most `--max` is kept.

The sample is systematic over the mutants in source order, so every part of the module
is covered; the same session file, `--max` and `--phase` always give the same sample.

    python scripts/mutation/sample.py SESSION.sqlite MODULE.py --max 40
    python scripts/mutation/sample.py HOLDOUT.sqlite MODULE.py --max 40 --phase 0.5
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

from cosmic_ray.work_db import WorkDB, use_db  # type: ignore[import-untyped]
from cosmic_ray.work_item import WorkerOutcome, WorkResult  # type: ignore[import-untyped]

Span = tuple[tuple[int, int], tuple[int, int]]


def annotation_spans(source: str) -> list[Span]:
    """Where the module's annotations are: (row, col) from 1-based rows, as cosmic-ray
    counts them."""
    spans: list[Span] = []

    def add(node: ast.expr | None) -> None:
        if node is not None and node.end_lineno is not None and node.end_col_offset is not None:
            spans.append(((node.lineno, node.col_offset), (node.end_lineno, node.end_col_offset)))

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            add(node.returns)
        elif isinstance(node, ast.arg):
            add(node.annotation)
        elif isinstance(node, ast.AnnAssign):
            add(node.annotation)
    return spans


def inside(position: tuple[int, int], spans: list[Span]) -> bool:
    return any(start <= position < end for start, end in spans)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("session", type=Path)
    parser.add_argument("module", type=Path)
    parser.add_argument("--max", type=int, default=80, help="mutants to keep (0: all)")
    parser.add_argument(
        "--phase",
        type=float,
        default=0.0,
        help="where in each stride to pick, in [0, 1): 0.5 gives a second sample disjoint "
        "from the first (when --max is at most half the mutants)",
    )
    args = parser.parse_args()
    spans = annotation_spans(args.module.read_text())
    with use_db(str(args.session), WorkDB.Mode.open) as db:
        items = sorted(
            db.pending_work_items,
            key=lambda item: (
                tuple(item.mutations[0].start_pos),
                item.mutations[0].operator_name,
                item.mutations[0].occurrence,
            ),
        )
        annotated = [i for i in items if inside(tuple(i.mutations[0].start_pos), spans)]
        rest = [i for i in items if i not in annotated]
        keep = len(rest) if args.max <= 0 else min(args.max, len(rest))
        picks = (int((n + args.phase) * len(rest) / keep) for n in range(keep))
        chosen = {rest[i].job_id for i in picks} if keep else set()
        for item in annotated:
            db.set_result(
                item.job_id,
                WorkResult(WorkerOutcome.SKIPPED, output="annotation: never evaluated"),
            )
        for item in rest:
            if item.job_id not in chosen:
                db.set_result(item.job_id, WorkResult(WorkerOutcome.SKIPPED, output="not sampled"))
        print(
            f"{args.module}: {len(items)} mutants, {len(annotated)} in annotations, "
            f"{len(chosen)} of the other {len(rest)} sampled"
        )


if __name__ == "__main__":
    main()
