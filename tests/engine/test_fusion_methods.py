"""DBSF, z-score, adaptive and the one dispatch: hand-computed values, degenerate lists, determinism,
and agreement with Qdrant's own DBSF (qdrant-client's local mode) and ranx's fusion code."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

import numpy as np
import pytest

from braid.engine.dense.edge import QdrantEdgeDenseStore
from braid.engine.embedder import SentenceTransformerEmbedder
from braid.engine.errors import InvalidRequestError
from braid.engine.fusion import (
    FUSION_METHODS,
    FusionMethod,
    adaptive_fusion,
    convex_fusion,
    dbsf_fusion,
    fuse,
    weighted_rrf,
    zscore_fusion,
)
from braid.engine.models import Chunk, Hit, ScoredPoint, StageScore
from braid.engine.searcher import HybridSearcher
from braid.engine.sparse.tantivy_store import TantivySparseStore

# Two short lists used throughout: bm25 a, b, c and dense c, d.
BM25 = [ScoredPoint("a", 0.9), ScoredPoint("b", 0.5), ScoredPoint("c", 0.1)]
DENSE = [ScoredPoint("c", 0.8), ScoredPoint("d", 0.6)]
SQRT2 = math.sqrt(2.0)
SQRT_1_5 = math.sqrt(1.5)


def pairs(hits: list[Hit]) -> list[tuple[str, float]]:
    return [(h.point_id, h.score) for h in hits]


def ids(hits: list[Hit]) -> list[str]:
    return [h.point_id for h in hits]


def assert_fused(hits: list[Hit], expected: list[tuple[str, float]]) -> None:
    """Exact ids in order, scores to 1e-12."""
    assert ids(hits) == [pid for pid, _ in expected]
    assert [h.score for h in hits] == pytest.approx([s for _, s in expected], rel=1e-12, abs=1e-15)


def test_methods_are_the_five_named_ones() -> None:
    assert FUSION_METHODS == ("adaptive", "rrf", "convex", "dbsf", "zscore")


# -- DBSF -------------------------------------------------------------------------------


def test_dbsf_by_hand() -> None:
    hits = dbsf_fusion({"bm25": BM25, "dense": DENSE}, weights={"bm25": 1.0, "dense": 0.5})
    # bm25 [0.9, 0.5, 0.1]: mean 0.5; sample variance (0.4² + 0 + 0.4²) / (3 - 1) = 0.16, sd 0.4;
    #   range mean +- 3 sd = [-0.7, 1.7], width 2.4: a 1.6/2.4 = 2/3, b 1.2/2.4 = 1/2, c 0.8/2.4 = 1/3.
    # dense [0.8, 0.6]: mean 0.7, sample sd 0.2 / sqrt(2); any two scores map to
    #   0.5 +- (0.1) / (6 * 0.2 / sqrt(2)) = 0.5 +- sqrt(2)/12: c 0.61785, d 0.38215.
    # weighted sum (dense x 0.5): a 2/3; c 1/3 + 0.5*(0.5 + sqrt2/12); b 1/2; d 0.5*(0.5 - sqrt2/12).
    expected = [
        ("a", 2 / 3),
        ("c", 1 / 3 + 0.5 * (0.5 + SQRT2 / 12)),  # 0.64226
        ("b", 0.5),
        ("d", 0.5 * (0.5 - SQRT2 / 12)),  # 0.19107
    ]
    assert_fused(hits, expected)
    assert hits[1].stages == {
        "bm25": StageScore(rank=3, score=0.1),
        "dense": StageScore(rank=1, score=0.8),
        "dbsf": StageScore(rank=2, score=hits[1].score),  # the hit's score, checked above
    }
    assert all(h.stages["dbsf"].score == h.score for h in hits)


def test_dbsf_is_not_clipped_beyond_three_sd_as_in_qdrant() -> None:
    # Scores 10, 0 x 10: mean 10/11, sample variance ((100/11)² + 10 (10/11)²) / 10 = 100/11,
    # so sd = 10/sqrt(11) and the top hit is (100/11) / sd = 10/sqrt(11) = 3.015 sd above the
    # mean: 0.5 + 3.015/6 = 1.0025, above 1, and Qdrant does not clip it either.
    ranking = [ScoredPoint("top", 10.0)] + [ScoredPoint(f"z{i:02d}", 0.0) for i in range(10)]
    hits = dbsf_fusion({"bm25": ranking})
    assert hits[0].point_id == "top"
    assert hits[0].score == pytest.approx(0.5 + 10 / math.sqrt(11) / 6, rel=1e-12)
    assert hits[0].score > 1.0
    assert hits[1].score == pytest.approx(0.5 - (10 / 11) / (10 / math.sqrt(11)) / 6, rel=1e-12)


def test_dbsf_agrees_with_qdrant_clients_own_implementation() -> None:
    """qdrant-client's local mode carries Qdrant's DBSF in Python (unweighted)."""
    from qdrant_client.http import models
    from qdrant_client.hybrid.fusion import distribution_based_score_fusion

    rng = random.Random(12)
    for _ in range(20):
        legs = {
            name: sorted(
                (ScoredPoint(f"d{i:02d}", rng.uniform(0, scale)) for i in rng.sample(range(40), n)),
                key=lambda p: -p.score,
            )
            for name, scale, n in (("bm25", 30.0, rng.randint(1, 30)), ("dense", 1.0, 25))
        }
        ours = dbsf_fusion(legs)
        uuid = {f"d{i:02d}": i for i in range(40)}
        theirs = distribution_based_score_fusion(
            [
                [models.ScoredPoint(id=uuid[p.point_id], version=0, score=p.score) for p in leg]
                for leg in legs.values()
            ],
            limit=100,
        )
        expected = {f"d{p.id:02d}": p.score for p in theirs}
        assert {h.point_id: h.score for h in ours} == pytest.approx(expected, rel=1e-9)
        assert ids(ours) == sorted(expected, key=lambda pid: -expected[pid])


# -- z-score ----------------------------------------------------------------------------


def test_zscore_by_hand_missing_hits_take_the_lists_lowest_z() -> None:
    hits = zscore_fusion({"bm25": BM25, "dense": DENSE})
    # bm25 [0.9, 0.5, 0.1]: mean 0.5, population sd sqrt(0.32 / 3) = 0.32660;
    #   z: a 0.4/0.32660 = sqrt(1.5) = 1.2247, b 0, c -sqrt(1.5); lowest -sqrt(1.5).
    # dense [0.8, 0.6]: mean 0.7, population sd 0.1: c +1, d -1; lowest -1.
    # a  sqrt(1.5) + (-1, absent from dense) = 0.2247
    # c -sqrt(1.5) + 1                       = -0.2247
    # b  0 + (-1, absent)                    = -1
    # d -sqrt(1.5) (absent from bm25) - 1    = -2.2247
    expected = [("a", SQRT_1_5 - 1), ("c", 1 - SQRT_1_5), ("b", -1.0), ("d", -SQRT_1_5 - 1)]
    assert_fused(hits, expected)
    assert hits[3].stages == {
        "dense": StageScore(rank=2, score=0.6),
        "zscore": StageScore(rank=4, score=hits[3].score),
    }
    # ranx's zmuv + wsum gives an absent hit 0 (the list's mean) instead: b, bm25's median and
    # absent from dense, would score 0 there and beat c, dense's best, at -0.2247.


def test_zscore_weights_and_a_zero_weight_tie_broken_by_best_rank() -> None:
    hits = zscore_fusion({"bm25": BM25, "dense": DENSE}, weights={"bm25": 2.0, "dense": 0.0})
    # dense has no say: a 2*sqrt(1.5), b 0, c and d both 2*(-sqrt(1.5)) (d absent from bm25
    # takes its lowest z). c's best rank is 1 (dense), d's is 2: c first.
    assert_fused(
        hits, [("a", 2 * SQRT_1_5), ("b", 0.0), ("c", -2 * SQRT_1_5), ("d", -2 * SQRT_1_5)]
    )
    assert hits[2].score == hits[3].score
    assert hits[3].stages["dense"] == StageScore(rank=2, score=0.6)


# -- degenerate lists, for every method --------------------------------------------------

# A leg with one hit or with all-equal scores: what each method gives every hit of it.
FLAT_VALUE: dict[FusionMethod, float] = {"convex": 1.0, "dbsf": 0.5, "zscore": 0.0}


@pytest.mark.parametrize("method", FUSION_METHODS)
def test_nothing_fuses_to_nothing(method: FusionMethod) -> None:
    assert fuse(method, {}) == []
    assert fuse(method, {"bm25": [], "dense": []}) == []


@pytest.mark.parametrize("method", FUSION_METHODS)
def test_an_empty_leg_changes_nothing(method: FusionMethod) -> None:
    alone = fuse(method, {"bm25": BM25})
    with_empty = fuse(method, {"bm25": BM25, "dense": []}, weights={"dense": 3.0})
    assert pairs(with_empty) == pairs(alone)
    assert [h.stages for h in with_empty] == [h.stages for h in alone]
    assert all("dense" not in h.stages for h in with_empty)


@pytest.mark.parametrize("method", ["convex", "dbsf", "zscore"])
def test_one_hit_and_all_equal_scores(method: FusionMethod) -> None:
    flat = FLAT_VALUE[method]
    one = fuse(method, {"dense": [ScoredPoint("x", 0.37)]}, weights={"dense": 2.0})
    assert pairs(one) == [("x", 2.0 * flat)]
    # Three equal scores: sd 0 and span 0. Every hit gets the flat value; order by rank.
    equal = [ScoredPoint("q", 3.0), ScoredPoint("p", 3.0), ScoredPoint("r", 3.0)]
    hits = fuse(method, {"bm25": equal})
    assert pairs(hits) == [("q", flat), ("p", flat), ("r", flat)]
    assert [h.stages[method].rank for h in hits] == [1, 2, 3]


def test_one_hit_leg_beside_a_full_one_by_hand() -> None:
    legs = {"bm25": BM25, "dense": [ScoredPoint("d", 0.6)]}
    # convex: d normalises to 1 (its list found it); a 1, b 0.5, c 0.
    assert_fused(convex_fusion(legs), [("a", 1.0), ("d", 1.0), ("b", 0.5), ("c", 0.0)])
    # dbsf (Qdrant): d 0.5; a 2/3, b 1/2, c 1/3. b and d tie at 0.5; d's best rank is 1 and
    # b's 2, so d comes first (the point id decides only between equal best ranks).
    assert_fused(dbsf_fusion(legs), [("a", 2 / 3), ("d", 0.5), ("b", 0.5), ("c", 1 / 3)])
    # zscore: the one-hit list has z 0 for d and for everyone absent: bm25 alone decides,
    # d (absent from bm25) gets bm25's lowest z and ties with c, ahead of it by best rank.
    assert_fused(
        zscore_fusion(legs), [("a", SQRT_1_5), ("b", 0.0), ("d", -SQRT_1_5), ("c", -SQRT_1_5)]
    )


@pytest.mark.parametrize("method", FUSION_METHODS)
def test_zero_weight_keeps_the_leg_in_the_explanation_only(method: FusionMethod) -> None:
    legs = {"bm25": BM25, "dense": [ScoredPoint("c", 0.8), ScoredPoint("e", 0.7)]}
    zeroed = fuse(method, legs, weights={"bm25": 1.0, "dense": 0.0})
    alone = {h.point_id: h.score for h in fuse(method, {"bm25": BM25})}
    by_id = {h.point_id: h for h in zeroed}
    for pid, score in alone.items():
        assert by_id[pid].score == pytest.approx(score, abs=1e-15)
    assert by_id["c"].stages["dense"] == StageScore(rank=1, score=0.8)
    # e, only in the zero-weight leg, scores what bm25 gives an absent hit and comes last.
    absent = min(alone.values()) if method == "zscore" else 0.0
    assert zeroed[-1].point_id == "e"
    assert zeroed[-1].score == pytest.approx(absent, abs=1e-15)
    assert ids(zeroed)[:3] == ["a", "b", "c"]


# -- determinism and dispatch ------------------------------------------------------------


def random_legs(seed: int, docs: int = 40, depth: int = 25) -> dict[str, list[ScoredPoint]]:
    rng = random.Random(seed)
    legs = {}
    for name, scale in (("bm25", 25.0), ("dense", 1.0)):
        chosen = rng.sample(range(docs), depth)
        # Scores rounded to a coarse grid so that equal scores (and fused ties) do occur.
        points = [ScoredPoint(f"d{i:02d}", round(rng.uniform(0, scale), 1)) for i in chosen]
        legs[name] = sorted(points, key=lambda p: -p.score)
    return legs


@pytest.mark.parametrize("method", FUSION_METHODS)
def test_same_input_same_ranking_whatever_the_leg_order(method: FusionMethod) -> None:
    for seed in range(10):
        legs = random_legs(seed)
        weights = {"bm25": 0.3, "dense": 0.7}
        first = fuse(method, legs, weights, k=20)
        again = fuse(method, legs, weights, k=20)
        swapped = fuse(method, dict(reversed(legs.items())), weights, k=20)
        assert pairs(first) == pairs(again) == pairs(swapped)  # exact floats, exact order
        assert [h.stages for h in first] == [h.stages for h in swapped]
        # Ties are broken by best rank, then point id.
        for before, after in zip(first, first[1:], strict=False):
            if before.score == after.score:
                best = [
                    min(s.rank for n, s in h.stages.items() if n != method) for h in (before, after)
                ]
                assert (best[0], before.point_id) < (best[1], after.point_id)


def test_dispatch_calls_the_named_method() -> None:
    legs = {"bm25": BM25, "dense": DENSE}
    assert pairs(fuse("rrf", legs, k=7)) == pairs(weighted_rrf(legs, k=7))
    assert pairs(fuse("convex", legs)) == pairs(convex_fusion(legs))
    assert pairs(fuse("dbsf", legs)) == pairs(dbsf_fusion(legs))
    assert pairs(fuse("zscore", legs)) == pairs(zscore_fusion(legs))
    assert pairs(fuse("adaptive", legs)) == pairs(adaptive_fusion(legs))
    with pytest.raises(ValueError, match="fusion method must be one of"):
        fuse("borda", legs)  # type: ignore[arg-type]


# -- ranx's own fusion code ---------------------------------------------------------------


def ranx_scores(
    legs: dict[str, list[ScoredPoint]], norm: str | None, method: str, params: dict[str, object]
) -> dict[str, float]:
    from ranx import Run
    from ranx import fuse as ranx_fuse

    runs = [Run({"q": {p.point_id: p.score for p in leg}}, name=n) for n, leg in legs.items()]
    fused = ranx_fuse(runs, norm=norm, method=method, params=params)
    return dict(fused.to_dict()["q"])


def continuous_legs(seed: int, shared_docs: bool) -> dict[str, list[ScoredPoint]]:
    """Distinct scores (no ties, so ranx's sort and ours order equal scores alike)."""
    rng = random.Random(seed)
    everyone = list(range(36))
    legs = {}
    for name, scale in (("bm25", 25.0), ("dense", 1.0)):
        chosen = everyone if shared_docs else rng.sample(everyone, 24)
        points = [ScoredPoint(f"d{i:02d}", rng.uniform(0.01, scale)) for i in chosen]
        legs[name] = sorted(points, key=lambda p: -p.score)
    return legs


def assert_agrees(ours: list[Hit], theirs: dict[str, float]) -> None:
    assert {h.point_id: h.score for h in ours} == pytest.approx(theirs, rel=1e-9, abs=1e-12)
    # Our order follows their scores (equal RRF sums may be ordered differently: ours by best
    # rank then id, theirs by sort order, so only non-increasing is asserted).
    ordered = [theirs[h.point_id] for h in ours]
    assert all(x >= y - 1e-12 for x, y in zip(ordered, ordered[1:], strict=False))


@pytest.mark.slow  # ranx's numba kernels compile on first use: a minute on a cold machine
def test_rrf_minmax_and_zscore_agree_with_ranx() -> None:
    for seed in range(5):
        legs = continuous_legs(seed, shared_docs=False)
        # RRF: ranx's rrf is unweighted, 1 / (k + rank), ranks 1-based as ours.
        assert_agrees(weighted_rrf(legs, k=60), ranx_scores(legs, None, "rrf", {"k": 60}))
        assert_agrees(weighted_rrf(legs, k=5), ranx_scores(legs, None, "rrf", {"k": 5}))
        # Min-max + weighted sum: an absent document gets 0 in both.
        weights = {"bm25": 0.7, "dense": 0.3}
        theirs = ranx_scores(legs, "min-max", "wsum", {"weights": [0.7, 0.3]})
        assert_agrees(convex_fusion(legs, weights), theirs)
        # z-score (ranx "zmuv": population sd, as ours): ranx gives an absent document 0 and
        # ours the leg's lowest z, so compare where every document is in both legs.
        shared = continuous_legs(seed, shared_docs=True)
        theirs = ranx_scores(shared, "zmuv", "wsum", {"weights": [0.7, 0.3]})
        assert_agrees(zscore_fusion(shared, weights), theirs)
    # ranx has no DBSF; qdrant-client's copy of Qdrant's is the reference above.


# -- through the searcher, on the real engines --------------------------------------------


@pytest.fixture(scope="module")
def searcher(
    tmp_path_factory: pytest.TempPathFactory,
    embedder: SentenceTransformerEmbedder,
    sample_chunks: list[Chunk],
    sample_vectors: np.ndarray,
) -> Iterator[HybridSearcher]:
    root = tmp_path_factory.mktemp("fusion-methods")
    dense = QdrantEdgeDenseStore(root / "dense", embedder.info)
    dense.upsert(sample_chunks, sample_vectors)
    sparse = TantivySparseStore(root / "sparse")
    sparse.upsert(sample_chunks)
    sparse.commit()
    built = HybridSearcher(embedder, dense, sparse)
    yield built
    built.close()
    sparse.close()
    dense.close()


@pytest.mark.parametrize("method", ["dbsf", "zscore"])
def test_searcher_fuses_its_legs_with_the_named_method(
    searcher: HybridSearcher, method: FusionMethod
) -> None:
    query = "ranking fusion of lexical and vector results"
    weights = {"bm25": 0.4, "dense": 0.6}
    response = searcher.search(query, top_k=8, fusion=method, weights=weights)
    vector = searcher.embedder.encode_queries([query])[0]
    legs = {"dense": searcher.dense.search(vector, 100), "bm25": searcher.sparse.search(query, 100)}
    expected = fuse(method, legs, weights)[:8]
    assert ids(response.hits) == ids(expected)
    assert [h.score for h in response.hits] == pytest.approx([h.score for h in expected])
    assert all(h.stages[method].score == h.score for h in response.hits)
    assert response.hits[0].doc_id == "rrf-fusion"


def test_searcher_refuses_an_unknown_method(searcher: HybridSearcher) -> None:
    with pytest.raises(InvalidRequestError, match="fusion must be one of"):
        searcher.search("planets", fusion="borda")  # type: ignore[arg-type]
