"""``HybridSearcher`` over Qdrant Edge and Tantivy with the real MiniLM model on the sample."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from model_helpers import cross_encoder_predict, save_seeded_cross_encoder

from braid.engine.dense.edge import QdrantEdgeDenseStore
from braid.engine.errors import InvalidFilterError, InvalidRequestError
from braid.engine.filters import parse_filter
from braid.engine.fusion import RRF_K
from braid.engine.models import Chunk, Hit, ScoredPoint
from braid.engine.searcher import HybridSearcher, SearchDefaults
from braid.engine.sparse.analysis import bm25_text
from braid.engine.sparse.tantivy_store import TantivySparseStore

if TYPE_CHECKING:
    from braid.engine.embedder import SentenceTransformerEmbedder

QUERIES = [
    "how does bm25 score documents",
    "ranking fusion of lexical and vector results",
    "planets around other stars",
    "Lucene postings lists",
    "a hot drink",
]
RRF = SearchDefaults(fusion="rrf")
SCIENCE = {"saturn-rings", "exoplanet-transit", "photosynthesis"}
KITCHEN = {"sourdough", "espresso"}


@pytest.fixture(scope="module")
def stores(
    tmp_path_factory: pytest.TempPathFactory,
    embedder: SentenceTransformerEmbedder,
    sample_chunks: list[Chunk],
    sample_vectors: np.ndarray,
) -> Iterator[tuple[QdrantEdgeDenseStore, TantivySparseStore]]:
    root = tmp_path_factory.mktemp("searcher")
    dense = QdrantEdgeDenseStore(root / "dense", embedder.info)
    dense.upsert(sample_chunks, sample_vectors)
    sparse = TantivySparseStore(root / "sparse")
    sparse.upsert(sample_chunks)
    sparse.commit()
    yield dense, sparse
    sparse.close()
    dense.close()


@pytest.fixture(scope="module")
def searcher(
    embedder: SentenceTransformerEmbedder,
    stores: tuple[QdrantEdgeDenseStore, TantivySparseStore],
) -> Iterator[HybridSearcher]:
    # The fusion these tests compute by hand; the adaptive default has its own tests.
    built = HybridSearcher(embedder, *stores, defaults=RRF)
    yield built
    built.close()


@pytest.fixture(scope="module")
def cross_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cross-encoder made from the MiniLM weights with a seeded random head.

    It ranks nothing well; it is a real model whose scores the reranker must follow.
    """
    return save_seeded_cross_encoder(tmp_path_factory.mktemp("cross-encoder"))


@pytest.fixture(scope="module")
def reranking_searcher(
    embedder: SentenceTransformerEmbedder,
    stores: tuple[QdrantEdgeDenseStore, TantivySparseStore],
    cross_encoder_dir: Path,
) -> Iterator[HybridSearcher]:
    from braid.engine.reranker import CrossEncoderReranker

    reranker = CrossEncoderReranker(str(cross_encoder_dir), device="cpu")
    built = HybridSearcher(embedder, *stores, reranker=reranker, defaults=RRF)
    yield built
    built.close()


def doc_ids(hits: list[Hit]) -> list[str]:
    return [h.doc_id for h in hits]


@pytest.mark.parametrize(
    ("query", "mode", "expected"),
    [
        # bm25: every document with a query term, so the whole list is known.
        ("planets around other stars", "bm25", ["exoplanet-transit", "saturn-rings"]),
        ("Lucene postings lists", "bm25", ["inverted-index", "rrf-fusion"]),
        ("baking bread", "bm25", ["sourdough"]),
        # dense and hybrid rank all 12: the head is what a reader expects.
        ("planets around other stars", "dense", ["exoplanet-transit", "saturn-rings"]),
        ("baking bread", "dense", ["sourdough"]),
        ("a hot drink", "dense", ["espresso"]),
        ("planets around other stars", "hybrid", ["exoplanet-transit", "saturn-rings"]),
        ("Lucene postings lists", "hybrid", ["inverted-index", "rrf-fusion"]),
        ("how does bm25 score documents", "hybrid", ["bm25-intro", "rrf-fusion", "cross-encoder"]),
        ("baking bread", "hybrid", ["sourdough"]),
    ],
)
def test_expected_top_hits(
    searcher: HybridSearcher, query: str, mode: Any, expected: list[str]
) -> None:
    response = searcher.search(query, top_k=10, mode=mode)
    if mode == "bm25":
        assert doc_ids(response.hits) == expected
    else:
        assert len(response.hits) == 10
        assert doc_ids(response.hits)[: len(expected)] == expected
    assert response.mode == mode


def _direct(
    searcher: HybridSearcher, query: str, depth: int
) -> tuple[list[ScoredPoint], list[ScoredPoint]]:
    vector = searcher.embedder.encode_queries([query])[0]
    return searcher.sparse.search(query, depth), searcher.dense.search(vector, depth)


@pytest.mark.parametrize("query", QUERIES)
def test_single_modes_return_the_retriever_unchanged(searcher: HybridSearcher, query: str) -> None:
    bm25, dense = _direct(searcher, query, 100)
    for mode, expected in (("bm25", bm25), ("dense", dense)):
        hits = searcher.search(query, top_k=5, mode=mode).hits
        assert [h.point_id for h in hits] == [p.point_id for p in expected[:5]]
        assert [h.score for h in hits] == pytest.approx([p.score for p in expected[:5]], abs=1e-6)
        assert all(set(h.stages) == {mode} for h in hits)
        assert [h.stages[mode].rank for h in hits] == list(range(1, len(hits) + 1))


@pytest.mark.parametrize("query", QUERIES)
@pytest.mark.parametrize(
    ("weights", "k"), [(None, RRF_K), ({"bm25": 0.7, "dense": 0.3}, 10), ({"dense": 2.0}, 2)]
)
def test_hybrid_scores_are_rrf_of_the_reported_ranks(
    searcher: HybridSearcher, query: str, weights: dict[str, float] | None, k: float
) -> None:
    response = searcher.search(query, top_k=12, mode="hybrid", weights=weights, rrf_k=k)
    bm25, dense = _direct(searcher, query, 100)
    bm25_rank = {p.point_id: r for r, p in enumerate(bm25, start=1)}
    dense_rank = {p.point_id: r for r, p in enumerate(dense, start=1)}
    w = {"bm25": 1.0, "dense": 1.0, **(weights or {})}
    assert len(response.hits) == 12  # dense ranks every chunk
    for position, hit in enumerate(response.hits, start=1):
        expected = 0.0
        if hit.point_id in bm25_rank:
            assert hit.stages["bm25"].rank == bm25_rank[hit.point_id]
            expected += w["bm25"] / (k + bm25_rank[hit.point_id])
        else:
            assert "bm25" not in hit.stages
        assert hit.stages["dense"].rank == dense_rank[hit.point_id]
        expected += w["dense"] / (k + dense_rank[hit.point_id])
        assert hit.score == pytest.approx(expected, rel=1e-12)
        assert hit.stages["rrf"].rank == position
        assert hit.stages["rrf"].score == hit.score
    scores = [h.score for h in response.hits]
    assert scores == sorted(scores, reverse=True)


def test_convex_fusion_scores_are_weighted_min_max(searcher: HybridSearcher) -> None:
    query = "ranking fusion of lexical and vector results"
    weights = {"bm25": 0.55, "dense": 0.45}
    response = searcher.search(query, top_k=12, fusion="convex", weights=weights)
    bm25, dense = _direct(searcher, query, 100)

    def normalised(ranking: list[ScoredPoint]) -> dict[str, float]:
        low, high = ranking[-1].score, ranking[0].score
        return {p.point_id: (p.score - low) / (high - low) for p in ranking}

    nb, nd = normalised(bm25), normalised(dense)
    for hit in response.hits:
        expected = 0.55 * nb.get(hit.point_id, 0.0) + 0.45 * nd[hit.point_id]
        assert hit.score == pytest.approx(expected, abs=1e-6)
        assert "convex" in hit.stages
    assert response.hits[0].doc_id == "rrf-fusion"


def test_zero_weight_leaves_the_other_retriever_in_charge(searcher: HybridSearcher) -> None:
    query = "ranking fusion of lexical and vector results"
    bm25, _ = _direct(searcher, query, 100)
    hits = searcher.search(query, top_k=12, weights={"bm25": 1.0, "dense": 0.0}).hits
    assert [h.point_id for h in hits[: len(bm25)]] == [p.point_id for p in bm25]


@pytest.mark.parametrize("mode", ["bm25", "dense", "hybrid"])
@pytest.mark.parametrize(
    ("raw", "allowed"),
    [
        ({"source": "science"}, SCIENCE),
        ({"source": "kitchen"}, KITCHEN),
        (
            {"year": {"$lt": 2019}, "reviewed": True},
            {"inverted-index", "saturn-rings", "photosynthesis"},
        ),
    ],
)
def test_filters_apply_in_every_mode(
    searcher: HybridSearcher, mode: Any, raw: dict[str, Any], allowed: set[str]
) -> None:
    query = "planets and stars, bread and coffee, ranking lists"
    response = searcher.search(query, top_k=10, mode=mode, filter=raw)
    assert response.hits, (mode, raw)
    assert set(doc_ids(response.hits)) <= allowed
    if mode != "bm25":  # pre-filtering: dense fills top-k with every allowed document
        assert set(doc_ids(response.hits)) == allowed
    # A parsed filter works the same as its JSON form.
    again = searcher.search(query, top_k=10, mode=mode, filter=parse_filter(raw))
    assert [h.point_id for h in again.hits] == [h.point_id for h in response.hits]


def test_filter_that_matches_nothing(searcher: HybridSearcher) -> None:
    assert searcher.search("bread", filter={"source": "nowhere"}).hits == []


def test_hits_carry_their_chunks(searcher: HybridSearcher, sample_chunks: list[Chunk]) -> None:
    by_point = {c.point_id: c for c in sample_chunks}
    response = searcher.search("how does bm25 score documents", top_k=12)
    assert len(response.hits) == 12
    for hit in response.hits:
        assert hit.chunk == by_point[hit.point_id]
        assert hit.chunk_id == f"{hit.doc_id}#0"


def test_response_metadata_and_timings(
    searcher: HybridSearcher, embedder: SentenceTransformerEmbedder
) -> None:
    hybrid = searcher.search("ranking", top_k=3)
    assert hybrid.mode == "hybrid"
    assert hybrid.embedding_model == embedder.info
    assert hybrid.reranker_model is None
    assert {"embed", "dense", "sparse", "fuse", "fetch", "total"} <= set(hybrid.timings_ms)
    assert "rerank" not in hybrid.timings_ms
    assert all(v >= 0 for v in hybrid.timings_ms.values())
    bm25 = searcher.search("ranking", top_k=3, mode="bm25")
    assert set(bm25.timings_ms) == {"sparse", "fuse", "fetch", "total"}
    dense = searcher.search("ranking", top_k=3, mode="dense")
    assert set(dense.timings_ms) == {"embed", "dense", "fuse", "fetch", "total"}


def test_top_k_and_candidates(searcher: HybridSearcher) -> None:
    assert len(searcher.search("ranking documents", top_k=4).hits) == 4
    # candidates below top_k are raised to top_k, so top_k is still filled.
    hits = searcher.search("ranking documents", top_k=4, mode="dense", candidates=1).hits
    assert len(hits) == 4
    # Each retriever contributes its best `candidates` hits only. By default hnsw-index
    # reaches the fused top 3 of this query with dense rank 12; with 3 candidates it cannot.
    query = "a drink made from beans"
    wide = searcher.search(query, top_k=3).hits
    assert max(s.rank for h in wide for s in h.stages.values()) > 3
    narrow = searcher.search(query, top_k=3, candidates=3).hits
    assert len(narrow) == 3
    assert all(h.stages[r].rank <= 3 for h in narrow for r in ("bm25", "dense") if r in h.stages)


@pytest.mark.parametrize(
    "params",
    [
        {"mode": "sparse"},
        {"query": "   "},
        {"top_k": 0},
        {"top_k": 1001},
        {"weights": {"splade": 1.0}},
        {"weights": {"bm25": -0.5}},
        {"candidates": 0},
        {"candidates": 10_001},
        {"rerank": True},
        {"rerank_depth": 0},
    ],
)
def test_bad_parameters_raise_invalid_request(
    searcher: HybridSearcher, params: dict[str, Any]
) -> None:
    query = params.pop("query", "ranking")
    with pytest.raises(InvalidRequestError):
        searcher.search(query, **params)


def test_bad_filter_raises_invalid_filter(searcher: HybridSearcher) -> None:
    with pytest.raises(InvalidFilterError) as caught:
        searcher.search("ranking", filter={"year": {"$between": [1, 2]}})
    assert caught.value.path == "$.year.$between"


def test_defaults_come_from_search_defaults(
    embedder: SentenceTransformerEmbedder,
    stores: tuple[QdrantEdgeDenseStore, TantivySparseStore],
) -> None:
    defaults = SearchDefaults(
        weights={"bm25": 0.0, "dense": 1.0}, rrf_k=5, candidates=3, fusion="rrf"
    )
    searcher = HybridSearcher(embedder, *stores, defaults=defaults)
    try:
        hits = searcher.search("Lucene postings lists", top_k=3).hits
    finally:
        searcher.close()
    dense = searcher.dense.search(embedder.encode_queries(["Lucene postings lists"])[0], 3)
    assert [h.point_id for h in hits] == [p.point_id for p in dense]
    assert [h.score for h in hits] == pytest.approx([1 / 6, 1 / 7, 1 / 8])


def _passage(hit: Hit) -> str:
    assert hit.chunk is not None
    return bm25_text(hit.chunk)  # title, newline, text


@pytest.mark.parametrize("query", ["ranking fusion", "planets around other stars"])
def test_rerank_follows_the_cross_encoder(
    reranking_searcher: HybridSearcher, cross_encoder_dir: Path, query: str
) -> None:
    depth = 5
    fused = reranking_searcher.search(query, top_k=10, rerank=False).hits
    response = reranking_searcher.search(query, top_k=10, rerank_depth=depth)
    assert response.reranker_model == str(cross_encoder_dir)
    assert "rerank" in response.timings_ms

    # The cross-encoder's own scores for the fused head, computed here independently.
    predicted = cross_encoder_predict(
        cross_encoder_dir, [(query, _passage(h)) for h in fused[:depth]]
    )
    own = {h.point_id: float(s) for h, s in zip(fused[:depth], predicted, strict=True)}
    expected = sorted(own, key=lambda pid: (-own[pid], pid))

    head, tail = response.hits[:depth], response.hits[depth:]
    assert [h.point_id for h in head] == expected
    assert [h.score for h in head] == pytest.approx([own[pid] for pid in expected], abs=1e-5)
    assert [h.stages["rerank"].rank for h in head] == list(range(1, depth + 1))
    assert all(h.stages["rerank"].score == h.score for h in head)
    assert all("rrf" in h.stages for h in head)  # the fused evidence stays
    # Beyond the depth: the fused order and scores, untouched.
    assert [h.point_id for h in tail] == [h.point_id for h in fused[depth:]]
    assert [h.score for h in tail] == [h.score for h in fused[depth:]]
    assert all("rerank" not in h.stages for h in tail)
    # Guard: the random head does reorder the fused head, so the test tells the two apart.
    assert [h.point_id for h in head] != [h.point_id for h in fused[:depth]]


def test_rerank_blend_mixes_the_cross_encoder_with_the_fused_score(
    reranking_searcher: HybridSearcher, cross_encoder_dir: Path
) -> None:
    query, depth, share = "ranking fusion", 6, 0.3
    fused = reranking_searcher.search(query, top_k=10, rerank=False).hits
    response = reranking_searcher.search(query, top_k=10, rerank_depth=depth, rerank_blend=share)

    predicted = cross_encoder_predict(
        cross_encoder_dir, [(query, _passage(h)) for h in fused[:depth]]
    )
    cross = np.asarray(predicted, dtype=np.float64)
    first = np.asarray([h.score for h in fused[:depth]])
    blended = share * (cross - cross.min()) / np.ptp(cross) + (1 - share) * (
        first - first.min()
    ) / np.ptp(first)
    own = {h.point_id: float(b) for h, b in zip(fused[:depth], blended, strict=True)}
    expected = sorted(own, key=lambda pid: (-own[pid], pid))
    raw = {h.point_id: float(s) for h, s in zip(fused[:depth], predicted, strict=True)}

    head, tail = response.hits[:depth], response.hits[depth:]
    assert [h.point_id for h in head] == expected
    assert [h.score for h in head] == pytest.approx([own[pid] for pid in expected], abs=1e-5)
    # stages["rerank"]: the final rank and the cross-encoder's own score.
    assert [h.stages["rerank"].rank for h in head] == list(range(1, depth + 1))
    assert [h.stages["rerank"].score for h in head] == pytest.approx(
        [raw[pid] for pid in expected], abs=1e-5
    )
    assert [h.point_id for h in tail] == [h.point_id for h in fused[depth:]]
    # Guard: the blend orders differently from both the fused and the cross-encoder's order.
    assert expected != [h.point_id for h in fused[:depth]]
    assert expected != sorted(raw, key=lambda pid: (-raw[pid], pid))
    # 0 keeps the fused order.
    kept = reranking_searcher.search(query, top_k=10, rerank_depth=depth, rerank_blend=0.0)
    assert [h.point_id for h in kept.hits] == [h.point_id for h in fused]


@pytest.mark.parametrize("share", [-0.1, 1.5])
def test_rerank_blend_out_of_range_is_refused(
    reranking_searcher: HybridSearcher, share: float
) -> None:
    with pytest.raises(InvalidRequestError, match="rerank_blend"):
        reranking_searcher.search("bread", top_k=3, rerank_blend=share)


def test_rerank_depth_beyond_top_k_reranks_more_candidates(
    reranking_searcher: HybridSearcher, cross_encoder_dir: Path
) -> None:
    query = "how does bm25 score documents"
    fused = reranking_searcher.search(query, top_k=8, rerank=False).hits
    predicted = cross_encoder_predict(cross_encoder_dir, [(query, _passage(h)) for h in fused])
    own = {h.point_id: float(s) for h, s in zip(fused, predicted, strict=True)}
    expected = sorted(own, key=lambda pid: (-own[pid], pid))[:3]
    hits = reranking_searcher.search(query, top_k=3, rerank_depth=8).hits
    assert [h.point_id for h in hits] == expected


def test_reranker_is_used_by_default_and_can_be_skipped(
    reranking_searcher: HybridSearcher,
) -> None:
    default = reranking_searcher.search("bread", top_k=3)
    assert default.reranker_model is not None
    assert all("rerank" in h.stages for h in default.hits)
    skipped = reranking_searcher.search("bread", top_k=3, rerank=False)
    assert skipped.reranker_model is None
    assert all("rerank" not in h.stages for h in skipped.hits)
