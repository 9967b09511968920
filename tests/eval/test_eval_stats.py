"""Significance tests and Holm's correction against hand values and scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats

from braid.eval.stats import (
    compare,
    holm,
    latency_summary,
    paired_ttest,
    randomisation_test,
    with_holm,
)


def test_holm_hand_computed() -> None:
    # sorted p: 0.01 (x3) 0.02 (x2 -> 0.04) 0.04 (x1 -> 0.04, kept monotone)
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_randomisation_test() -> None:
    a = np.array([0.5, 0.6, 0.7, 0.8])
    assert randomisation_test(a, a) == 1.0
    rng = np.random.default_rng(0)
    base = rng.random(200)
    better = base + 0.05 + rng.normal(0, 0.01, 200)
    assert randomisation_test(better, base) < 0.001
    noise = base + rng.normal(0, 0.05, 200)
    assert randomisation_test(noise, base) > 0.01


def test_ttest_matches_scipy() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.random(50), rng.random(50)
    assert paired_ttest(a, b) == pytest.approx(scipy_stats.ttest_rel(a, b).pvalue)


def test_compare_counts_wins_and_holm_family() -> None:
    c1 = compare(
        "hybrid",
        "bm25",
        "ndcg@10",
        {"q1": 1.0, "q2": 0.5, "q3": 0.2},
        {"q1": 0.5, "q2": 0.5, "q3": 0.4},
    )
    assert (c1.wins, c1.losses, c1.ties) == (1, 1, 1)
    assert c1.delta == pytest.approx((0.5 + 0 - 0.2) / 3)
    family = with_holm([c1, c1])
    assert family[0].p_holm == pytest.approx(min(1.0, 2 * c1.p_randomisation))


def test_latency_summary() -> None:
    summary = latency_summary({"a": {"total": 1.0, "embed": 0.5}, "b": {"total": 3.0}})
    assert summary["total"]["p50"] == pytest.approx(2.0)
    assert summary["embed"]["n"] == 1
