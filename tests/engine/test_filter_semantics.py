"""Every backend evaluates random filters exactly as the reference oracle does.

A seeded random corpus (strings, lists of strings, ints and floats with negatives, bools,
ISO dates in several spellings, a field whose type varies between documents, fields left out)
and a few hundred seeded random filters: for each filter the set of matching documents must be
the oracle's, on Qdrant Edge, on qdrant-client's local mode and on Tantivy; and a filtered
search must return the best ``k`` matching chunks (pre-filtering: top-k is filled whenever
enough chunks match). Random unit vectors stand in for embeddings: this is about filters.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from filter_oracle import matches
from qdrant_client import QdrantClient
from random_filters import N_DOCS, random_corpus, random_filter

from braid.engine.dense.edge import QdrantEdgeDenseStore
from braid.engine.dense.qdrant import QdrantDenseStore
from braid.engine.filters import parse_filter
from braid.engine.models import Chunk, ModelInfo
from braid.engine.protocols import SparseStore
from braid.engine.sparse.qdrant_backends import EdgeSparseCollection
from braid.engine.sparse.qdrant_sparse import QdrantSparseStore
from braid.engine.sparse.tantivy_store import TantivySparseStore

SEED = 20240611
N_FILTERS = 400
N_SEARCH_FILTERS = 150
TOP_K = 10
DIM = 24
MODEL = ModelInfo(model_id="random-unit-vectors", version="1", dim=DIM)


@pytest.fixture(scope="module")
def corpus() -> list[Chunk]:
    return random_corpus(random.Random(SEED))


@pytest.fixture(scope="module")
def filters() -> list[dict[str, Any]]:
    rng = random.Random(SEED + 1)
    return [random_filter(rng) for _ in range(N_FILTERS)]


@pytest.fixture(scope="module")
def vectors(corpus: list[Chunk]) -> np.ndarray:
    rng = np.random.default_rng(SEED)
    raw = rng.standard_normal((len(corpus), DIM)).astype(np.float32)
    return raw / np.linalg.norm(raw, axis=1, keepdims=True)


def _dense_store(kind: str, path: Path) -> QdrantEdgeDenseStore | QdrantDenseStore:
    if kind == "edge":
        return QdrantEdgeDenseStore(path / "edge", MODEL)
    return QdrantDenseStore(QdrantClient(":memory:"), "random", MODEL)


@pytest.fixture(scope="module", params=["edge", "qdrant-local"])
def dense_store(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    corpus: list[Chunk],
    vectors: np.ndarray,
) -> Iterator[QdrantEdgeDenseStore | QdrantDenseStore]:
    store = _dense_store(request.param, tmp_path_factory.mktemp(request.param))
    # Two batches: payload indexes are inferred per batch, so the second one meets indexes
    # created from the first.
    half = len(corpus) // 2
    store.upsert(corpus[:half], vectors[:half])
    store.upsert(corpus[half:], vectors[half:])
    store.optimize()
    yield store
    store.close()


@pytest.fixture(scope="module", params=["tantivy", "qdrant-edge-bm25"])
def sparse_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, corpus: list[Chunk]
) -> Iterator[SparseStore]:
    path = tmp_path_factory.mktemp(request.param)
    store: SparseStore = (
        TantivySparseStore(path)
        if request.param == "tantivy"
        else QdrantSparseStore(EdgeSparseCollection(path))
    )
    store.upsert(corpus)
    store.commit()
    yield store
    store.close()


def oracle_doc_ids(raw: dict[str, Any], corpus: list[Chunk]) -> set[str]:
    return {c.doc_id for c in corpus if matches(raw, c.metadata)}


def test_generated_corpus_and_filters_cover_the_cases(
    corpus: list[Chunk], filters: list[dict[str, Any]]
) -> None:
    # Guard against a generator that only produces trivial filters.
    sizes = [len(oracle_doc_ids(f, corpus)) for f in filters]
    assert sum(s == 0 for s in sizes) >= 20
    assert sum(s == N_DOCS for s in sizes) >= 5
    assert sum(0 < s < N_DOCS for s in sizes) >= N_FILTERS // 2
    assert sum(0 < s < TOP_K for s in sizes) >= 10  # fewer matches than k: top-k not filled
    negatives = [c for c in corpus if isinstance(c.metadata.get("x"), float | int)]
    assert any(c.metadata["x"] < 0 for c in negatives)


def _mismatches(store: Any, filters: list[dict[str, Any]], corpus: list[Chunk]) -> list[str]:
    found = []
    for raw in filters:
        expected = oracle_doc_ids(raw, corpus)
        got = store.doc_ids(parse_filter(raw))
        if got != expected:
            found.append(
                f"{raw}: missing {sorted(expected - got)[:5]}, extra {sorted(got - expected)[:5]}"
            )
    return found


def test_dense_doc_ids_match_oracle(
    dense_store: Any, filters: list[dict[str, Any]], corpus: list[Chunk]
) -> None:
    bad = _mismatches(dense_store, filters, corpus)
    assert not bad, f"{len(bad)} filters disagree with the oracle:\n" + "\n".join(bad[:10])


def test_sparse_doc_ids_match_oracle(
    sparse_store: SparseStore, filters: list[dict[str, Any]], corpus: list[Chunk]
) -> None:
    bad = _mismatches(sparse_store, filters, corpus)
    assert not bad, f"{len(bad)} filters disagree with the oracle:\n" + "\n".join(bad[:10])


def test_dense_search_prefilters_exactly(
    dense_store: Any,
    filters: list[dict[str, Any]],
    corpus: list[Chunk],
    vectors: np.ndarray,
) -> None:
    rng = np.random.default_rng(SEED + 2)
    for raw in filters[:N_SEARCH_FILTERS]:
        query = rng.standard_normal(DIM).astype(np.float32)
        query /= np.linalg.norm(query)
        keep = [i for i, c in enumerate(corpus) if matches(raw, c.metadata)]
        # Brute force over the matching chunks: the exact filtered top-k.
        sims = vectors[keep] @ query
        order = sorted(range(len(keep)), key=lambda j: -sims[j])[:TOP_K]
        expected = [corpus[keep[j]].point_id for j in order]
        hits = dense_store.search(query, TOP_K, parse_filter(raw))
        assert [h.point_id for h in hits] == expected, raw
        assert [h.score for h in hits] == pytest.approx([sims[j] for j in order], abs=1e-5)


def test_sparse_search_prefilters_without_changing_scores(
    sparse_store: SparseStore, filters: list[dict[str, Any]], corpus: list[Chunk]
) -> None:
    everything = sparse_store.search("common", len(corpus))
    assert len(everything) == len(corpus)
    by_point = {c.point_id: c for c in corpus}
    for raw in filters[:N_SEARCH_FILTERS]:
        ranked = [p for p in everything if matches(raw, by_point[p.point_id].metadata)]
        hits = sparse_store.search("common", TOP_K, parse_filter(raw))
        assert len(hits) == min(TOP_K, len(ranked)), raw
        assert all(matches(raw, by_point[h.point_id].metadata) for h in hits), raw
        # Same scores as without the filter, so the same best k (ties at the cut aside).
        assert [h.score for h in hits] == pytest.approx([p.score for p in ranked[:TOP_K]])
        if hits:
            cut = hits[-1].score
            assert {h.point_id for h in hits if h.score > cut} == {
                p.point_id for p in ranked[:TOP_K] if p.score > cut
            }, raw
