"""One contract, every ``DenseStore``: Qdrant Edge and qdrant-client's local mode.

The sample corpus with real all-MiniLM-L6-v2 embeddings; the same tests run against each
implementation, and a last group checks that the two give the same answers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qdrant_client import QdrantClient
from sample_cases import FILTER_CASES, ODD_CHUNK, typed

from braid.engine.dense.edge import QdrantEdgeDenseStore
from braid.engine.dense.qdrant import QdrantDenseStore
from braid.engine.embedder import SentenceTransformerEmbedder
from braid.engine.errors import ModelMismatchError
from braid.engine.filters import parse_filter
from braid.engine.models import Chunk, ModelInfo
from braid.engine.protocols import DenseStore

COLLECTION = "braid_test"

# Query -> the sample documents a reader expects on top, best first.
EXPECTED_TOP = {
    "how does bm25 score documents": ["bm25-intro"],
    "vector similarity search with neural encoders": ["dense-retrieval"],
    "baking bread with wild yeast": ["sourdough"],
    "coffee brewing pressure": ["espresso"],
    "planets around other stars": ["exoplanet-transit", "saturn-rings"],
    "why are leaves green": ["photosynthesis"],
    "splitting text into tokens": ["tokenization"],
}


@dataclasses.dataclass
class DenseBackend:
    """Opens one implementation's store at a fixed location, as often as a test needs."""

    kind: str
    root: Path

    def open(self, model: ModelInfo) -> DenseStore:
        if self.kind == "edge":
            return QdrantEdgeDenseStore(self.root / "edge", model)
        if self.kind == "qdrant-server":
            # One collection per test location, so tests do not see each other's points.
            name = f"{COLLECTION}_{hashlib.sha1(str(self.root).encode()).hexdigest()[:12]}"
            return QdrantDenseStore(QdrantClient(url=SERVER_URL), name, model)
        client = QdrantClient(path=str(self.root / "qdrant"))
        try:
            return QdrantDenseStore(client, COLLECTION, model)
        except Exception:
            client.close()  # a local-mode folder admits one client at a time
            raise


# The same contract against a real Qdrant server when one is given (skipped, and reported
# as skipped, otherwise).
SERVER_URL = os.environ.get("BRAID_TEST_QDRANT_URL")
BACKENDS = [
    "edge",
    "qdrant-local",
    pytest.param(
        "qdrant-server",
        marks=pytest.mark.skipif(not SERVER_URL, reason="BRAID_TEST_QDRANT_URL is not set"),
    ),
]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> DenseBackend:
    return DenseBackend(request.param, tmp_path)


@pytest.fixture(scope="module", params=BACKENDS)
def shared(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    embedder: SentenceTransformerEmbedder,
    sample_chunks: list[Chunk],
    sample_vectors: np.ndarray,
) -> Iterator[DenseStore]:
    """The sample corpus, loaded once per backend, for the tests that only read.

    (Creating a store fsyncs each payload index: about a second a store on a VM disk.)
    """
    store = DenseBackend(request.param, tmp_path_factory.mktemp(request.param)).open(embedder.info)
    store.upsert(sample_chunks, sample_vectors)
    yield store
    store.close()


@pytest.fixture
def store(backend: DenseBackend, embedder: SentenceTransformerEmbedder) -> Iterator[DenseStore]:
    opened = backend.open(embedder.info)
    yield opened
    opened.close()


@pytest.fixture
def loaded(store: DenseStore, sample_chunks: list[Chunk], sample_vectors: np.ndarray) -> DenseStore:
    store.upsert(sample_chunks, sample_vectors)
    return store


def doc_ids_of(hits: list[Any], doc_of: dict[str, str]) -> list[str]:
    return [doc_of[h.point_id] for h in hits]


def assert_same_hits(got: list[Any], expected: list[Any]) -> None:
    """Same ids in the same order; scores equal up to float noise (local mode sums in numpy)."""
    assert [h.point_id for h in got] == [h.point_id for h in expected]
    assert [h.score for h in got] == pytest.approx([h.score for h in expected], abs=1e-6)


class TestDenseStoreContract:
    def test_satisfies_protocol_and_records_model(
        self, store: DenseStore, embedder: SentenceTransformerEmbedder
    ) -> None:
        assert isinstance(store, DenseStore)
        assert store.model == embedder.info
        assert store.count() == 0
        assert store.doc_ids() == set()

    @pytest.mark.parametrize("query", list(EXPECTED_TOP))
    def test_expected_top_hits(
        self,
        shared: DenseStore,
        embedder: SentenceTransformerEmbedder,
        doc_of: dict[str, str],
        query: str,
    ) -> None:
        expected = EXPECTED_TOP[query]
        hits = shared.search(embedder.encode_queries([query])[0], len(expected))
        assert doc_ids_of(hits, doc_of) == expected

    def test_ranking_is_exact_cosine(
        self,
        shared: DenseStore,
        embedder: SentenceTransformerEmbedder,
        sample_chunks: list[Chunk],
        sample_vectors: np.ndarray,
    ) -> None:
        queries = embedder.encode_queries(list(EXPECTED_TOP))
        for query in queries:
            sims = sample_vectors @ query
            order = np.argsort(-sims, kind="stable")
            hits = shared.search(query, len(sample_chunks))
            assert [h.point_id for h in hits] == [sample_chunks[i].point_id for i in order]
            assert [h.score for h in hits] == pytest.approx(sims[order].tolist(), abs=1e-5)

    def test_limit_cuts_the_ranking(
        self, shared: DenseStore, embedder: SentenceTransformerEmbedder
    ) -> None:
        query = embedder.encode_queries(["planets around other stars"])[0]
        full = shared.search(query, 12)
        assert_same_hits(shared.search(query, 3), full[:3])
        assert_same_hits(shared.search(query, 100), full)

    def test_ties_break_by_point_id(self, store: DenseStore) -> None:
        dim = store.model.dim
        twins = [Chunk(f"twin-{i}", 0, "same vector") for i in range(5)]
        vector = np.zeros((1, dim), dtype=np.float32)
        vector[0, 0] = 1.0
        store.upsert(twins, np.repeat(vector, len(twins), axis=0))
        hits = store.search(vector[0], 5)
        assert [h.point_id for h in hits] == sorted(c.point_id for c in twins)
        assert [h.score for h in hits] == pytest.approx([1.0] * 5)

    def test_upsert_twice_keeps_one_copy_and_the_new_payload(
        self, loaded: DenseStore, sample_chunks: list[Chunk], sample_vectors: np.ndarray
    ) -> None:
        loaded.upsert(sample_chunks, sample_vectors)
        assert loaded.count() == len(sample_chunks)
        changed = dataclasses.replace(sample_chunks[0], text="rewritten", metadata={"year": 1999})
        loaded.upsert([changed], sample_vectors[:1])
        assert loaded.count() == len(sample_chunks)
        assert loaded.fetch([changed.point_id]) == {changed.point_id: changed}
        assert loaded.doc_ids(parse_filter({"year": 1999})) == {changed.doc_id}
        assert loaded.doc_ids(parse_filter({"year": 2019})) == set()

    def test_delete_docs_removes_every_chunk_of_the_docs(
        self,
        loaded: DenseStore,
        embedder: SentenceTransformerEmbedder,
        sample_chunks: list[Chunk],
        sample_vectors: np.ndarray,
        doc_of: dict[str, str],
    ) -> None:
        second = Chunk("sourdough", 1, "Feed the starter daily.", "Sourdough bread")
        loaded.upsert([second], sample_vectors[6:7])
        assert loaded.count() == 13
        loaded.delete_docs(["sourdough", "espresso", "not-a-doc"])
        assert loaded.count() == 10
        assert loaded.fetch([second.point_id, sample_chunks[6].point_id]) == {}
        hits = loaded.search(embedder.encode_queries(["baking bread with wild yeast"])[0], 12)
        assert "sourdough" not in doc_ids_of(hits, doc_of) and len(hits) == 10
        assert loaded.doc_ids() == {c.doc_id for c in sample_chunks} - {"sourdough", "espresso"}
        loaded.delete_docs([])
        assert loaded.count() == 10

    def test_fetch_round_trips_chunks(self, loaded: DenseStore, sample_chunks: list[Chunk]) -> None:
        unknown = ["00000000-0000-0000-0000-000000000000", "not-even-a-uuid"]
        fetched = loaded.fetch([c.point_id for c in sample_chunks] + unknown)
        assert fetched == {c.point_id: c for c in sample_chunks}
        odd = ODD_CHUNK
        loaded.upsert([odd], np.eye(1, loaded.model.dim, dtype=np.float32))
        assert loaded.fetch([odd.point_id]) == {odd.point_id: odd}
        assert typed(loaded.fetch([odd.point_id])[odd.point_id].metadata) == typed(odd.metadata)
        assert loaded.fetch([]) == {}

    @pytest.mark.parametrize(("raw", "expected"), FILTER_CASES)
    def test_doc_ids_with_filter(
        self,
        shared: DenseStore,
        sample_chunks: list[Chunk],
        raw: dict[str, Any],
        expected: set[str] | None,
    ) -> None:
        everyone = {c.doc_id for c in sample_chunks}
        assert shared.doc_ids(parse_filter(raw)) == (everyone if expected is None else expected)

    @pytest.mark.parametrize(("raw", "expected"), FILTER_CASES)
    def test_filtered_search_is_prefiltered(
        self,
        shared: DenseStore,
        embedder: SentenceTransformerEmbedder,
        sample_chunks: list[Chunk],
        doc_of: dict[str, str],
        raw: dict[str, Any],
        expected: set[str] | None,
    ) -> None:
        keep = {c.doc_id for c in sample_chunks} if expected is None else expected
        query = embedder.encode_queries(["planets around other stars"])[0]
        unfiltered = doc_ids_of(shared.search(query, 12), doc_of)
        hits = shared.search(query, 3, parse_filter(raw))
        # The best three of the matching documents, even when they rank low without the filter.
        assert doc_ids_of(hits, doc_of) == [d for d in unfiltered if d in keep][:3]

    def test_persistence_across_close_and_reopen(
        self,
        backend: DenseBackend,
        embedder: SentenceTransformerEmbedder,
        sample_chunks: list[Chunk],
        sample_vectors: np.ndarray,
    ) -> None:
        query = embedder.encode_queries(["why are leaves green"])[0]
        first = backend.open(embedder.info)
        first.upsert(sample_chunks, sample_vectors)
        first.delete_docs(["espresso"])
        before = first.search(query, 5, parse_filter({"reviewed": True}))
        first.close()

        again = backend.open(embedder.info)
        try:
            assert again.count() == len(sample_chunks) - 1
            assert_same_hits(again.search(query, 5, parse_filter({"reviewed": True})), before)
            assert again.fetch([sample_chunks[0].point_id]) == {
                sample_chunks[0].point_id: sample_chunks[0]
            }
            assert "espresso" not in again.doc_ids()
        finally:
            again.close()

    @pytest.mark.parametrize(
        "change", [{"model_id": "other/model"}, {"version": "0123456789ab"}, {"dim": 768}]
    )
    def test_reopening_with_another_model_raises(
        self,
        backend: DenseBackend,
        embedder: SentenceTransformerEmbedder,
        sample_chunks: list[Chunk],
        sample_vectors: np.ndarray,
        change: dict[str, Any],
    ) -> None:
        first = backend.open(embedder.info)
        first.upsert(sample_chunks, sample_vectors)
        first.close()
        with pytest.raises(ModelMismatchError) as caught:
            backend.open(dataclasses.replace(embedder.info, **change))
        assert str(next(iter(change.values()))) in str(caught.value)
        # The refusal leaves the store intact for the right model.
        again = backend.open(embedder.info)
        try:
            assert again.count() == len(sample_chunks)
        finally:
            again.close()


def test_edge_and_qdrant_client_agree(
    tmp_path: Path,
    embedder: SentenceTransformerEmbedder,
    sample_chunks: list[Chunk],
    sample_vectors: np.ndarray,
) -> None:
    edge = QdrantEdgeDenseStore(tmp_path / "edge", embedder.info)
    local = QdrantDenseStore(QdrantClient(":memory:"), COLLECTION, embedder.info)
    try:
        for store in (edge, local):
            store.upsert(sample_chunks, sample_vectors)
        queries = [*EXPECTED_TOP, "ranking fusion", "a hot drink", "space telescopes"]
        filters = [None, *(parse_filter(raw) for raw, _ in FILTER_CASES)]
        for query, vector in zip(queries, embedder.encode_queries(queries), strict=True):
            for expr in filters:
                a = edge.search(vector, 5, expr)
                b = local.search(vector, 5, expr)
                assert [h.point_id for h in a] == [h.point_id for h in b], (query, expr)
                assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-5)
        for expr in filters:
            assert edge.doc_ids(expr) == local.doc_ids(expr)
    finally:
        edge.close()
        local.close()
