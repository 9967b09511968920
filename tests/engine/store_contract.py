"""What every chunk store promises, dense or sparse: a base class of test methods (haystack's
``haystack/testing/document_store.py`` pattern).

``DenseStoreContract`` (``test_dense_contract.py``) and ``SparseStoreContract``
(``test_sparse_contract.py``) add their leg's own tests; one subclass per implementation only
provides the ``opener`` fixture. The base asks its leg for three fixtures (``reopen``: opens
a store at this test's location, again and again; ``loaded``: the sample corpus written;
``shared``: the same, loaded once per class for tests that only read) and two hooks
(``write``: store chunks and make them visible; ``commit``: make deletes visible); ``store``
(empty, open) comes from ``reopen``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pytest
from sample_cases import FILTER_CASES, ODD_CHUNK, typed

from braid.engine.filters import parse_filter
from braid.engine.models import Chunk

Reopen = Callable[[], Any]


class ChunkStoreContract:
    """Tests that hold for ``DenseStore`` and ``SparseStore`` alike."""

    protocol: ClassVar[type]

    def write(self, store: Any, chunks: list[Chunk]) -> None:
        """Store ``chunks`` and make them visible to reads."""
        raise NotImplementedError

    def commit(self, store: Any) -> None:
        """Make writes and deletes visible (a no-op for stores that apply them at once)."""

    @pytest.fixture
    def store(self, reopen: Reopen) -> Iterator[Any]:
        opened = reopen()
        yield opened
        opened.close()

    def test_satisfies_protocol_and_starts_empty(self, store: Any) -> None:
        assert isinstance(store, self.protocol)
        assert store.count() == 0
        assert store.doc_ids() == set()
        assert store.fetch(["00000000-0000-0000-0000-000000000000"]) == {}

    def test_upsert_twice_keeps_one_copy_and_the_new_payload(
        self, loaded: Any, sample_chunks: list[Chunk]
    ) -> None:
        self.write(loaded, sample_chunks)
        assert loaded.count() == len(sample_chunks)
        changed = dataclasses.replace(sample_chunks[0], text="rewritten", metadata={"year": 1999})
        self.write(loaded, [changed])
        assert loaded.count() == len(sample_chunks)
        assert loaded.fetch([changed.point_id]) == {changed.point_id: changed}
        assert loaded.doc_ids(parse_filter({"year": 1999})) == {changed.doc_id}
        assert loaded.doc_ids(parse_filter({"year": 2019})) == set()

    def test_delete_docs_removes_every_chunk_of_the_docs(
        self, loaded: Any, sample_chunks: list[Chunk]
    ) -> None:
        second = Chunk("sourdough", 1, "Feed the starter with flour daily.", "Sourdough bread")
        self.write(loaded, [second])
        assert loaded.count() == 13
        loaded.delete_docs(["sourdough", "espresso", "not-a-doc"])
        self.commit(loaded)
        assert loaded.count() == 10
        sourdough = next(c for c in sample_chunks if c.doc_id == "sourdough")
        assert loaded.fetch([second.point_id, sourdough.point_id]) == {}
        assert loaded.doc_ids() == {c.doc_id for c in sample_chunks} - {"sourdough", "espresso"}
        loaded.delete_docs([])
        self.commit(loaded)
        assert loaded.count() == 10

    def test_fetch_round_trips_chunks(self, loaded: Any, sample_chunks: list[Chunk]) -> None:
        unknown = ["00000000-0000-0000-0000-000000000000", "not-even-a-uuid"]
        fetched = loaded.fetch([c.point_id for c in sample_chunks] + unknown)
        assert fetched == {c.point_id: c for c in sample_chunks}
        self.write(loaded, [ODD_CHUNK])
        assert loaded.fetch([ODD_CHUNK.point_id]) == {ODD_CHUNK.point_id: ODD_CHUNK}
        got = loaded.fetch([ODD_CHUNK.point_id])[ODD_CHUNK.point_id]
        assert typed(got.metadata) == typed(ODD_CHUNK.metadata)
        assert loaded.fetch([]) == {}

    @pytest.mark.parametrize(("raw", "expected"), FILTER_CASES)
    def test_doc_ids_with_filter(
        self,
        shared: Any,
        sample_chunks: list[Chunk],
        raw: dict[str, Any],
        expected: set[str] | None,
    ) -> None:
        everyone = {c.doc_id for c in sample_chunks}
        assert shared.doc_ids(parse_filter(raw)) == (everyone if expected is None else expected)

    def test_contents_survive_close_and_reopen(
        self, reopen: Reopen, sample_chunks: list[Chunk]
    ) -> None:
        first = reopen()
        self.write(first, sample_chunks)
        first.delete_docs(["espresso"])
        self.commit(first)
        first.close()
        again = reopen()
        try:
            assert again.count() == len(sample_chunks) - 1
            assert again.fetch([sample_chunks[0].point_id]) == {
                sample_chunks[0].point_id: sample_chunks[0]
            }
            assert again.doc_ids() == {c.doc_id for c in sample_chunks} - {"espresso"}
        finally:
            again.close()
