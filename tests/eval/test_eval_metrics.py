"""Metrics against hand-computed values and against references braid does not call:
trec_eval's C code through pytrec_eval directly, ir-measures for judged@10 (braid's own code),
and ranx (its own implementation, marked slow for its compile time)."""

from __future__ import annotations

import math
import random

import ir_measures
import pytest
from ir_measures import Judged
from oracles import pytrec_reference

from braid.eval.metrics import LIBRARY_METRICS, METRICS, evaluate_run, judged_at_k, per_query

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


def test_hand_computed_graded_run() -> None:
    # b (grade 1) at rank 1, a non-relevant at 2, a (grade 3) at rank 3; c (grade 2) missed.
    run = {"q": {"b": 3.0, "n": 2.0, "a": 1.0}}
    qrels = {"q": {"a": 3, "b": 1, "c": 2}}
    scores = per_query(run, qrels)
    dcg = 1 / math.log2(2) + 3 / math.log2(4)  # = 2.5
    ideal = 3 / math.log2(2) + 2 / math.log2(3) + 1 / math.log2(4)  # a, c, b
    assert scores["ndcg@10"]["q"] == pytest.approx(dcg / ideal)
    assert scores["ndcg@10"]["q"] == pytest.approx(0.525005, abs=1e-6)
    assert scores["recall@10"]["q"] == pytest.approx(2 / 3)
    assert scores["recall@100"]["q"] == pytest.approx(2 / 3)
    assert scores["mrr@10"]["q"] == 1.0
    assert scores["map@100"]["q"] == pytest.approx((1 / 1 + 2 / 3) / 3)


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
def test_library_metrics_agree_with_trec_eval(seed: int) -> None:
    qrels, run = _random_case(seed)
    ours = per_query(run, qrels)
    reference = pytrec_reference(run, qrels)
    assert set(reference) == set(LIBRARY_METRICS)
    for name in LIBRARY_METRICS:
        assert ours[name] == pytest.approx(reference[name], abs=1e-9), name
    # the random runs are not degenerate: every metric takes several values
    assert all(len(set(ours[name].values())) > 3 for name in LIBRARY_METRICS)


@pytest.mark.parametrize("seed", [1, 2])
def test_judged_agrees_with_ir_measures(seed: int) -> None:
    """judged@10 is braid's own code: ir-measures' Judged@10 is its reference."""
    qrels, run = _random_case(seed)
    ours = per_query(run, qrels, ("judged@10",))["judged@10"]
    reference = dict.fromkeys(qrels, 0.0)
    for value in ir_measures.iter_calc([Judged @ 10], qrels, run):
        reference[value.query_id] = value.value
    assert ours == pytest.approx(reference, abs=1e-9)


@pytest.mark.slow  # ranx's numba kernels compile on first use: a minute on a cold machine
def test_means_agree_with_ranx() -> None:
    """ranx computes every metric in its own (numba) code: a reference independent of
    trec_eval. Means over all judged queries, a query without results counting 0."""
    from ranx import Qrels as RanxQrels
    from ranx import Run as RanxRun
    from ranx import evaluate

    qrels, run = _random_case(3)
    ours = evaluate_run(run, qrels, LIBRARY_METRICS)
    # ranx drops zero-grade judgements and empty queries; braid counts such queries as 0
    judged = {q: {d: g for d, g in j.items() if g > 0} for q, j in qrels.items()}
    kept = {q: j for q, j in judged.items() if j}
    reference = evaluate(
        RanxQrels(kept),
        RanxRun({q: run[q] for q in kept if run.get(q)}),
        list(LIBRARY_METRICS),
        make_comparable=True,
    )
    share = len(kept) / len(qrels)
    for name in LIBRARY_METRICS:
        assert ours[name] == pytest.approx(float(reference[name]) * share, abs=1e-9), name


def test_judged_counts_zero_grade_as_judged() -> None:
    assert judged_at_k({"q": {"a": 2.0, "b": 1.0}}, {"q": {"a": 0}}, 10) == {"q": 0.5}
