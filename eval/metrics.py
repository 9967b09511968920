"""Effectiveness metrics of a run against qrels, per query and averaged.

nDCG@10, Recall@10/100, MRR@10 and MAP@100 come from ir-measures (pytrec_eval, i.e. trec_eval's
C code: ``ndcg_cut`` with linear gain, ``recall``, ``map_cut``; RR@10 from its own provider); a
test checks them against ranx and a hand-computed example. ranx is not the primary because its
numba kernels compile on first use (over a minute on a cold two-core machine). judged@10 is computed here: the share of the top 10 (of those retrieved,
as ir-measures' ``Judged@10`` does) that carry a judgement of any grade, a warning sign when
a system retrieves documents the pool never saw.

Every query in the qrels counts; a query the run has no result for scores 0 (as BEIR does).
Documents are ordered by rank-derived scores (``Run.as_scores``), so ties cannot reorder them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from braid.eval.datasets import Qrels

if TYPE_CHECKING:
    from ir_measures import Measure

LIBRARY_METRICS: tuple[str, ...] = ("ndcg@10", "recall@10", "recall@100", "mrr@10", "map@100")
METRICS: tuple[str, ...] = (*LIBRARY_METRICS, "judged@10")
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


def _measures() -> dict[str, Measure]:
    from ir_measures import AP, RR, R, nDCG

    return {
        "ndcg@10": nDCG @ 10,
        "recall@10": R @ 10,
        "recall@100": R @ 100,
        "mrr@10": RR @ 10,
        "map@100": AP @ 100,
    }


def per_query(run: RunScores, qrels: Qrels, metrics: tuple[str, ...] = METRICS) -> PerQuery:
    """Each metric's value for every query of ``qrels`` (0 where the run has no result)."""
    import ir_measures

    library = _measures()
    wanted = {library[m]: m for m in metrics if m in library}
    result: PerQuery = {m: dict.fromkeys(qrels, 0.0) for m in metrics}
    judged_qrels = {q: dict(d) for q, d in qrels.items() if d}
    kept = {q: dict(d) for q, d in run.items() if q in judged_qrels and d}
    if wanted and kept:
        for value in ir_measures.iter_calc(list(wanted), judged_qrels, kept):
            result[wanted[value.measure]][value.query_id] = float(value.value)
    if "judged@10" in metrics:
        result["judged@10"] = judged_at_k(run, qrels, 10)
    return result


def mean(values: Mapping[str, float]) -> float:
    return sum(values.values()) / len(values) if values else 0.0


def summarize(scores: PerQuery) -> dict[str, float]:
    """Mean over queries of each metric."""
    return {metric: mean(values) for metric, values in scores.items()}


def evaluate_run(
    run: RunScores, qrels: Qrels, metrics: tuple[str, ...] = METRICS
) -> dict[str, float]:
    return summarize(per_query(run, qrels, metrics))
