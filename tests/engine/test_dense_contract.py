"""One contract, every ``DenseStore``: Qdrant Edge, qdrant-client's local mode, a server.

``DenseStoreContract`` adds the dense leg's tests to ``store_contract.ChunkStoreContract``;
each implementation is one subclass that provides the ``opener`` fixture (haystack's
``DocumentStoreBaseTests`` pattern). The sample corpus carries real all-MiniLM-L6-v2
embeddings; a last test checks that Edge and local mode give the same answers on it (random
points and filters: ``test_congruence.py``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pytest
from qdrant_client import QdrantClient
from sample_cases import FILTER_CASES
from store_contract import ChunkStoreContract

from braid.engine.dense.edge import QdrantEdgeDenseStore
from braid.engine.dense.qdrant import QdrantDenseStore
from braid.engine.errors import ConfigError, ModelMismatchError
from braid.engine.filters import parse_filter
from braid.engine.models import Chunk, ModelInfo
from braid.engine.protocols import DenseStore

if TYPE_CHECKING:
    from braid.engine.embedder import SentenceTransformerEmbedder

COLLECTION = "braid_test"
SERVER_URL = os.environ.get("BRAID_TEST_QDRANT_URL")

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

# Opens the store kept under a folder, for a model (None: whatever the store records).
Opener = Callable[[Path, ModelInfo | None], DenseStore]


def stand_in_vectors(chunks: list[Chunk], dim: int) -> np.ndarray:
    """Unit vectors derived from the point ids, for tests about everything but ranking."""
    rows = []
    for chunk in chunks:
        seed = int(hashlib.sha256(chunk.point_id.encode()).hexdigest()[:8], 16)
        row = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
        rows.append(row / np.linalg.norm(row))
    return np.asarray(rows, dtype=np.float32)


def doc_ids_of(hits: list[Any], doc_of: dict[str, str]) -> list[str]:
    return [doc_of[h.point_id] for h in hits]


def assert_same_hits(got: list[Any], expected: list[Any]) -> None:
    """Same ids in the same order; scores equal up to float noise (local mode sums in numpy)."""
    assert [h.point_id for h in got] == [h.point_id for h in expected]
    assert [h.score for h in got] == pytest.approx([h.score for h in expected], abs=1e-6)


class DenseStoreContract(ChunkStoreContract):
    """The ``DenseStore`` contract; subclasses provide ``opener``."""

    protocol: ClassVar[type] = DenseStore

    @pytest.fixture(scope="class")
    @classmethod
    def opener(cls) -> Opener:
        raise NotImplementedError

    def write(self, store: Any, chunks: list[Chunk]) -> None:
        store.upsert(chunks, stand_in_vectors(chunks, store.model.dim))

    @pytest.fixture
    def reopen(
        self, opener: Opener, tmp_path: Path, embedder: SentenceTransformerEmbedder
    ) -> Callable[..., DenseStore]:
        def open_store(model: ModelInfo | None = embedder.info) -> DenseStore:
            return opener(tmp_path, model)

        return open_store

    @pytest.fixture
    def loaded(
        self, store: DenseStore, sample_chunks: list[Chunk], sample_vectors: np.ndarray
    ) -> DenseStore:
        store.upsert(sample_chunks, sample_vectors)
        return store

    @pytest.fixture(scope="class")
    @classmethod
    def shared(
        cls,
        opener: Opener,
        tmp_path_factory: pytest.TempPathFactory,
        embedder: SentenceTransformerEmbedder,
        sample_chunks: list[Chunk],
        sample_vectors: np.ndarray,
    ) -> Iterator[DenseStore]:
        """The sample corpus, loaded once per implementation, for the tests that only read.

        (Creating a store fsyncs each payload index: about a second a store on a VM disk.)
        """
        store = opener(tmp_path_factory.mktemp("shared"), embedder.info)
        store.upsert(sample_chunks, sample_vectors)
        yield store
        store.close()

    def test_records_the_model(
        self, store: DenseStore, embedder: SentenceTransformerEmbedder
    ) -> None:
        assert store.model == embedder.info

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
        for query in embedder.encode_queries(list(EXPECTED_TOP)):
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
        assert store.model is not None
        twins = [Chunk(f"twin-{i}", 0, "same vector") for i in range(5)]
        vector = np.zeros((1, store.model.dim), dtype=np.float32)
        vector[0, 0] = 1.0
        store.upsert(twins, np.repeat(vector, len(twins), axis=0))
        hits = store.search(vector[0], 5)
        assert [h.point_id for h in hits] == sorted(c.point_id for c in twins)
        assert [h.score for h in hits] == pytest.approx([1.0] * 5)

    def test_search_skips_deleted_docs(
        self, loaded: DenseStore, embedder: SentenceTransformerEmbedder, doc_of: dict[str, str]
    ) -> None:
        loaded.delete_docs(["sourdough", "espresso"])
        hits = loaded.search(embedder.encode_queries(["baking bread with wild yeast"])[0], 12)
        assert len(hits) == 10
        assert not {"sourdough", "espresso"} & set(doc_ids_of(hits, doc_of))

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

    def test_search_results_survive_close_and_reopen(
        self,
        reopen: Callable[[], DenseStore],
        embedder: SentenceTransformerEmbedder,
        sample_chunks: list[Chunk],
        sample_vectors: np.ndarray,
    ) -> None:
        query = embedder.encode_queries(["why are leaves green"])[0]
        first = reopen()
        first.upsert(sample_chunks, sample_vectors)
        before = first.search(query, 5, parse_filter({"reviewed": True}))
        first.close()
        again = reopen()
        try:
            assert_same_hits(again.search(query, 5, parse_filter({"reviewed": True})), before)
        finally:
            again.close()

    def test_the_same_weights_under_another_name_reopen(
        self,
        reopen: Callable[..., DenseStore],
        embedder: SentenceTransformerEmbedder,
        sample_chunks: list[Chunk],
        sample_vectors: np.ndarray,
    ) -> None:
        first = reopen()
        first.upsert(sample_chunks, sample_vectors)
        first.close()
        # The bundled model given by its folder path: same weights hash, same vectors.
        again = reopen(dataclasses.replace(embedder.info, model_id="/models/all-MiniLM-L6-v2"))
        try:
            assert again.count() == len(sample_chunks)
        finally:
            again.close()

    @pytest.mark.parametrize(
        "change",
        [
            {"model_id": "other/model", "version": "fedcba987654"},
            {"version": "0123456789ab"},
            {"dim": 768},
        ],
    )
    def test_reopening_with_another_model_raises(
        self,
        reopen: Callable[..., DenseStore],
        embedder: SentenceTransformerEmbedder,
        sample_chunks: list[Chunk],
        sample_vectors: np.ndarray,
        change: dict[str, Any],
    ) -> None:
        first = reopen()
        first.upsert(sample_chunks, sample_vectors)
        first.close()
        with pytest.raises(ModelMismatchError) as caught:
            reopen(dataclasses.replace(embedder.info, **change))
        assert str(next(iter(change.values()))) in str(caught.value)
        # The refusal leaves the store intact for the right model.
        again = reopen()
        try:
            assert again.count() == len(sample_chunks)
        finally:
            again.close()

    def test_opened_without_a_model_serves_the_recorded_one(
        self,
        reopen: Callable[..., DenseStore],
        embedder: SentenceTransformerEmbedder,
        sample_chunks: list[Chunk],
        sample_vectors: np.ndarray,
    ) -> None:
        first = reopen()
        first.upsert(sample_chunks, sample_vectors)
        first.close()
        query = embedder.encode_queries(["coffee brewing pressure"])[0]
        again = reopen(None)
        try:
            assert again.model == embedder.info
            assert again.count() == len(sample_chunks)
            assert again.search(query, 1)[0].point_id == sample_chunks[7].point_id
            again.delete_docs(["espresso"])
            assert again.count() == len(sample_chunks) - 1
        finally:
            again.close()

    def test_a_new_store_opened_without_a_model_creates_nothing_and_refuses_writes(
        self,
        reopen: Callable[..., DenseStore],
        embedder: SentenceTransformerEmbedder,
        sample_chunks: list[Chunk],
        sample_vectors: np.ndarray,
    ) -> None:
        empty = reopen(None)
        try:
            assert isinstance(empty, DenseStore)
            assert empty.model is None
            assert (empty.count(), empty.doc_ids(), empty.fetch([sample_chunks[0].point_id])) == (
                0,
                set(),
                {},
            )
            assert empty.search(sample_vectors[0], 5) == []
            empty.delete_docs(["sourdough"])
            empty.optimize()
            with pytest.raises(ConfigError, match="no embedding model"):
                empty.upsert(sample_chunks, sample_vectors)
        finally:
            empty.close()
        # Nothing was created: the first store opened with a model creates it for that model.
        created = reopen()
        try:
            assert created.model == embedder.info
            assert created.count() == 0
        finally:
            created.close()
        recorded = reopen(None)
        try:
            assert recorded.model == embedder.info
        finally:
            recorded.close()


class TestQdrantEdgeDenseStore(DenseStoreContract):
    @pytest.fixture(scope="class")
    @classmethod
    def opener(cls) -> Opener:
        return lambda root, model: QdrantEdgeDenseStore(root / "edge", model)


class TestQdrantLocalDenseStore(DenseStoreContract):
    @pytest.fixture(scope="class")
    @classmethod
    def opener(cls) -> Opener:
        def open_local(root: Path, model: ModelInfo | None) -> DenseStore:
            client = QdrantClient(path=str(root / "qdrant"))
            try:
                return QdrantDenseStore(client, COLLECTION, model)
            except Exception:
                client.close()  # a local-mode folder admits one client at a time
                raise

        return open_local


@pytest.mark.skipif(not SERVER_URL, reason="BRAID_TEST_QDRANT_URL is not set")
class TestQdrantServerDenseStore(DenseStoreContract):
    @pytest.fixture(scope="class")
    @classmethod
    def opener(cls) -> Opener:
        def open_server(root: Path, model: ModelInfo | None) -> DenseStore:
            # One collection per test location, so tests do not see each other's points.
            name = f"{COLLECTION}_{hashlib.sha1(str(root).encode()).hexdigest()[:12]}"
            return QdrantDenseStore(QdrantClient(url=SERVER_URL), name, model)

        return open_server


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
