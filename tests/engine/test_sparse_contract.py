"""The ``SparseStore`` contract, run against every implementation.

``SparseStoreContract`` adds the BM25 leg's tests to ``store_contract.ChunkStoreContract``;
each implementation is one subclass providing the ``opener`` fixture (haystack's pattern):
Tantivy, and BM25 as Qdrant sparse vectors in Qdrant Edge and in qdrant-client's local mode
(the server's stand-in; a real server joins when ``BRAID_TEST_QDRANT_URL`` is set).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from qdrant_client import QdrantClient
from sample_cases import FILTER_CASES
from store_contract import ChunkStoreContract

from braid.engine.errors import IndexLockedError
from braid.engine.filters import parse_filter
from braid.engine.models import Chunk
from braid.engine.protocols import SparseStore
from braid.engine.sparse.qdrant_backends import ClientSparseCollection, EdgeSparseCollection
from braid.engine.sparse.qdrant_sparse import QdrantSparseStore
from braid.engine.sparse.tantivy_store import TantivySparseStore

SERVER_URL = os.environ.get("BRAID_TEST_QDRANT_URL")

# Query -> every sample document with a query term, best first (checked by hand: the
# runners-up share only a common word such as "are" or "from" with the query).
EXPECTED = {
    "coffee brewing pressure": ["espresso"],
    "planets around other stars": ["exoplanet-transit", "saturn-rings"],
    "sourdough": ["sourdough"],
    "Lucene": ["inverted-index"],
    # Stemming: "ranked" and "rankings" both become "rank".
    "ranked": ["rrf-fusion", "bm25-intro"],
    "zeppelin quasar": [],
    "": [],
    "?!": [],
}

# Opens the store kept at a path (the same path reopens the same store).
Opener = Callable[[Path], SparseStore]


def doc_ids_of(hits: list[Any], doc_of: dict[str, str]) -> list[str]:
    return [doc_of[h.point_id] for h in hits]


class SparseStoreContract(ChunkStoreContract):
    """The ``SparseStore`` contract; subclasses provide ``opener``."""

    protocol: ClassVar[type] = SparseStore
    # Scores may move on reopen: Qdrant Edge counts a deleted chunk in IDF until the shard is
    # reloaded (Tantivy until compaction); the ranking may not.
    exact_scores_on_reopen: ClassVar[bool] = False

    @pytest.fixture(scope="class")
    @classmethod
    def opener(cls) -> Opener:
        raise NotImplementedError

    def write(self, store: Any, chunks: list[Chunk]) -> None:
        store.upsert(chunks)
        store.commit()

    def commit(self, store: Any) -> None:
        store.commit()

    @pytest.fixture
    def reopen(self, opener: Opener, tmp_path: Path) -> Callable[..., SparseStore]:
        return lambda name="store": opener(tmp_path / name)

    @pytest.fixture
    def loaded(self, store: SparseStore, sample_chunks: list[Chunk]) -> SparseStore:
        self.write(store, sample_chunks)
        return store

    @pytest.fixture(scope="class")
    @classmethod
    def shared(
        cls,
        opener: Opener,
        tmp_path_factory: pytest.TempPathFactory,
        sample_chunks: list[Chunk],
    ) -> Iterator[SparseStore]:
        store = opener(tmp_path_factory.mktemp("shared") / "store")
        store.upsert(sample_chunks)
        store.commit()
        yield store
        store.close()

    def test_finds_nothing_while_empty(self, store: SparseStore) -> None:
        assert store.search("anything", 10) == []

    @pytest.mark.parametrize("query", list(EXPECTED))
    def test_expected_hits(self, shared: SparseStore, doc_of: dict[str, str], query: str) -> None:
        assert doc_ids_of(shared.search(query, 12), doc_of) == EXPECTED[query]

    def test_scores_are_descending_and_limit_cuts(self, shared: SparseStore) -> None:
        full = shared.search("ranking documents by query term frequency", 12)
        assert len(full) >= 5
        assert all(a.score >= b.score for a, b in zip(full, full[1:], strict=False))
        assert shared.search("ranking documents by query term frequency", 3) == full[:3]
        assert shared.search("ranking documents by query term frequency", 0) == []

    def test_ties_break_by_point_id(self, store: SparseStore) -> None:
        twins = [Chunk(f"twin-{i}", 0, "identical words here") for i in range(5)]
        self.write(store, twins)
        hits = store.search("identical", 5)
        assert [h.point_id for h in hits] == sorted(c.point_id for c in twins)
        assert len({h.score for h in hits}) == 1

    def test_writes_are_invisible_until_commit(
        self, store: SparseStore, sample_chunks: list[Chunk]
    ) -> None:
        store.upsert(sample_chunks)
        assert store.count() == 0
        assert store.search("sourdough", 5) == []
        store.commit()
        assert store.count() == len(sample_chunks)
        store.delete_docs(["sourdough"])
        assert store.count() == len(sample_chunks)
        store.commit()
        assert store.count() == len(sample_chunks) - 1

    def test_new_text_replaces_the_old_in_searches(
        self, loaded: SparseStore, sample_chunks: list[Chunk], doc_of: dict[str, str]
    ) -> None:
        espresso = next(c for c in sample_chunks if c.doc_id == "espresso")
        changed = dataclasses.replace(espresso, text="Matcha is whisked green tea.", title="Tea")
        self.write(loaded, [changed])
        assert loaded.count() == len(sample_chunks)
        assert loaded.search("coffee", 5) == []
        assert doc_ids_of(loaded.search("matcha", 5), doc_of) == ["espresso"]

    def test_search_skips_deleted_docs(self, loaded: SparseStore) -> None:
        second = Chunk("sourdough", 1, "Feed the starter with flour daily.", "Sourdough bread")
        self.write(loaded, [second])
        assert len(loaded.search("sourdough", 5)) == 2
        loaded.delete_docs(["sourdough", "espresso"])
        loaded.commit()
        assert loaded.search("sourdough starter espresso", 5) == []

    @pytest.mark.parametrize(("raw", "expected"), FILTER_CASES)
    def test_filtered_search_keeps_scores(
        self,
        shared: SparseStore,
        sample_chunks: list[Chunk],
        doc_of: dict[str, str],
        raw: dict[str, Any],
        expected: set[str] | None,
    ) -> None:
        keep = {c.doc_id for c in sample_chunks} if expected is None else expected
        query = "the rankings of documents and planets"
        unfiltered = shared.search(query, 12)
        hits = shared.search(query, 3, parse_filter(raw))
        assert hits == [h for h in unfiltered if doc_of[h.point_id] in keep][:3]

    def test_reopen_keeps_rankings_and_drops_uncommitted_writes(
        self, reopen: Callable[[], SparseStore], sample_chunks: list[Chunk]
    ) -> None:
        first = reopen()
        self.write(first, sample_chunks)
        first.delete_docs(["espresso"])
        first.commit()
        first.upsert([Chunk("uncommitted", 0, "lost on close")])
        before = first.search("bread planets rankings", 5, parse_filter({"reviewed": True}))
        first.close()
        again = reopen()
        try:
            after = again.search("bread planets rankings", 5, parse_filter({"reviewed": True}))
            assert [h.point_id for h in after] == [h.point_id for h in before]
            if self.exact_scores_on_reopen:
                assert after == before
            assert again.search("lost", 5) == []
        finally:
            again.close()

    def test_optimize_keeps_the_contents(
        self, loaded: SparseStore, sample_chunks: list[Chunk]
    ) -> None:
        before = loaded.search("ranking", 12)
        loaded.delete_docs(["bm25-intro"])
        loaded.commit()
        loaded.optimize()
        assert loaded.count() == len(sample_chunks) - 1
        assert [h.point_id for h in loaded.search("ranking", 12)] == [
            h.point_id for h in before if h.point_id != sample_chunks[0].point_id
        ]

    def test_optimize_drops_deleted_chunks_from_bm25_statistics(
        self, reopen: Callable[..., SparseStore], loaded: SparseStore, sample_chunks: list[Chunk]
    ) -> None:
        query = "ranking documents by term frequency"
        loaded.delete_docs(["bm25-intro", "rrf-fusion"])
        loaded.commit()
        fresh = reopen("fresh")
        try:
            self.write(
                fresh, [c for c in sample_chunks if c.doc_id not in {"bm25-intro", "rrf-fusion"}]
            )
            expected = fresh.search(query, 12)
            # Before: deleted chunks still count in N and document frequencies.
            assert [h.score for h in loaded.search(query, 12)] != pytest.approx(
                [h.score for h in expected]
            )
            loaded.optimize()
            got = loaded.search(query, 12)
            assert [h.point_id for h in got] == [h.point_id for h in expected]
            assert [h.score for h in got] == pytest.approx([h.score for h in expected])
        finally:
            fresh.close()


class TestTantivySparseStore(SparseStoreContract):
    exact_scores_on_reopen = True

    @pytest.fixture(scope="class")
    @classmethod
    def opener(cls) -> Opener:
        return TantivySparseStore


class TestQdrantEdgeSparseStore(SparseStoreContract):
    @pytest.fixture(scope="class")
    @classmethod
    def opener(cls) -> Opener:
        return lambda path: QdrantSparseStore(EdgeSparseCollection(path))


class TestQdrantLocalSparseStore(SparseStoreContract):
    @pytest.fixture(scope="class")
    @classmethod
    def opener(cls) -> Opener:
        def open_local(path: Path) -> SparseStore:
            client = QdrantClient(path=str(path))
            return QdrantSparseStore(ClientSparseCollection(client, "bm25", owns_client=True))

        return open_local


@pytest.mark.skipif(not SERVER_URL, reason="BRAID_TEST_QDRANT_URL not set")
class TestQdrantServerSparseStore(SparseStoreContract):
    @pytest.fixture(scope="class")
    @classmethod
    def opener(cls) -> Opener:
        seen: set[str] = set()

        def open_server(path: Path) -> SparseStore:
            client = QdrantClient(url=SERVER_URL)
            collection = f"braid_test_bm25_{path.parent.name}_{path.name}".replace("-", "_")
            if collection not in seen and client.collection_exists(collection):
                client.delete_collection(collection)  # left by an earlier run; reopening keeps it
            seen.add(collection)
            return QdrantSparseStore(ClientSparseCollection(client, collection, owns_client=True))

        return open_server


class TestTantivyWriterLock:
    def test_second_writer_is_refused(self, tmp_path: Path) -> None:
        first = TantivySparseStore(tmp_path)
        try:
            with pytest.raises(IndexLockedError):
                TantivySparseStore(tmp_path)
        finally:
            first.close()
        TantivySparseStore(tmp_path).close()  # released on close

    def test_read_only_store_sees_commits_after_reload_and_cannot_write(
        self, tmp_path: Path, sample_chunks: list[Chunk]
    ) -> None:
        writer = TantivySparseStore(tmp_path)
        reader = TantivySparseStore(tmp_path, read_only=True)
        try:
            writer.upsert(sample_chunks)
            writer.commit()
            reader.reload()
            assert reader.count() == len(sample_chunks)
            assert len(reader.search("sourdough", 5)) == 1
            with pytest.raises(IndexLockedError):
                reader.upsert(sample_chunks)
            with pytest.raises(IndexLockedError):
                reader.delete_docs(["sourdough"])
        finally:
            reader.close()
            writer.close()

    def test_rollback_drops_buffered_writes(
        self, tmp_path: Path, sample_chunks: list[Chunk]
    ) -> None:
        store = TantivySparseStore(tmp_path)
        try:
            store.upsert(sample_chunks[:3])
            store.commit()
            store.upsert(sample_chunks[3:])
            store.delete_docs([sample_chunks[0].doc_id])
            store.rollback()
            store.commit()
            assert store.count() == 3
        finally:
            store.close()


def test_tantivy_point_ids_are_written_as_uuid_writes_them() -> None:
    import random
    import uuid

    from braid.engine.sparse.tantivy_store import _uuid_text

    rng = random.Random(5)
    values = [0, 1, 2**128 - 1, 2**64, 2**64 - 1, *(rng.getrandbits(128) for _ in range(500))]
    for value in values:
        assert _uuid_text(value >> 64, value & (2**64 - 1)) == str(uuid.UUID(int=value))
