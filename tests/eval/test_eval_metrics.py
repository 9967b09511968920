"""Metrics: a hand-computed example, and ranx against ir-measures (pytrec_eval) on a random run."""

from __future__ import annotations

import math
import random

import ir_measures
import pytest
from ir_measures import AP, RR, Judged, R, nDCG

from braid.eval.metrics import METRICS, evaluate_run, judged_at_k, per_query

QRELS = {"q1": {"a": 2, "b": 1, "z": 0}, "q2": {"c": 1}, "q3": {"x": 1}}
RUN = {
    "q1": {"b": 5.0, "n1": 4.0, "a": 3.0, "z": 2.0},  # b(1) n1(-) a(2) z(0)
    "q2": {"n2": 2.0, "n3": 1.5, "c": 1.0},
    # q3 retrieves nothing: it still counts, as 0
}


def test_hand_computed_example() -> None:
    scores = per_query(RUN, QRELS)
    # q1: DCG = 1/log2(2) + 2/log2(4) = 2; ideal = 2/1 + 1/log2(3)
    ideal = 2 + 1 / math.log2(3)
    assert scores["ndcg@10"]["q1"] == pytest.approx(2 / ideal)
    assert scores["ndcg@10"]["q2"] == pytest.approx(1 / math.log2(4))
    assert scores["ndcg@10"]["q3"] == 0.0
    assert scores["mrr@10"] == pytest.approx({"q1": 1.0, "q2": 1 / 3, "q3": 0.0})
    assert scores["recall@10"] == pytest.approx({"q1": 1.0, "q2": 1.0, "q3": 0.0})
    # AP q1: relevant at ranks 1 and 3 -> (1/1 + 2/3) / 2
    assert scores["map@100"]["q1"] == pytest.approx((1 + 2 / 3) / 2)
    assert scores["map@100"]["q2"] == pytest.approx(1 / 3)
    # judged@10: q1 3 of 4 retrieved judged (n1 is not); q2 1 of 3; q3 nothing retrieved
    assert scores["judged@10"] == pytest.approx({"q1": 0.75, "q2": 1 / 3, "q3": 0.0})
    means = evaluate_run(RUN, QRELS)
    assert means["ndcg@10"] == pytest.approx((2 / ideal + 0.5) / 3)
    assert list(means) == list(METRICS)


def _random_case(seed: int) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, float]]]:
    rng = random.Random(seed)
    docs = [f"d{i}" for i in range(300)]
    qrels: dict[str, dict[str, int]] = {}
    run: dict[str, dict[str, float]] = {}
    for q in range(40):
        qid = f"q{q}"
        qrels[qid] = {d: rng.choice([0, 1, 1, 2, 3]) for d in rng.sample(docs, rng.randint(1, 12))}
        if q % 13 == 0:
            continue  # some queries without results
        retrieved = rng.sample(docs, rng.randint(5, 150))
        # bias: put some relevant docs into the run
        retrieved += [d for d in qrels[qid] if rng.random() < 0.6 and d not in retrieved]
        rng.shuffle(retrieved)
        run[qid] = {d: float(len(retrieved) - i) for i, d in enumerate(retrieved)}
    return qrels, run


@pytest.mark.parametrize("seed", [1, 2])
def test_ranx_agrees_with_ir_measures(seed: int) -> None:
    qrels, run = _random_case(seed)
    ours = per_query(run, qrels)
    pairs = {
        "ndcg@10": nDCG @ 10,
        "recall@10": R @ 10,
        "recall@100": R @ 100,
        "mrr@10": RR @ 10,
        "map@100": AP @ 100,
        "judged@10": Judged @ 10,
    }
    reference: dict[str, dict[str, float]] = {name: {} for name in pairs}
    by_measure = {str(m): name for name, m in pairs.items()}
    for metric in ir_measures.iter_calc(list(pairs.values()), qrels, run):
        reference[by_measure[str(metric.measure)]][metric.query_id] = metric.value
    for name in pairs:
        for qid in qrels:
            assert ours[name][qid] == pytest.approx(reference[name].get(qid, 0.0), abs=1e-9), (
                name,
                qid,
            )


def test_judged_counts_zero_grade_as_judged() -> None:
    assert judged_at_k({"q": {"a": 2.0, "b": 1.0}}, {"q": {"a": 0}}, 10) == {"q": 0.5}
