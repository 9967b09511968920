"""Adaptive fusion: the rule by hand, its packaged artefact, and the searcher's default."""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib import resources
from typing import TYPE_CHECKING

import numpy as np
import pytest

from braid.engine.adaptive import AdaptiveRule, packaged_rule, rule_for_model, rule_from_json
from braid.engine.dense.edge import QdrantEdgeDenseStore
from braid.engine.fusion import adaptive_fusion, adaptive_weights, convex_fusion, fuse
from braid.engine.models import DEFAULT_MODEL, Chunk, Hit, ScoredPoint
from braid.engine.searcher import HybridSearcher
from braid.engine.sparse.tantivy_store import TantivySparseStore

if TYPE_CHECKING:
    from braid.engine.embedder import SentenceTransformerEmbedder

RULE = AdaptiveRule(base=0.35, slope=-1.5, center=0.65, low=0.05, high=0.95, models=("m",))
BM25 = [ScoredPoint("a", 0.9), ScoredPoint("b", 0.5), ScoredPoint("c", 0.1)]
DENSE = [ScoredPoint("c", 0.8), ScoredPoint("d", 0.6)]


def assert_fused(hits: list[Hit], expected: list[tuple[str, float]]) -> None:
    """Exact ids in order, scores to 1e-12."""
    assert [h.point_id for h in hits] == [pid for pid, _ in expected]
    assert [h.score for h in hits] == pytest.approx([s for _, s in expected], abs=1e-12)


@pytest.mark.parametrize(
    ("dense_top", "share"),
    [
        (0.65, 0.35),  # at the centre: the base
        (0.80, 0.125),  # 0.35 - 1.5 * 0.15
        (0.45, 0.65),  # 0.35 + 1.5 * 0.2
        (0.20, 0.95),  # 1.025, clipped to high
        (1.00, 0.05),  # -0.175, clipped to low
    ],
)
def test_share_by_hand(dense_top: float, share: float) -> None:
    assert RULE.bm25_share(dense_top) == pytest.approx(share, abs=1e-12)


def test_adaptive_fusion_by_hand() -> None:
    legs = {"bm25": BM25, "dense": DENSE}
    # dense top 0.8: bm25 share 0.125, dense 0.875. Min-max: bm25 a 1, b 0.5, c 0;
    # dense c 1, d 0. a 0.125, b 0.0625, c 0.875, d 0.
    assert adaptive_weights(legs, rule=RULE) == pytest.approx({"bm25": 0.125, "dense": 0.875})
    hits = adaptive_fusion(legs, rule=RULE)
    assert [h.point_id for h in hits] == ["c", "a", "b", "d"]
    assert [h.score for h in hits] == pytest.approx([0.875, 0.125, 0.0625, 0.0], abs=1e-15)
    assert [h.stages["adaptive"].rank for h in hits] == [1, 2, 3, 4]
    # Given weights multiply the shares: 2 x 0.125 for bm25, 0.5 x 0.875 for dense.
    weighted = adaptive_fusion(legs, {"bm25": 2.0, "dense": 0.5}, rule=RULE)
    assert_fused(weighted, [("c", 0.4375), ("a", 0.25), ("b", 0.125), ("d", 0.0)])


def test_a_low_dense_top_hands_the_weight_to_bm25() -> None:
    legs = {"bm25": BM25, "dense": [ScoredPoint("c", 0.3), ScoredPoint("d", 0.2)]}
    # share clip(0.35 + 1.5 * 0.35) = 0.875: a 0.875, b 0.4375, c 0.125, d 0.
    hits = adaptive_fusion(legs, rule=RULE)
    assert_fused(hits, [("a", 0.875), ("b", 0.4375), ("c", 0.125), ("d", 0.0)])


def test_the_rule_steps_aside_with_one_list_or_a_zero_weight() -> None:
    assert adaptive_weights({"bm25": BM25, "dense": []}, rule=RULE) == {"bm25": 1.0, "dense": 1.0}
    assert adaptive_weights({"dense": DENSE}, rule=RULE) == {"bm25": 1.0, "dense": 1.0}
    zeroed = adaptive_weights({"bm25": BM25, "dense": DENSE}, {"bm25": 0.0}, rule=RULE)
    assert zeroed == {"bm25": 0.0, "dense": 1.0}
    # dense alone in charge: c 1, d (dense's minimum) 0 like the bm25-only a and b; the
    # ties go by best rank (a 1, b 2, d 2), then point id.
    hits = adaptive_fusion({"bm25": BM25, "dense": DENSE}, {"bm25": 0.0}, rule=RULE)
    assert_fused(hits, [("c", 1.0), ("a", 0.0), ("b", 0.0), ("d", 0.0)])


def test_another_model_gets_the_fixed_share_fallback() -> None:
    fallback = RULE.for_model("someone/else", 0.5)
    assert fallback.bm25_share(0.99) == fallback.bm25_share(0.01) == 0.5
    assert RULE.for_model("m") is RULE
    # A fixed share of 1/2 each is convex fusion at half scale: same order, scores halved.
    legs = {"bm25": BM25, "dense": DENSE}
    half = adaptive_fusion(legs, rule=fallback)
    convex = convex_fusion(legs)
    assert [h.point_id for h in half] == [h.point_id for h in convex]
    assert [h.score for h in half] == pytest.approx([h.score / 2 for h in convex])


def test_the_packaged_rule_is_fitted_on_a_train_split_for_the_default_model() -> None:
    rule, fallback = packaged_rule()
    document = json.loads(
        resources.files("braid.engine").joinpath("rules", "adaptive-v1.json").read_text()
    )
    assert rule.version == "adaptive-v1"
    assert rule.fits(DEFAULT_MODEL)
    assert rule_for_model(DEFAULT_MODEL) is rule
    assert 0.0 <= rule.low <= rule.base <= rule.high <= 1.0
    assert rule.slope < 0  # a more confident dense leg gets more weight
    assert fallback == 0.5
    # Never fitted on a test split: the held-out evaluation judges it.
    assert document["fitted_on"]["split"] == "train"
    assert fuse("adaptive", {"bm25": BM25, "dense": DENSE}) == fuse(
        "adaptive", {"bm25": BM25, "dense": DENSE}, rule=rule
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [({"feature": "query_length"}, "unknown adaptive-rule feature"), ({"low": 0.9}, "low <= high")],
)
def test_a_bad_artefact_is_refused(change: dict[str, object], message: str) -> None:
    document = json.loads(
        resources.files("braid.engine").joinpath("rules", "adaptive-v1.json").read_text()
    )
    document["high"] = 0.5
    with pytest.raises(ValueError, match=message):
        rule_from_json(document | change)


# -- through the searcher -------------------------------------------------------------------


@pytest.fixture(scope="module")
def default_searcher(
    tmp_path_factory: pytest.TempPathFactory,
    embedder: SentenceTransformerEmbedder,
    sample_chunks: list[Chunk],
    sample_vectors: np.ndarray,
) -> Iterator[HybridSearcher]:
    root = tmp_path_factory.mktemp("adaptive")
    dense = QdrantEdgeDenseStore(root / "dense", embedder.info)
    dense.upsert(sample_chunks, sample_vectors)
    sparse = TantivySparseStore(root / "sparse")
    sparse.upsert(sample_chunks)
    sparse.commit()
    searcher = HybridSearcher(embedder, dense, sparse)  # default settings: adaptive
    yield searcher
    searcher.close()
    sparse.close()
    dense.close()


@pytest.mark.parametrize("query", ["a hot drink", "Lucene postings lists", "rings of saturn"])
def test_the_default_is_adaptive_fusion_of_the_two_legs(
    default_searcher: HybridSearcher, embedder: SentenceTransformerEmbedder, query: str
) -> None:
    response = default_searcher.search(query, top_k=50)
    dense = default_searcher.dense.search(embedder.encode_queries([query])[0], 100)
    bm25 = default_searcher.sparse.search(query, 100)
    rule, _ = packaged_rule()
    share = rule.bm25_share(dense[0].score)
    assert response.fusion_weights == pytest.approx({"bm25": share, "dense": 1 - share})

    # Min-max of each leg computed here, the weighted sum by hand.
    def normalised(points: list[ScoredPoint]) -> dict[str, float]:
        low, high = points[-1].score, points[0].score
        if high == low:  # one hit, or all equal: the list found them, 1 each
            return {p.point_id: 1.0 for p in points}
        return {p.point_id: (p.score - low) / (high - low) for p in points}

    nb, nd = normalised(bm25), normalised(dense)
    expected = {
        pid: share * nb.get(pid, 0.0) + (1 - share) * nd.get(pid, 0.0) for pid in nb.keys() | nd
    }
    got = {h.point_id: h.score for h in response.hits}
    assert got == pytest.approx({pid: expected[pid] for pid in got}, abs=1e-6)
    assert [h.score for h in response.hits] == sorted(got.values(), reverse=True)
    assert all(0.0 <= s <= 1.0 for s in got.values())
