"""What is particular to BM25 in Qdrant: the stored average length, the scoring manifest and
the term dimensions (the common behaviour is in the sparse contract suite)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from braid.engine.errors import ConfigError
from braid.engine.models import Chunk
from braid.engine.sparse.bm25_vectors import Bm25Encoder, term_dimension
from braid.engine.sparse.qdrant_backends import MANIFEST_FILE, EdgeSparseCollection
from braid.engine.sparse.qdrant_sparse import QdrantSparseStore


def open_store(path: Path, avg_len: float | None = None) -> QdrantSparseStore:
    return QdrantSparseStore(EdgeSparseCollection(path), avg_len=avg_len)


def test_avg_len_is_measured_on_the_first_commit_and_kept(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    assert store.avg_len is None
    # 2 and 5 terms after analysis (en_stem keeps stop words such as "at" and "the").
    store.upsert([Chunk("a", 0, "cats purr"), Chunk("b", 0, "dogs bark at the moon")])
    store.commit()
    assert store.avg_len == pytest.approx((2 + 5) / 2)
    store.upsert([Chunk("c", 0, " ".join(["word"] * 40))])
    store.commit()
    assert store.avg_len == pytest.approx(3.5)  # later writes use the stored average
    store.close()
    again = open_store(tmp_path, avg_len=99.0)  # the setting only applies to a new store
    try:
        assert again.avg_len == pytest.approx(3.5)
        again.optimize()  # re-measured over the three chunks: (2 + 5 + 40) / 3
        assert again.avg_len == pytest.approx(47 / 3)
        assert json.loads((tmp_path / MANIFEST_FILE).read_text())["avg_len"] == pytest.approx(
            47 / 3
        )
    finally:
        again.close()


def test_configured_avg_len_is_used_by_a_new_store(tmp_path: Path) -> None:
    store = open_store(tmp_path, avg_len=10.0)
    try:
        store.upsert([Chunk("a", 0, "cats purr")])
        store.commit()
        assert store.avg_len == 10.0
        hits = store.search("cats", 1)
        # One document, so N = n = 1: idf = ln(1 + 0.5 / 1.5); tf 1, length 2 of 10.
        idf = 0.28768207245178085
        tf = 1 * 2.2 / (1 + 1.2 * (1 - 0.75 + 0.75 * 2 / 10))
        assert hits[0].score == pytest.approx(idf * tf, rel=1e-5)
    finally:
        store.close()


def test_another_scoring_scheme_is_refused(tmp_path: Path) -> None:
    open_store(tmp_path).close()
    manifest = json.loads((tmp_path / MANIFEST_FILE).read_text())
    (tmp_path / MANIFEST_FILE).write_text(json.dumps(manifest | {"scoring": "bm25-other"}))
    with pytest.raises(ConfigError, match="re-index the sparse side"):
        open_store(tmp_path)


def test_term_dimensions_are_stable() -> None:
    # Stored vectors depend on these: a change of hash would silently break every index.
    assert term_dimension("rank") == 218_579_092
    assert term_dimension("gene") == 2_565_846_508


def test_query_counts_repeats_and_document_saturates() -> None:
    encoder = Bm25Encoder()
    query = encoder.query("genes genes expression")
    weights = dict(zip(query.indices, query.values, strict=True))
    assert weights == {term_dimension("gene"): 2.0, term_dimension("express"): 1.0}
    doc = encoder.document(["gene"] * 3 + ["cell"], avg_len=4.0)
    values = dict(zip(doc.indices, doc.values, strict=True))
    assert values[term_dimension("gene")] == pytest.approx(3 * 2.2 / (3 + 1.2))
    assert values[term_dimension("cell")] == pytest.approx(1 * 2.2 / (1 + 1.2))


def test_a_read_only_store_searches_and_never_writes(tmp_path: Path) -> None:
    from qdrant_client import QdrantClient

    from braid.engine.errors import IndexLockedError
    from braid.engine.sparse.qdrant_backends import ClientSparseCollection

    client = QdrantClient(":memory:")  # one client, as processes share one server
    writer = QdrantSparseStore(ClientSparseCollection(client, "bm25"))
    reader = QdrantSparseStore(ClientSparseCollection(client, "bm25"), read_only=True)
    writer.upsert([Chunk("a", 0, "cats purr"), Chunk("b", 0, "dogs bark at the moon")])
    writer.commit()
    assert [h.point_id for h in reader.search("cats", 5)] == [Chunk("a", 0, "").point_id]
    for write in (
        lambda: reader.upsert([Chunk("c", 0, "x")]),
        lambda: reader.delete_docs(["a"]),
        reader.commit,
        reader.optimize,
    ):
        with pytest.raises(IndexLockedError):
            write()
    # A reader that opens a collection before the writer has written its manifest leaves it
    # alone (the writer's average length could otherwise be overwritten by an empty one).
    fresh = ClientSparseCollection(QdrantClient(":memory:"), "bm25")
    QdrantSparseStore(fresh, read_only=True)
    assert fresh.manifest() is None
