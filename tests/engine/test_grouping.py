"""Documents from chunk hits: the rules on hand-made hits, and through the searcher on a
corpus whose documents have several chunks (exact ids and scores)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from braid.engine.dense.edge import QdrantEdgeDenseStore
from braid.engine.errors import InvalidRequestError
from braid.engine.fusion import fuse
from braid.engine.grouping import best_per_document, group_documents, rank_documents
from braid.engine.models import Chunk, Hit, ScoredPoint
from braid.engine.searcher import HybridSearcher, SearchDefaults
from braid.engine.sparse.analysis import bm25_text
from braid.engine.sparse.tantivy_store import TantivySparseStore

if TYPE_CHECKING:
    from braid.engine.embedder import SentenceTransformerEmbedder


def hit(doc: str, index: int, score: float) -> Hit:
    chunk = Chunk(doc_id=doc, chunk_index=index, text=f"{doc} {index}")
    return Hit(point_id=chunk.point_id, score=score, chunk=chunk)


def test_group_documents_by_hand() -> None:
    hits = [
        hit("A", 0, 0.9),
        hit("B", 0, 0.8),
        hit("A", 1, 0.7),
        hit("C", 0, 0.6),
        hit("A", 2, 0.5),
        hit("A", 3, 0.4),
        Hit(point_id="gone", score=0.35),  # no chunk: deleted mid-query, skipped
        hit("B", 1, 0.3),
    ]
    docs = group_documents(hits, limit=2, passages=3)
    assert [(d.doc_id, d.score, d.rank) for d in docs] == [("A", 0.9, 1), ("B", 0.8, 2)]
    assert [p.chunk.chunk_index for p in docs[0].passages if p.chunk] == [0, 1, 2]
    assert [p.chunk.chunk_index for p in docs[1].passages if p.chunk] == [0, 1]
    assert docs[0].best is hits[0]
    three = group_documents(hits, limit=5, passages=1)
    assert [(d.doc_id, d.score, d.rank) for d in three] == [
        ("A", 0.9, 1),
        ("B", 0.8, 2),
        ("C", 0.6, 3),
    ]
    assert all(len(d.passages) == 1 for d in three)
    with pytest.raises(ValueError, match="passages"):
        group_documents(hits, limit=1, passages=0)
    # The same rules for a peer's (doc id, score) pairs.
    pairs = [(h.doc_id, h.score) for h in hits]
    assert rank_documents(pairs, 2) == [("A", 0.9), ("B", 0.8)]
    assert rank_documents(pairs, 5) == [(d.doc_id, d.score) for d in three]


def test_best_per_document_keeps_each_documents_first_chunk() -> None:
    ranking = [
        ScoredPoint("a0", 5.0),
        ScoredPoint("b0", 4.0),
        ScoredPoint("a1", 3.0),
        ScoredPoint("x", 2.5),
        ScoredPoint("c0", 2.0),
    ]
    doc_of = {"a0": "A", "a1": "A", "b0": "B", "c0": "C"}  # x: unknown document, dropped
    assert best_per_document(ranking, doc_of) == [
        ScoredPoint("A", 5.0),
        ScoredPoint("B", 4.0),
        ScoredPoint("C", 2.0),
    ]


# -- through the searcher: four documents of 1-3 chunks ---------------------------------------

PARTS = {
    "tea": [
        "Green tea is brewed from unoxidised leaves of the tea plant.",
        "Black tea is fully oxidised and brewed with boiling water.",
        "Tea ceremonies in Japan centre on powdered matcha.",
    ],
    "coffee": [
        "Espresso is coffee brewed by forcing hot water through fine grounds.",
        "A latte adds steamed milk to a shot of espresso coffee.",
    ],
    "saturn": [
        "Saturn's rings are made of ice and rock particles.",
        "The planet Saturn has more than eighty known moons.",
    ],
    "bread": ["Sourdough bread rises with wild yeast and lactic bacteria."],
}
CHUNKS = [
    Chunk(doc_id=doc, chunk_index=i, text=text, title=doc)
    for doc, texts in PARTS.items()
    for i, text in enumerate(texts)
]
QUERIES = ["hot brewed drinks", "rings and moons of a planet", "tea leaves", "milk"]


@pytest.fixture(scope="module")
def searcher(
    tmp_path_factory: pytest.TempPathFactory, embedder: SentenceTransformerEmbedder
) -> Iterator[HybridSearcher]:
    root = tmp_path_factory.mktemp("grouping")
    dense = QdrantEdgeDenseStore(root / "dense", embedder.info)
    dense.upsert(CHUNKS, embedder.encode_passages([bm25_text(c) for c in CHUNKS]))
    sparse = TantivySparseStore(root / "sparse")
    sparse.upsert(CHUNKS)
    sparse.commit()
    built = HybridSearcher(embedder, dense, sparse, defaults=SearchDefaults(fusion="rrf"))
    yield built
    built.close()
    sparse.close()
    dense.close()


@pytest.mark.parametrize("query", QUERIES)
@pytest.mark.parametrize("mode", ["bm25", "dense", "hybrid"])
def test_documents_are_the_chunk_ranking_grouped(
    searcher: HybridSearcher, query: str, mode: str
) -> None:
    chunks = searcher.search(query, top_k=len(CHUNKS), mode=mode).hits  # type: ignore[arg-type]
    grouped = searcher.search(query, top_k=2, mode=mode, group_by="document", passages=2)  # type: ignore[arg-type]
    # By hand: first occurrence order, the first chunk's score, at most 2 chunks each.
    order: list[str] = []
    for h in chunks:
        if h.doc_id not in order:
            order.append(h.doc_id)
    assert grouped.documents is not None
    assert [d.doc_id for d in grouped.documents] == order[:2]
    for rank, document in enumerate(grouped.documents, start=1):
        own = [h for h in chunks if h.doc_id == document.doc_id]
        assert document.rank == rank
        assert document.score == own[0].score
        assert [p.point_id for p in document.passages] == [h.point_id for h in own[:2]]
    # hits are the documents' passages, in the same order
    assert [h.point_id for h in grouped.hits] == [
        p.point_id for d in grouped.documents for p in d.passages
    ]


@pytest.mark.parametrize("query", QUERIES)
def test_document_level_fusion_fuses_each_documents_best_chunk(
    searcher: HybridSearcher, embedder: SentenceTransformerEmbedder, query: str
) -> None:
    response = searcher.search(
        query, top_k=4, group_by="document", fusion_level="document", fusion="rrf"
    )
    doc_of = {c.point_id: c.doc_id for c in CHUNKS}
    dense = searcher.dense.search(embedder.encode_queries([query])[0], 100)
    bm25 = searcher.sparse.search(query, 100)
    # By hand: each list cut to documents (1-based document ranks), RRF k=60 over those.
    expected: dict[str, float] = {}
    for ranking in (dense, bm25):
        for rank, point in enumerate(best_per_document(ranking, doc_of), start=1):
            expected[point.point_id] = expected.get(point.point_id, 0.0) + 1 / (60 + rank)
    assert response.documents is not None
    got = {d.doc_id: d.score for d in response.documents}
    assert got == pytest.approx(expected, rel=1e-12)
    assert [d.score for d in response.documents] == sorted(got.values(), reverse=True)
    reference = fuse(
        "rrf", {"dense": best_per_document(dense, doc_of), "bm25": best_per_document(bm25, doc_of)}
    )
    assert [d.doc_id for d in response.documents] == [h.point_id for h in reference]
    for document in response.documents:
        assert len(document.passages) == 1
        assert document.best.doc_id == document.doc_id


def test_grouping_parameters_are_checked(searcher: HybridSearcher) -> None:
    with pytest.raises(InvalidRequestError, match="group_by"):
        searcher.search("tea", group_by="page")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError, match="passages"):
        searcher.search("tea", group_by="document", passages=0)
    with pytest.raises(InvalidRequestError, match="fusion_level"):
        searcher.search("tea", fusion_level="sentence")  # type: ignore[arg-type]
