"""Tantivy's BM25 against ``rank_bm25`` over the same tokens, with Lucene's IDF.

Tantivy scores ``idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))`` with
``idf = ln(1 + (N - n + 0.5) / (n + 0.5))``, k1 1.2, b 0.75, and stores each document's length
``dl`` in one byte (exact up to 40 tokens, then rounded down by up to ~6%). Against the plain
reference, scores agree within a few percent and rankings agree except between documents that
close; with the reference's lengths rounded the same way, scores agree to float32 precision.
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient
from rank_bm25 import BM25Okapi

from braid.engine.filters import parse_filter
from braid.engine.models import Chunk, ScoredPoint
from braid.engine.qdrant.protocol import Collection
from braid.engine.sparse.analysis import bm25_text, document_terms
from braid.engine.sparse.qdrant_backends import ClientSparseCollection, EdgeSparseCollection
from braid.engine.sparse.qdrant_sparse import QdrantSparseStore
from braid.engine.sparse.tantivy_store import TantivySparseStore

SCIFACT_CORPUS = Path(__file__).parents[2] / ".." / "shared" / "data" / "scifact" / "corpus.jsonl"
N_SCIFACT = 30
K1 = 1.2
B = 0.75
REL_TOL = 0.05  # the plain reference: Tantivy's one-byte field norms
QUANTISED_REL_TOL = 1e-4  # float32 scores
TOP = 10

QUERIES = [
    "how does bm25 score documents",
    "ranking documents by term frequency",
    "vector search with nearest neighbour graphs",
    "lexical search engines such as Lucene",
    "stem cells in human tissue",
    "obesity and insulin resistance",
    "DNA methylation of blood cells",
    "bayesian model complexity",
    "the rings of saturn are made of ice",
    "magnetic resonance imaging of the brain white matter",
    "genes genes expression",  # a repeated term counts twice, in both implementations
]


class LuceneBM25(BM25Okapi):  # type: ignore[misc]
    """rank_bm25's Okapi BM25 with Lucene's (and Tantivy's) non-negative IDF."""

    def _calc_idf(self, nd: dict[str, int]) -> None:
        for word, freq in nd.items():
            self.idf[word] = math.log(1 + (self.corpus_size - freq + 0.5) / (freq + 0.5))


def _decode_fieldnorm(code: int) -> int:
    # Tantivy src/fieldnorm/code.rs: codes below 24 are the length itself, the rest a
    # 3-bit mantissa with an exponent (the test there derives FIELD_NORMS_TABLE this way).
    if code < 24:
        return code
    bits, shift = (code - 24) & 0b111, (code - 24) >> 3
    return 24 + (bits if shift == 0 else (bits | 8) << (shift - 1))


FIELD_NORMS = [_decode_fieldnorm(code) for code in range(256)]


def quantised_length(length: int) -> int:
    """The length Tantivy scores with: the largest table entry not above ``length``."""
    return FIELD_NORMS[bisect.bisect_right(FIELD_NORMS, length) - 1]


class QuantisedLuceneBM25(LuceneBM25):
    """The same, with document lengths rounded as Tantivy stores them (avgdl stays exact)."""

    def __init__(self, corpus: list[list[str]], **kwargs: float) -> None:
        super().__init__(corpus, **kwargs)
        self.doc_len = np.array([quantised_length(n) for n in self.doc_len])


def _scifact_chunks() -> list[Chunk]:
    chunks = []
    with SCIFACT_CORPUS.open(encoding="utf-8") as handle:
        for line, _ in zip(handle, range(N_SCIFACT), strict=False):
            doc = json.loads(line)
            chunks.append(Chunk(f"scifact-{doc['_id']}", 0, doc["text"], doc["title"]))
    return chunks


@pytest.fixture(scope="module")
def corpus(sample_chunks: list[Chunk]) -> list[Chunk]:
    return [*sample_chunks, *_scifact_chunks()]


@pytest.fixture(scope="module")
def store(
    tmp_path_factory: pytest.TempPathFactory, corpus: list[Chunk]
) -> Iterator[TantivySparseStore]:
    store = TantivySparseStore(tmp_path_factory.mktemp("bm25"))
    store.upsert(corpus)
    store.commit()
    yield store
    store.close()


@pytest.fixture(scope="module")
def tokens(store: TantivySparseStore, corpus: list[Chunk]) -> list[list[str]]:
    return [document_terms(bm25_text(c)) for c in corpus]


@pytest.fixture(scope="module")
def reference(tokens: list[list[str]]) -> LuceneBM25:
    return LuceneBM25(tokens, k1=K1, b=B)


@pytest.fixture(scope="module")
def quantised(tokens: list[list[str]]) -> QuantisedLuceneBM25:
    return QuantisedLuceneBM25(tokens, k1=K1, b=B)


def reference_ranking(
    reference: LuceneBM25, store: TantivySparseStore, corpus: list[Chunk], query: str
) -> list[ScoredPoint]:
    scores = reference.get_scores(store.analyze(query))
    ranked = [ScoredPoint(c.point_id, float(s)) for c, s in zip(corpus, scores, strict=True)]
    return sorted((p for p in ranked if p.score > 0), key=lambda p: (-p.score, p.point_id))


def test_corpus_is_the_one_intended(store: TantivySparseStore, corpus: list[Chunk]) -> None:
    assert len(corpus) == 12 + N_SCIFACT
    assert store.count() == len(corpus)


def test_field_norm_table() -> None:
    assert FIELD_NORMS[:42] == [*range(41), 42]
    assert FIELD_NORMS[-1] == 2013265944
    assert sorted(set(FIELD_NORMS)) == FIELD_NORMS
    assert [quantised_length(n) for n in (40, 41, 59, 60, 172, 300)] == [40, 40, 56, 60, 168, 280]


def test_corpus_has_lengths_that_get_rounded(tokens: list[list[str]]) -> None:
    lengths = [len(t) for t in tokens]
    assert sum(quantised_length(n) != n for n in lengths) >= N_SCIFACT // 2
    assert min(lengths) <= 40


def test_analysis_is_simple_lowercase_english_stem(store: TantivySparseStore) -> None:
    assert store.analyze("Rankings ranked, RANKING!") == ["rank", "rank", "rank"]
    assert store.analyze("Lucene's postings-lists") == ["lucen", "s", "post", "list"]
    assert store.analyze("a" * 41 + " short") == ["short"]  # tokens over 40 bytes are dropped


@pytest.mark.parametrize("query", QUERIES)
def test_scores_match_reference(
    store: TantivySparseStore, reference: LuceneBM25, corpus: list[Chunk], query: str
) -> None:
    expected = reference_ranking(reference, store, corpus, query)
    got = store.search(query, len(corpus))
    # The same documents score above zero (every document with a query term)...
    assert {p.point_id for p in got} == {p.point_id for p in expected}
    # ...and each within the field-norm quantisation of the reference.
    ref = {p.point_id: p.score for p in expected}
    for point in got:
        assert point.score == pytest.approx(ref[point.point_id], rel=REL_TOL), query


@pytest.mark.parametrize("query", QUERIES)
def test_scores_match_quantised_reference_exactly(
    store: TantivySparseStore, quantised: QuantisedLuceneBM25, corpus: list[Chunk], query: str
) -> None:
    expected = reference_ranking(quantised, store, corpus, query)
    got = store.search(query, len(corpus))
    assert [p.point_id for p in got] == [p.point_id for p in expected]
    assert [p.score for p in got] == pytest.approx(
        [p.score for p in expected], rel=QUANTISED_REL_TOL
    )


@pytest.mark.parametrize("query", QUERIES)
def test_top_10_order_matches_reference_ties_aside(
    store: TantivySparseStore, reference: LuceneBM25, corpus: list[Chunk], query: str
) -> None:
    expected = reference_ranking(reference, store, corpus, query)
    ref = {p.point_id: p.score for p in expected}
    got = store.search(query, TOP)
    assert len(got) == min(TOP, len(expected))
    # Tantivy's order never puts a hit clearly below the next one in the reference...
    for better, worse in zip(got, got[1:], strict=False):
        assert ref[better.point_id] >= ref[worse.point_id] * (1 - 2 * REL_TOL), query
    # ...and every reference hit clearly above the cut is in Tantivy's top 10.
    if len(expected) > TOP:
        cut = expected[TOP].score * (1 + 2 * REL_TOL)
        clear = {p.point_id for p in expected[:TOP] if p.score > cut}
        assert clear <= {p.point_id for p in got}, query
    else:
        assert {p.point_id for p in got} == set(ref)


def test_plain_reference_agrees_at_the_top(
    store: TantivySparseStore, reference: LuceneBM25, corpus: list[Chunk]
) -> None:
    # Guard: the tolerant checks above must not pass only because everything is a near tie.
    same_top_10 = 0
    for query in QUERIES:
        expected = reference_ranking(reference, store, corpus, query)
        got = store.search(query, TOP)
        assert [p.point_id for p in got[:3]] == [p.point_id for p in expected[:3]], query
        same_top_10 += {p.point_id for p in got} == {p.point_id for p in expected[:TOP]}
    assert same_top_10 >= len(QUERIES) - 2


def test_hand_checked_top_hits(store: TantivySparseStore, corpus: list[Chunk]) -> None:
    doc_of = {c.point_id: c.doc_id for c in corpus}

    def top(query: str, n: int = 3) -> list[str]:
        return [doc_of[p.point_id] for p in store.search(query, n)]

    assert top("how does bm25 score documents", 1) == ["bm25-intro"]
    assert top("lexical search engines such as Lucene", 1) == ["inverted-index"]
    assert top("bayesian model complexity", 1) == ["scifact-70115"]
    assert top("obesity and insulin resistance", 1) == ["scifact-120626"]


DOCS = {"bm25-intro", "rrf-fusion", "dense-retrieval", "inverted-index", "tokenization"}
SINCE_2020 = {
    "rrf-fusion",
    "dense-retrieval",
    "cross-encoder",
    "hnsw-index",
    "sourdough",
    "espresso",
    "exoplanet-transit",
    "tokenization",
}


def test_filter_does_not_change_scores(store: TantivySparseStore, corpus: list[Chunk]) -> None:
    doc_of = {c.point_id: c.doc_id for c in corpus}
    everyone = set(doc_of.values())
    filters = [
        ({"source": "docs"}, DOCS),
        ({"year": {"$gte": 2020}}, SINCE_2020),
        # The SciFact documents carry no metadata: only a negation keeps them.
        ({"$not": {"source": "docs"}}, everyone - DOCS),
    ]
    for raw, kept in filters:
        expr = parse_filter(raw)
        assert store.doc_ids(expr) == kept
        for query in QUERIES:
            everything = store.search(query, len(corpus))
            filtered = store.search(query, len(corpus), expr)
            assert filtered == [p for p in everything if doc_of[p.point_id] in kept], (query, raw)


# -- BM25 as Qdrant sparse vectors -----------------------------------------------------------
# The sparse store keeps exact lengths (no one-byte norms): with the corpus average length it
# measured on the first commit, it must equal the *plain* reference to float32 precision.


@pytest.fixture(scope="module", params=["qdrant-edge", "qdrant-local"])
def qdrant_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, corpus: list[Chunk]
) -> Iterator[QdrantSparseStore]:
    path = tmp_path_factory.mktemp(request.param)
    collection: Collection = (
        EdgeSparseCollection(path)
        if request.param == "qdrant-edge"
        else ClientSparseCollection(QdrantClient(path=str(path)), "bm25", owns_client=True)
    )
    store = QdrantSparseStore(collection)
    store.upsert(corpus)
    store.commit()
    yield store
    store.close()


def test_qdrant_store_measured_the_reference_average_length(
    qdrant_store: QdrantSparseStore, reference: LuceneBM25
) -> None:
    assert qdrant_store.avg_len == pytest.approx(reference.avgdl)


@pytest.mark.parametrize("query", QUERIES)
def test_qdrant_sparse_scores_match_plain_reference_exactly(
    qdrant_store: QdrantSparseStore,
    store: TantivySparseStore,
    reference: LuceneBM25,
    corpus: list[Chunk],
    query: str,
) -> None:
    expected = reference_ranking(reference, store, corpus, query)
    got = qdrant_store.search(query, len(corpus))
    assert [p.point_id for p in got] == [p.point_id for p in expected]
    assert [p.score for p in got] == pytest.approx(
        [p.score for p in expected], rel=QUANTISED_REL_TOL
    )


def test_qdrant_sparse_filter_does_not_change_scores(
    qdrant_store: QdrantSparseStore, corpus: list[Chunk]
) -> None:
    query = "ranking documents by term frequency"
    unfiltered = qdrant_store.search(query, len(corpus))
    expr = parse_filter({"reviewed": True})
    kept = {c.point_id for c in corpus if c.metadata.get("reviewed") is True}
    assert kept, "the sample corpus has reviewed documents"
    filtered = qdrant_store.search(query, len(corpus), expr)
    assert filtered == [p for p in unfiltered if p.point_id in kept]
