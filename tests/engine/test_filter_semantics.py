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

from braid.engine.dense.edge import QdrantEdgeDenseStore
from braid.engine.dense.qdrant import QdrantDenseStore
from braid.engine.filters import parse_filter
from braid.engine.metadata import validate_metadata
from braid.engine.models import Chunk, ModelInfo
from braid.engine.protocols import SparseStore
from braid.engine.sparse.qdrant_backends import EdgeSparseCollection
from braid.engine.sparse.qdrant_sparse import QdrantSparseStore
from braid.engine.sparse.tantivy_store import TantivySparseStore

SEED = 20240611
N_DOCS = 240
N_SECOND_CHUNKS = 60  # documents with a second chunk (own metadata): doc_ids is "any chunk"
N_FILTERS = 400
N_SEARCH_FILTERS = 150
TOP_K = 10
DIM = 24
MODEL = ModelInfo(model_id="random-unit-vectors", version="1", dim=DIM)

COLORS = ["red", "green", "blue", "Red", "dark red", "café"]
TAGS = ["a", "b", "c", "red", "x-y", "long tag with spaces", "2020-01-03", "2020-01-07T06:00:00Z"]
INTS = list(range(-5, 6))
FLOATS = [-1e9, -2.5, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 2.5, 3, 1e9 + 0.5]
DAYS = [f"2020-01-{d:02d}" for d in range(1, 11)] + ["2019-12-30", "2019-12-31"]
DAY_SUFFIXES = ["", "T12:30:00", "T12:30:00Z", "T01:00:00+02:00", "T23:30:00-05:00"]
MIXED = ["red", 1, 2.5, True, False, ["red", "a"], -3, "2020-01-05"]
FIELDS = ["color", "tags", "n", "x", "flag", "day", "mixed"] * 3 + ["absent"]


def random_metadata(rng: random.Random) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    if rng.random() < 0.85:
        raw["color"] = rng.choice(COLORS)
    if rng.random() < 0.8:
        raw["tags"] = rng.sample(TAGS, rng.randint(0, 3))
    if rng.random() < 0.85:
        raw["n"] = rng.choice(INTS)
    if rng.random() < 0.85:
        raw["x"] = rng.choice(FLOATS)
    if rng.random() < 0.8:
        raw["flag"] = rng.random() < 0.5
    if rng.random() < 0.8:
        raw["day"] = rng.choice(DAYS) + rng.choice(DAY_SUFFIXES)
    if rng.random() < 0.7:
        raw["mixed"] = rng.choice(MIXED)
    return validate_metadata(raw)


def random_corpus(rng: random.Random) -> list[Chunk]:
    chunks = []
    for i in range(N_DOCS):
        doc_id = f"d{i:03d}"
        for index in range(2 if i < N_SECOND_CHUNKS else 1):
            # Every chunk contains "common" (1-3 times, varying lengths) so that a BM25 query
            # for it reaches every chunk and only the filter decides.
            words = ["common"] * rng.randint(1, 3) + [f"w{rng.randint(0, 50)}"] * rng.randint(0, 12)
            rng.shuffle(words)
            chunks.append(Chunk(doc_id, index, " ".join(words), "", random_metadata(rng)))
    return chunks


def _value(rng: random.Random, kind: str, field: str = "") -> Any:
    if kind == "str":
        vocab = {"color": COLORS, "tags": TAGS}.get(field, [*COLORS, *TAGS, "2020-01-05"])
        return rng.choice([*vocab, "nothing"])
    if kind == "int":
        return rng.choice([*INTS, 7])
    if kind == "float":
        return rng.choice([*FLOATS, 0.25, -0.75, 2])
    if kind == "bool":
        return rng.random() < 0.5
    return rng.choice(DAYS) + rng.choice(DAY_SUFFIXES)  # "date"


_FIELD_KINDS = {
    "color": ["str"],
    "tags": ["str", "date"],
    "n": ["int", "float"],
    "x": ["float", "int"],
    "flag": ["bool"],
    "day": ["date", "str"],
    "mixed": ["str", "int", "float", "bool", "date"],
    "absent": ["str", "int", "bool", "date"],
}


def random_condition(rng: random.Random, field: str) -> Any:
    kind = rng.choice(_FIELD_KINDS[field])
    if rng.random() < 0.1:  # a value of the wrong type for the field: must match nothing
        kind = rng.choice(["str", "int", "float", "bool", "date"])
    rangeable = kind in ("int", "float", "date")
    ops = ["bare", "$eq", "$ne", "$in", "$nin"] + (
        ["range", "range", "range2"] if rangeable else []
    )
    op = rng.choice(ops)
    if op == "bare":
        return _value(rng, kind, field)
    if op in ("$eq", "$ne"):
        return {op: _value(rng, kind, field)}
    if op in ("$in", "$nin"):
        return {op: [_value(rng, kind, field) for _ in range(rng.randint(1, 3))]}
    if op == "range":
        return {rng.choice(["$gt", "$gte", "$lt", "$lte"]): _value(rng, kind, field)}
    return {
        rng.choice(["$gt", "$gte"]): _value(rng, kind, field),
        rng.choice(["$lt", "$lte"]): _value(rng, kind, field),
    }


def random_filter(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    if depth < 3 and rng.random() < 0.3:
        op = rng.choice(["$and", "$or", "$not"])
        if op == "$not":
            return {"$not": random_filter(rng, depth + 1)}
        return {op: [random_filter(rng, depth + 1) for _ in range(rng.randint(1, 3))]}
    raw: dict[str, Any] = {}
    for _ in range(1 if rng.random() < 0.75 else 2):  # two keys: implicit AND
        field = rng.choice(FIELDS)
        raw[field] = random_condition(rng, field)
    return raw


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
