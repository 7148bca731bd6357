"""IR metrics through pytrec_eval (trec_eval's own implementation), not by hand."""

from __future__ import annotations

from collections.abc import Mapping

import pytrec_eval

Run = Mapping[str, Mapping[str, float]]
Qrels = Mapping[str, Mapping[str, int]]


def _top(run: Run, depth: int) -> dict[str, dict[str, float]]:
    return {
        q: dict(sorted(docs.items(), key=lambda item: -item[1])[:depth]) for q, docs in run.items()
    }


def score_run(qrels: Qrels, run: Run) -> dict[str, float]:
    """Mean nDCG@10, Recall@100 and MRR@10 over the judged queries (a query with no hits
    scores 0). MRR@10 is trec_eval's reciprocal rank on the run cut to 10 documents."""
    judged = {q: dict(d) for q, d in qrels.items()}
    full_run = {q: dict(run.get(q, {})) or {"__none__": 0.0} for q in judged}
    main = pytrec_eval.RelevanceEvaluator(judged, {"ndcg_cut.10", "recall.100"}).evaluate(full_run)
    rr = pytrec_eval.RelevanceEvaluator(judged, {"recip_rank"}).evaluate(_top(full_run, 10))
    n = len(judged)
    return {
        "ndcg@10": sum(m["ndcg_cut_10"] for m in main.values()) / n,
        "recall@100": sum(m["recall_100"] for m in main.values()) / n,
        "mrr@10": sum(m["recip_rank"] for m in rr.values()) / n,
    }
