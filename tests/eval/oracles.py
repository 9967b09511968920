"""Reference implementations the eval tests check braid's metrics against."""

from __future__ import annotations

from collections.abc import Mapping

import pytrec_eval


def pytrec_reference(
    run: Mapping[str, Mapping[str, float]], qrels: Mapping[str, Mapping[str, int]]
) -> dict[str, dict[str, float]]:
    """braid's library metrics, per query, from trec_eval's C code called directly.

    braid goes through ir-measures; this calls pytrec_eval itself with trec_eval's own measure
    names, so a wrong mapping (a cut-off, a gain, RR's depth) or a query braid drops or
    mis-scores shows up. RR@10 is ``recip_rank`` over each query's top 10 (trec_eval's has no
    cut-off). A query without results scores 0, as in braid.
    """
    measures = {"ndcg_cut.10", "recall.10,100", "map_cut.100", "recip_rank"}
    evaluator = pytrec_eval.RelevanceEvaluator({q: dict(d) for q, d in qrels.items()}, measures)
    full = evaluator.evaluate({q: dict(d) for q, d in run.items() if d})
    top10 = {q: dict(sorted(d.items(), key=lambda kv: -kv[1])[:10]) for q, d in run.items() if d}
    rr = evaluator.evaluate(top10)
    names = {
        "ndcg@10": "ndcg_cut_10",
        "recall@10": "recall_10",
        "recall@100": "recall_100",
        "map@100": "map_cut_100",
    }
    out = {m: {q: full.get(q, {}).get(name, 0.0) for q in qrels} for m, name in names.items()}
    out["mrr@10"] = {q: rr.get(q, {}).get("recip_rank", 0.0) for q in qrels}
    return out
