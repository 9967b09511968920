"""Weighted RRF and convex fusion against values computed by hand."""

from __future__ import annotations

import pytest

from braid.engine.fusion import RRF_K, blend_rerank, convex_fusion, single, weighted_rrf
from braid.engine.models import ScoredPoint, StageScore


def ranking(*ids: str, scores: list[float] | None = None) -> list[ScoredPoint]:
    """Points best first; scores default to 10, 9, 8, ... (their values do not matter to RRF)."""
    scores = scores if scores is not None else [10.0 - i for i in range(len(ids))]
    return [ScoredPoint(pid, s) for pid, s in zip(ids, scores, strict=True)]


def test_rrf_k_is_60_with_one_based_ranks() -> None:
    assert RRF_K == 60
    hits = weighted_rrf({"bm25": ranking("a")})
    assert hits[0].score == pytest.approx(1 / 61)


def test_rrf_sums_reciprocal_ranks() -> None:
    hits = weighted_rrf({"bm25": ranking("a", "b", "c"), "dense": ranking("c", "a", "d")})
    assert [h.point_id for h in hits] == ["a", "c", "b", "d"]
    assert [h.score for h in hits] == pytest.approx(
        [1 / (60 + 1) + 1 / (60 + 2), 1 / (60 + 3) + 1 / (60 + 1), 1 / (60 + 2), 1 / (60 + 3)]
    )


def test_weighted_rrf_with_small_k() -> None:
    hits = weighted_rrf(
        {"bm25": ranking("x", "y"), "dense": ranking("y", "z")},
        weights={"bm25": 0.7, "dense": 0.3},
        k=10,
    )
    # x: 0.7/11 = 0.0636; y: 0.7/12 + 0.3/11 = 0.0856; z: 0.3/12 = 0.025
    assert [h.point_id for h in hits] == ["y", "x", "z"]
    assert [h.score for h in hits] == pytest.approx([0.7 / 12 + 0.3 / 11, 0.7 / 11, 0.3 / 12])


def test_missing_weight_counts_as_one() -> None:
    hits = weighted_rrf(
        {"bm25": ranking("a"), "dense": ranking("b", "a")}, weights={"bm25": 2.0}, k=10
    )
    assert [h.point_id for h in hits] == ["a", "b"]
    assert [h.score for h in hits] == pytest.approx([2 / 11 + 1 / 12, 1 / 11])


def test_ties_go_to_better_best_rank_then_smaller_point_id() -> None:
    # k=2: 1/3 == 1/6 + 1/6 exactly in binary floating point, so these are true ties.
    hits = weighted_rrf(
        {"r1": ranking("z", "f1", "f2", "b"), "r2": ranking("y", "g2", "g3", "b")}, k=2
    )
    scores = {h.point_id: h.score for h in hits}
    assert scores["z"] == scores["y"] == scores["b"] == 1 / 3
    assert scores["f1"] == scores["g2"] == 1 / 4
    # z and y (best rank 1) before b (best rank 4); z/y and f1/g2 by point id.
    assert [h.point_id for h in hits] == ["y", "z", "b", "f1", "g2", "f2", "g3"]


def test_explain_carries_each_retriever_and_the_fused_rank() -> None:
    bm25 = ranking("a", "b", scores=[7.5, 3.25])
    dense = ranking("b", "c", scores=[0.91, 0.42])
    hits = weighted_rrf({"bm25": bm25, "dense": dense}, k=60)
    by_id = {h.point_id: h for h in hits}
    assert [h.point_id for h in hits] == ["b", "a", "c"]
    assert by_id["b"].stages == {
        "bm25": StageScore(rank=2, score=3.25),
        "dense": StageScore(rank=1, score=0.91),
        "rrf": StageScore(rank=1, score=pytest.approx(1 / 62 + 1 / 61)),
    }
    assert by_id["a"].stages == {
        "bm25": StageScore(rank=1, score=7.5),
        "rrf": StageScore(rank=2, score=pytest.approx(1 / 61)),
    }
    assert by_id["c"].stages == {
        "dense": StageScore(rank=2, score=0.42),
        "rrf": StageScore(rank=3, score=pytest.approx(1 / 62)),
    }
    assert all(h.stages["rrf"].score == h.score for h in hits)


def test_zero_weight_keeps_ranks_in_explanation_but_has_no_say() -> None:
    hits = weighted_rrf(
        {"bm25": ranking("a", "b", "c"), "dense": ranking("c", "b", "d", "e")},
        weights={"bm25": 1.0, "dense": 0.0},
    )
    # bm25 order alone; dense-only hits score 0 and come last, by best rank (d 3, e 4).
    assert [h.point_id for h in hits] == ["a", "b", "c", "d", "e"]
    assert [h.score for h in hits] == pytest.approx([1 / 61, 1 / 62, 1 / 63, 0.0, 0.0])
    assert hits[2].stages["dense"] == StageScore(rank=1, score=10.0)
    assert hits[3].stages == {
        "dense": StageScore(rank=3, score=8.0),
        "rrf": StageScore(rank=4, score=0.0),
    }


def test_rrf_of_nothing_is_empty() -> None:
    assert weighted_rrf({}) == []
    assert weighted_rrf({"bm25": [], "dense": []}) == []


def test_convex_fusion_min_max_by_hand() -> None:
    hits = convex_fusion(
        {
            "bm25": ranking("a", "b", "c", scores=[10.0, 6.0, 2.0]),
            "dense": ranking("c", "d", scores=[0.9, 0.5]),
        },
        weights={"bm25": 0.6, "dense": 0.4},
    )
    # bm25 normalised: a 1, b 0.5, c 0; dense: c 1, d 0.
    # a 0.6*1 = 0.6; c 0.6*0 + 0.4*1 = 0.4; b 0.6*0.5 = 0.3; d 0.
    assert [h.point_id for h in hits] == ["a", "c", "b", "d"]
    assert [h.score for h in hits] == pytest.approx([0.6, 0.4, 0.3, 0.0])
    assert hits[1].stages == {
        "bm25": StageScore(rank=3, score=2.0),
        "dense": StageScore(rank=1, score=0.9),
        "convex": StageScore(rank=2, score=pytest.approx(0.4)),
    }


def test_convex_fusion_single_score_list_and_empty_list() -> None:
    # One distinct score: the span is 0 and every hit normalises to 1.
    hits = convex_fusion(
        {"bm25": ranking("a", "b", scores=[3.0, 3.0]), "dense": []},
        weights={"bm25": 0.5},
    )
    assert [(h.point_id, h.score) for h in hits] == [("a", 0.5), ("b", 0.5)]
    assert hits[0].stages["convex"] == StageScore(rank=1, score=0.5)


def test_single_keeps_the_retrievers_order_and_scores() -> None:
    hits = single(ranking("a", "b", scores=[0.8, 0.3]), "dense")
    assert [(h.point_id, h.score) for h in hits] == [("a", 0.8), ("b", 0.3)]
    assert hits[1].stages == {"dense": StageScore(rank=2, score=0.3)}


def test_blend_rerank_by_hand() -> None:
    # first stage 0.9, 0.5, 0.1 -> 1, 0.5, 0; cross-encoder -2, 4, 1 -> 0, 1, 0.5
    first, cross = [0.9, 0.5, 0.1], [-2.0, 4.0, 1.0]
    assert blend_rerank(first, cross, 0.5) == pytest.approx([0.5, 0.75, 0.25])
    assert blend_rerank(first, cross, 0.25) == pytest.approx([0.75, 0.625, 0.125])
    assert blend_rerank(first, cross, 1.0) == pytest.approx([0.0, 1.0, 0.5])
    assert blend_rerank(first, cross, 0.0) == pytest.approx([1.0, 0.5, 0.0])


def test_blend_rerank_equal_scores_and_mismatched_lists() -> None:
    # One hit, or a leg that cannot tell hits apart, counts 1 for every hit (as min-max fusion).
    assert blend_rerank([0.3], [7.0], 0.5) == [1.0]
    assert blend_rerank([0.2, 0.2], [1.0, 3.0], 0.5) == pytest.approx([0.5, 1.0])
    assert blend_rerank([], [], 0.5) == []
    with pytest.raises(ValueError, match="same hits"):
        blend_rerank([0.1, 0.2], [1.0], 0.5)
