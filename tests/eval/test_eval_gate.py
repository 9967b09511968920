"""The reranker gate on runs whose verdict is certain, and the training plan's checks.

Per-query nDCG@10 comes from braid's metrics over hand-built runs: 12 queries, one relevant
document each among 10 retrieved. "First" puts it last, "best" puts it first: every query gains
1 - 1/log2(11), and the paired randomisation test can only exceed that mean gain when all 12
signs agree (2 in 4096 labellings), so p is about 0.0005.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from eval_tiny import write_beir

from braid.engine.errors import InvalidRequestError
from braid.eval.datasets import load_dataset
from braid.eval.finetune import gate, plan_training
from braid.eval.metrics import per_query
from braid.eval.training import TrainConfig

QUERIES = [f"q{i}" for i in range(12)]
QRELS = {q: {f"{q}-rel": 1} for q in QUERIES}


def ndcg(relevant_at: dict[str, int]) -> dict[str, float]:
    """Per-query nDCG@10 of runs with the relevant document at the given rank (1..10)."""
    run: dict[str, dict[str, float]] = {}
    for q, rank in relevant_at.items():
        docs = [f"{q}-n{i}" for i in range(9)]
        docs.insert(rank - 1, f"{q}-rel")
        run[q] = {d: float(10 - i) for i, d in enumerate(docs)}
    return per_query(run, QRELS, ("ndcg@10",))["ndcg@10"]


LAST = ndcg(dict.fromkeys(QUERIES, 10))
FIRST = ndcg(dict.fromkeys(QUERIES, 1))


def test_runs_are_what_they_claim() -> None:
    assert set(FIRST.values()) == {1.0}
    assert pytest.approx(dict.fromkeys(QUERIES, 1 / math.log2(11))) == LAST


def test_relevant_first_beats_relevant_last() -> None:
    result = gate(LAST, FIRST, rerank_depth=10, required_p=0.05)
    assert result.passed
    assert result.delta == pytest.approx(1 - 1 / math.log2(11))
    assert result.p_randomisation < 0.005
    assert (result.first_stage, result.reranked) == (pytest.approx(1 / math.log2(11)), 1.0)
    assert result.queries == 12 and result.rerank_depth == 10


def test_identical_runs_never_pass() -> None:
    result = gate(FIRST, dict(FIRST), rerank_depth=10)
    assert not result.passed
    assert result.delta == 0.0 and result.p_randomisation == 1.0


def test_a_worse_reranker_fails_however_significant() -> None:
    result = gate(FIRST, LAST, rerank_depth=10)
    assert not result.passed
    assert result.delta < 0 and result.p_randomisation < 0.005


def test_a_gain_on_one_query_is_not_enough() -> None:
    # one query moves from rank 10 to 1, the others tie: every sign flip gives the same
    # |mean|, so chance explains it fully (p = 1)
    reranked = dict(LAST, q0=1.0)
    result = gate(LAST, reranked, rerank_depth=10)
    assert result.delta > 0 and result.p_randomisation == 1.0 and not result.passed


def test_required_p_decides() -> None:
    # 6 queries gain, 6 tie: all signs agree with probability 2/64, p about 0.03
    reranked = dict(LAST) | dict.fromkeys(QUERIES[:6], 1.0)
    strict = gate(LAST, reranked, rerank_depth=10, required_p=0.01)
    lenient = gate(LAST, reranked, rerank_depth=10, required_p=0.05)
    assert 0.01 < strict.p_randomisation == lenient.p_randomisation < 0.05
    assert lenient.passed and not strict.passed


def test_plan_needs_dev_queries_and_numbers_versions(tmp_path: Path) -> None:
    labelled = load_dataset(write_beir(tmp_path / "tiny"), "train")
    config = TrainConfig(base="all-MiniLM-L6-v2", dataset="tiny", dev_fraction=0.0)
    with pytest.raises(InvalidRequestError, match="dev split is empty"):
        plan_training(labelled, config, tmp_path / "data")
    plan = plan_training(
        labelled, TrainConfig(base="x", dataset="tiny", dev_fraction=0.4), tmp_path / "data"
    )
    assert plan.dev.queries and set(plan.dev.queries).isdisjoint(plan.train.queries)
    assert plan.out_dir == tmp_path / "data" / "models" / "rerankers" / "tiny-v1"
    assert not plan.resumed
