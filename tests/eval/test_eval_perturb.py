"""Query edits are small and deterministic; RBO and overlap against hand values."""

from __future__ import annotations

import pytest

from braid.eval.perturb import drop_stopwords, overlap_at_k, perturb, rbo, reorder, typo


def test_edits() -> None:
    query = "what is the function of honey bees in pollination"
    assert typo(query, 0) == typo(query, 0)
    edited = typo(query, 0)
    assert edited != query and len(edited) == len(query) and sorted(edited) == sorted(query)
    assert drop_stopwords(query) == "function honey bees pollination"
    assert sorted(reorder(query).split()) == sorted(query.split())
    assert reorder(query) != query
    assert drop_stopwords("the of") == "the of"  # never an empty query
    with pytest.raises(ValueError):
        perturb(query, "shout")


def test_rbo_and_overlap() -> None:
    a = ["a", "b", "c", "d"]
    assert rbo(a, a) == pytest.approx(1.0)
    assert rbo(a, ["w", "x", "y", "z"]) == 0.0
    # depth 2, p = 0.5: X1 = 0, X2 = 2 -> (2/2)*0.25 + (0.5/0.5)*(0 + (2/2)*0.25) = 0.5
    assert rbo(["a", "b"], ["b", "a"], p=0.5) == pytest.approx(0.5)
    assert overlap_at_k(a, ["d", "a", "x", "y"], 4) == 0.5
    assert overlap_at_k(a, a, 10) == 1.0  # short lists are not penalised
    assert overlap_at_k(a, ["a", "b"], 10) == 0.5
