"""Congruence: one call on the Qdrant Edge collection and on the qdrant-client local-mode
collection holding the same points, results compared (qdrant-client's
``tests/congruence_tests`` style), on both legs: dense vectors and BM25 sparse vectors.

Seeded random points (a quarter of them exact copies of another point's vector, so that ties
are real), seeded random queries and random filters over every operator and value type
(``random_filters``). Compared: the ids, their order (ties by point id, the ``Collection``
contract), the scores to float tolerance (Edge computes in Rust, local mode in numpy), scroll
and retrieve, counts, and the same after deleting documents.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qdrant_client import QdrantClient
from random_filters import random_corpus, random_filter

from braid.engine.filters import FilterExpr, parse_filter
from braid.engine.models import Chunk, ScoredPoint
from braid.engine.payload import chunk_payload
from braid.engine.qdrant.client import ClientCollection
from braid.engine.qdrant.edge import EdgeCollection
from braid.engine.qdrant.points import (
    DenseLayout,
    Layout,
    Point,
    SparseLayout,
    Vector,
    metadata_index_kinds,
)
from braid.engine.qdrant.protocol import Collection
from braid.engine.sparse.analysis import bm25_text
from braid.engine.sparse.bm25_vectors import Bm25Encoder

SEED = 20251202
DIM = 16
N_QUERIES = 24
N_FILTERS = 120
LIMITS = (1, 7)
TOLERANCE = 1e-5
DELETED_DOCS = 40
WORDS = [f"w{i}" for i in range(40)]


def _tie_groups(hits: list[ScoredPoint]) -> list[list[ScoredPoint]]:
    """Consecutive hits whose scores agree to ``TOLERANCE``."""
    groups: list[list[ScoredPoint]] = []
    for hit in hits:
        if groups and abs(groups[-1][-1].score - hit.score) <= TOLERANCE:
            groups[-1].append(hit)
        else:
            groups.append([hit])
    return groups


def assert_congruent(edge: list[ScoredPoint], local: list[ScoredPoint], limit: int) -> None:
    """Same scores; same ids in the same order, except where the two engines cannot agree.

    Within a group of (near-)equal scores both must hold the same ids, in point-id order when
    the scores are exactly equal (true ties). When the limit cuts through the last group,
    which of its members made the cut is the engine's choice: only its scores are compared.
    """
    assert len(edge) == len(local)
    assert [h.score for h in edge] == pytest.approx([h.score for h in local], abs=TOLERANCE)
    groups = _tie_groups(edge)
    start = 0
    for number, group in enumerate(groups):
        ours = local[start : start + len(group)]
        start += len(group)
        cut = number == len(groups) - 1 and len(edge) == limit
        if cut:
            break
        assert {h.point_id for h in group} == {h.point_id for h in ours}
        for hits in (group, ours):
            if len({h.score for h in hits}) == 1:
                assert [h.point_id for h in hits] == sorted(h.point_id for h in hits)


def _dense_points(corpus: list[Chunk], rng: np.random.Generator) -> list[Point]:
    vectors = rng.standard_normal((len(corpus), DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    for i in range(1, len(corpus), 4):  # exact copies: true ties
        vectors[i] = vectors[int(rng.integers(0, i))]
    return [
        Point(c.point_id, v.tolist(), chunk_payload(c))
        for c, v in zip(corpus, vectors, strict=True)
    ]


def _sparse_corpus(corpus: list[Chunk], rng: random.Random) -> list[Chunk]:
    """The corpus with random texts from a small vocabulary (repeats: BM25 ties)."""
    texts: list[str] = []
    for _ in corpus:
        if texts and rng.random() < 0.25:
            texts.append(rng.choice(texts))
        else:
            texts.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 12))))
    return [
        Chunk(c.doc_id, c.chunk_index, text, "", c.metadata)
        for c, text in zip(corpus, texts, strict=True)
    ]


def _sparse_points(corpus: list[Chunk]) -> list[Point]:
    encoder = Bm25Encoder()
    terms = [encoder.terms(bm25_text(c)) for c in corpus]
    avg_len = sum(len(t) for t in terms) / len(terms)
    return [
        Point(c.point_id, encoder.document(t, avg_len), chunk_payload(c))
        for c, t in zip(corpus, terms, strict=True)
    ]


def _dense_queries(rng: np.random.Generator) -> list[Vector]:
    raw = rng.standard_normal((N_QUERIES, DIM)).astype(np.float32)
    return [(q / np.linalg.norm(q)).tolist() for q in raw]


def _sparse_queries(rng: random.Random) -> list[Vector]:
    encoder = Bm25Encoder()
    texts = [
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 4))) for _ in range(N_QUERIES)
    ]
    return [encoder.query(t) for t in texts]


class Pair:
    """The same points in an Edge shard and in a local-mode collection."""

    def __init__(self, root: Path, layout: Layout, points: list[Point], corpus: list[Chunk]):
        self.edge = EdgeCollection(root / "edge", layout, manifest_file="manifest.json")
        self.edge.write_manifest({"layout": "test"})
        self.local = ClientCollection(QdrantClient(":memory:"), "pair", layout, owns_client=True)
        self.corpus = corpus
        for collection in self.both:
            collection.ensure_indexes(metadata_index_kinds(corpus))
            half = len(points) // 2  # two writes: the second one meets existing segments
            collection.upsert(points[:half])
            collection.upsert(points[half:])

    @property
    def both(self) -> tuple[Collection, Collection]:
        return self.edge, self.local

    def compare(self, call: Callable[[Collection], Any]) -> tuple[Any, Any]:
        return call(self.edge), call(self.local)

    def close(self) -> None:
        for collection in self.both:
            collection.close()


def _filters() -> list[FilterExpr | None]:
    rng = random.Random(SEED + 1)
    return [None, *(parse_filter(random_filter(rng)) for _ in range(N_FILTERS))]


@pytest.fixture(scope="module")
def corpus() -> list[Chunk]:
    return random_corpus(random.Random(SEED))


@pytest.fixture(scope="module", params=["dense", "bm25"])
def leg(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, corpus: list[Chunk]
) -> Iterator[tuple[Pair, list[Vector]]]:
    root = tmp_path_factory.mktemp(request.param)
    if request.param == "dense":
        rng = np.random.default_rng(SEED)
        pair = Pair(root, DenseLayout(DIM), _dense_points(corpus, rng), corpus)
        queries = _dense_queries(rng)
    else:
        texts = _sparse_corpus(corpus, random.Random(SEED))
        pair = Pair(root, SparseLayout("bm25"), _sparse_points(texts), texts)
        queries = _sparse_queries(random.Random(SEED + 2))
    yield pair, queries
    pair.close()


def _assert_queries_agree(pair: Pair, queries: list[Vector]) -> int:
    """Every query under every filter and limit; returns how many calls returned hits."""
    filters = _filters()
    rng = random.Random(SEED + 3)
    answered = 0
    for query in queries:
        for expr in rng.sample(filters, 8) + [None]:
            for limit in LIMITS:
                edge, local = pair.compare(lambda c, q=query, e=expr, k=limit: c.query(q, k, e))
                assert_congruent(edge, local, limit)
                answered += bool(edge)
    return answered


def test_queries_agree(leg: tuple[Pair, list[Vector]]) -> None:
    pair, queries = leg
    answered = _assert_queries_agree(pair, queries)
    # Guard against a comparison of empty answers.
    assert answered > len(queries) * len(LIMITS) * 5


def test_ties_are_real_and_ordered_by_point_id(leg: tuple[Pair, list[Vector]]) -> None:
    pair, queries = leg
    everything = len(pair.corpus)
    tied = 0
    for query in queries[:10]:
        edge, local = pair.compare(lambda c, q=query: c.query(q, everything, None))
        assert_congruent(edge, local, everything + 1)  # nothing is cut
        tied += sum(len(g) > 1 for g in _tie_groups(edge))
    assert tied >= 10


def test_scroll_retrieve_and_count_agree(leg: tuple[Pair, list[Vector]]) -> None:
    pair, _ = leg
    for expr in _filters()[:60]:
        edge, local = pair.compare(lambda c, e=expr: [r.id for r in c.scroll(e, ["doc_id"])])
        assert edge == local  # point-id order on both
    ids = [c.point_id for c in pair.corpus[::7]] + ["not-a-uuid"]
    ids.append("00000000-0000-0000-0000-000000000000")
    edge_records, local_records = pair.compare(lambda c: c.retrieve(ids))
    assert {r.id: r.payload for r in edge_records} == {r.id: r.payload for r in local_records}
    assert len(edge_records) == len(pair.corpus[::7])
    assert pair.compare(lambda c: c.count()) == (len(pair.corpus), len(pair.corpus))


def test_queries_agree_after_deletes(leg: tuple[Pair, list[Vector]]) -> None:
    pair, queries = leg
    doc_ids = sorted({c.doc_id for c in pair.corpus})[::6][:DELETED_DOCS]
    for collection in pair.both:
        collection.delete_docs(doc_ids)
        # Edge counts deleted points in IDF until the shard is optimized and reloaded.
        collection.optimize()
    left = sum(c.doc_id not in doc_ids for c in pair.corpus)
    assert pair.compare(lambda c: c.count()) == (left, left)
    _assert_queries_agree(pair, queries[: N_QUERIES // 2])
