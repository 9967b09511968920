"""Effectiveness metrics of a run against qrels, per query and averaged.

nDCG@10, Recall@10/100, MRR@10 and MAP@100 come from ranx (numba; ``ndcg`` with linear gain,
as trec_eval's ``ndcg_cut``); a test checks them against ir-measures (pytrec_eval) and a
hand-computed example. judged@10 is computed here: the share of the top 10 (of those retrieved,
as ir-measures' ``Judged@10`` does) that carry a judgement of any grade, a warning sign when
a system retrieves documents the pool never saw.

Every query in the qrels counts; a query the run has no result for scores 0 (as BEIR does).
Documents are ordered by rank-derived scores (``Run.as_scores``), so ties cannot reorder them.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

from eval.datasets import Qrels

RANX_METRICS: tuple[str, ...] = ("ndcg@10", "recall@10", "recall@100", "mrr@10", "map@100")
METRICS: tuple[str, ...] = (*RANX_METRICS, "judged@10")
PRIMARY = "ndcg@10"

RunScores = Mapping[str, Mapping[str, float]]  # query id -> doc id -> score (higher first)
PerQuery = dict[str, dict[str, float]]  # metric -> query id -> value


def ranked_docs(scores: Mapping[str, float]) -> list[str]:
    """Doc ids best first; ties by doc id (only hand-made runs have ties)."""
    return [doc for doc, _ in sorted(scores.items(), key=lambda item: (-item[1], item[0]))]


def judged_at_k(run: RunScores, qrels: Qrels, k: int = 10) -> dict[str, float]:
    """Per query: judged documents among the top ``k`` retrieved / documents retrieved there."""
    out: dict[str, float] = {}
    for qid, judged in qrels.items():
        top = ranked_docs(run.get(qid, {}))[:k]
        out[qid] = sum(doc in judged for doc in top) / len(top) if top else 0.0
    return out


def per_query(run: RunScores, qrels: Qrels, metrics: tuple[str, ...] = METRICS) -> PerQuery:
    """Each metric's value for every query of ``qrels``."""
    from ranx import Qrels as RanxQrels  # type: ignore[import-untyped]
    from ranx import Run as RanxRun
    from ranx import evaluate

    wanted = [m for m in metrics if m in RANX_METRICS]
    result: PerQuery = {}
    if wanted:
        judged_qrels = {q: dict(d) for q, d in qrels.items() if d}
        kept = {q: dict(d) for q, d in run.items() if q in judged_qrels and d}
        if not kept:
            result = {m: dict.fromkeys(qrels, 0.0) for m in wanted}
        else:
            ranx_run = RanxRun(kept)
            with warnings.catch_warnings():
                # numba's uint64 -> int64 cast warning inside ranx: harmless at these sizes
                warnings.simplefilter("ignore")
                evaluate(
                    RanxQrels(judged_qrels),
                    ranx_run,
                    wanted,
                    return_mean=False,
                    make_comparable=True,
                )
            for metric in wanted:
                values = ranx_run.scores[metric]
                result[metric] = {q: float(values.get(q, 0.0)) for q in qrels}
    if "judged@10" in metrics:
        result["judged@10"] = judged_at_k(run, qrels, 10)
    return {m: result[m] for m in metrics}


def mean(values: Mapping[str, float]) -> float:
    return sum(values.values()) / len(values) if values else 0.0


def summarize(scores: PerQuery) -> dict[str, float]:
    """Mean over queries of each metric."""
    return {metric: mean(values) for metric, values in scores.items()}


def evaluate_run(
    run: RunScores, qrels: Qrels, metrics: tuple[str, ...] = METRICS
) -> dict[str, float]:
    return summarize(per_query(run, qrels, metrics))
