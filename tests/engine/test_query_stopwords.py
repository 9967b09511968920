"""Query-time English stopwords in both BM25 stores (``sparse.query_stopwords``).

Query text drops Tantivy's English stopwords (Lucene's list) before BM25, unless that leaves
nothing; documents keep every term, so the option can change without a re-index. The corpus
is small enough to score by hand: all documents are under 41 terms, so Tantivy's one-byte
length norms are exact and both backends must give the hand-computed BM25 scores.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from qdrant_client import QdrantClient

from braid.engine.config import Settings
from braid.engine.errors import ConfigError
from braid.engine.models import Chunk, ScoredPoint
from braid.engine.sparse.analysis import QueryStopwords, document_terms, query_terms
from braid.engine.sparse.qdrant_backends import ClientSparseCollection, EdgeSparseCollection
from braid.engine.sparse.qdrant_sparse import QdrantSparseStore
from braid.engine.sparse.tantivy_store import TantivySparseStore
from braid.engine.stores import build_sparse_store

K1 = 1.2
B = 0.75
BACKENDS = ["tantivy", "qdrant-edge", "qdrant-local"]

Store = TantivySparseStore | QdrantSparseStore

# Terms after analysis: 5, 3, 4 and 6 (documents keep "the", "a", "at", "to", ...).
CORPUS = [
    Chunk("the-dog", 0, "The the THE the dog"),
    Chunk("cat", 0, "a cat sleeps"),
    Chunk("birds", 0, "birds sing at dawn"),
    Chunk("hamlet", 0, "To be, or not to be"),
]
N_DOCS = len(CORPUS)
AVG_LEN = (5 + 3 + 4 + 6) / 4
ID = {c.doc_id: c.point_id for c in CORPUS}


def bm25(tf: int, df: int, length: int) -> float:
    """One query term's BM25 on one document of ``CORPUS``, Lucene's IDF (as Tantivy)."""
    idf = math.log(1 + (N_DOCS - df + 0.5) / (df + 0.5))
    return idf * tf * (K1 + 1) / (tf + K1 * (1 - B + B * length / AVG_LEN))


def open_store(backend: str, path: Path, query_stopwords: QueryStopwords) -> Store:
    if backend == "tantivy":
        return TantivySparseStore(path, query_stopwords=query_stopwords)
    if backend == "qdrant-edge":
        return QdrantSparseStore(EdgeSparseCollection(path), query_stopwords=query_stopwords)
    client = QdrantClient(path=str(path))
    return QdrantSparseStore(
        ClientSparseCollection(client, "bm25", owns_client=True), query_stopwords=query_stopwords
    )


@pytest.fixture(params=BACKENDS)
def corpus_at(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[QueryStopwords], Store]]:
    """Opens ``CORPUS`` (written once, with every term) with a query stopword option."""
    backend: str = request.param
    writer = open_store(backend, tmp_path, "english")
    writer.upsert(CORPUS)
    writer.commit()
    writer.close()
    opened: list[Store] = []

    def reopen(query_stopwords: QueryStopwords) -> Store:
        while opened:  # local mode and Tantivy's writer allow one holder of the folder
            opened.pop().close()
        store = open_store(backend, tmp_path, query_stopwords)
        opened.append(store)
        return store

    yield reopen
    while opened:
        opened.pop().close()


def ranked(hits: list[ScoredPoint]) -> list[tuple[str, float]]:
    doc_of = {v: k for k, v in ID.items()}
    return [(doc_of[h.point_id], h.score) for h in hits]


def assert_hits(hits: list[ScoredPoint], expected: list[tuple[str, float]]) -> None:
    got = ranked(hits)
    assert [d for d, _ in got] == [d for d, _ in expected]
    assert [s for _, s in got] == pytest.approx([s for _, s in expected], rel=1e-5)


# -- analysis ---------------------------------------------------------------------------------


def test_stopwords_go_after_lowercasing_and_before_stemming() -> None:
    assert query_terms("The Cats WAS running") == ["cat", "run"]
    assert query_terms("The Cats WAS running", "none") == ["the", "cat", "was", "run"]
    # "ifs" and "buts" are no stopwords; their stems are ("if", "but"): still kept.
    assert query_terms("ifs and buts") == ["if", "but"]
    # The surviving terms are exactly en_stem's, as documents are indexed.
    assert query_terms("Lucene's postings-lists of the rankings") == [
        "lucen",
        "s",
        "post",
        "list",
        "rank",
    ]
    assert query_terms("a" * 41 + " the short") == ["short"]  # over 40 bytes: dropped


def test_repeats_are_kept_and_a_stopword_only_query_keeps_every_term() -> None:
    assert query_terms("cat and the cat") == ["cat", "cat"]
    assert query_terms("To be, or NOT to be") == ["to", "be", "or", "not", "to", "be"]
    assert query_terms("The") == ["the"]
    assert query_terms("") == []
    assert query_terms("?!") == []


def test_documents_are_analysed_with_every_term() -> None:
    assert document_terms("The the THE the dog") == ["the"] * 4 + ["dog"]


def test_an_unknown_option_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="query stopwords"):
        query_terms("the cat", "french")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="query stopwords"):
        TantivySparseStore(tmp_path / "t", query_stopwords="french")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="query stopwords"):
        QdrantSparseStore(
            EdgeSparseCollection(tmp_path / "q"),
            query_stopwords="french",  # type: ignore[arg-type]
        )


# -- search -----------------------------------------------------------------------------------


def test_a_stopword_changes_the_ranking(corpus_at: Callable[[QueryStopwords], Store]) -> None:
    cat = bm25(tf=1, df=1, length=3)
    the = bm25(tf=4, df=1, length=5)
    assert the > cat  # four "the" outweigh one "cat" (same IDF: each in one document)
    kept = corpus_at("none")
    assert kept.analyze("the cat") == ["the", "cat"]
    assert_hits(kept.search("the cat", 10), [("the-dog", the), ("cat", cat)])
    dropped = corpus_at("english")
    assert dropped.analyze("the cat") == ["cat"]
    assert_hits(dropped.search("the cat", 10), [("cat", cat)])


def test_the_default_drops_stopwords(tmp_path: Path) -> None:
    tantivy = TantivySparseStore(tmp_path / "t")
    qdrant = QdrantSparseStore(EdgeSparseCollection(tmp_path / "q"))
    try:
        assert tantivy.analyze("the cat") == qdrant.analyze("the cat") == ["cat"]
    finally:
        tantivy.close()
        qdrant.close()


def test_a_stopword_only_query_keeps_its_terms(
    corpus_at: Callable[[QueryStopwords], Store],
) -> None:
    # Query counts: to 2, be 2, or 1, not 1; "hamlet" holds to 2, be 2, or 1, not 1 of 6.
    expected = [
        (
            "hamlet",
            2 * bm25(tf=2, df=1, length=6) * 2 + bm25(tf=1, df=1, length=6) * 2,
        )
    ]
    for option in ("english", "none"):
        store = corpus_at(option)
        assert store.analyze("to be or not to be") == ["to", "be", "or", "not", "to", "be"]
        assert_hits(store.search("to be or not to be", 10), expected)


def test_a_repeated_query_term_counts_again(
    corpus_at: Callable[[QueryStopwords], Store],
) -> None:
    dog = bm25(tf=1, df=1, length=5)
    cat = bm25(tf=1, df=1, length=3)
    assert cat > dog  # the shorter document wins on one occurrence each
    store = corpus_at("english")
    assert_hits(store.search("dog", 10), [("the-dog", dog)])
    assert_hits(store.search("dog dog", 10), [("the-dog", 2 * dog)])
    assert_hits(store.search("cat dog", 10), [("cat", cat), ("the-dog", dog)])
    # Doubling "dog" doubles its contribution and turns the ranking round.
    assert_hits(store.search("the cat dog and dog", 10), [("the-dog", 2 * dog), ("cat", cat)])
    # With every term kept, each "the" of the query adds "the"'s score once more.
    kept = corpus_at("none")
    the = bm25(tf=4, df=1, length=5)
    assert_hits(kept.search("the the dog", 10), [("the-dog", 2 * the + dog)])


def test_documents_keep_stopwords_so_the_option_needs_no_reindex(
    corpus_at: Callable[[QueryStopwords], Store],
) -> None:
    # The corpus was written by an "english" store: "the" is still in the index.
    assert_hits(corpus_at("none").search("the", 10), [("the-dog", bm25(tf=4, df=1, length=5))])
    store = corpus_at("english")
    assert_hits(store.search("the", 10), [("the-dog", bm25(tf=4, df=1, length=5))])  # fallback
    if isinstance(store, QdrantSparseStore):
        assert store.avg_len == pytest.approx(AVG_LEN)  # measured with the stopwords


# -- both backends ----------------------------------------------------------------------------

SAMPLE_QUERIES = [
    "the rings of saturn are made of ice",
    "how does bm25 score documents",
    "ranking documents by term frequency",
    "what is the best way to brew a coffee",
    "a hot drink",
    "to be or not to be",
]


@pytest.fixture(scope="module")
def sample_stores(
    tmp_path_factory: pytest.TempPathFactory, sample_chunks: list[Chunk]
) -> Iterator[dict[str, Store]]:
    stores: dict[str, Store] = {}
    for backend in BACKENDS:
        store = open_store(backend, tmp_path_factory.mktemp(backend), "english")
        store.upsert(sample_chunks)
        store.commit()
        stores[backend] = store
    yield stores
    for store in stores.values():
        store.close()


@pytest.mark.parametrize("query", SAMPLE_QUERIES)
def test_backends_agree_with_stopwords_dropped(sample_stores: dict[str, Store], query: str) -> None:
    tantivy, edge, local = (sample_stores[b] for b in BACKENDS)
    assert tantivy.analyze(query) == edge.analyze(query) == local.analyze(query)
    expected = tantivy.search(query, 12)
    assert expected
    for other in (edge, local):
        got = other.search(query, 12)
        assert [h.point_id for h in got] == [h.point_id for h in expected]
        # Tantivy rounds lengths over 40 terms (one-byte norms); the vectors keep them exact.
        assert [h.score for h in got] == pytest.approx([h.score for h in expected], rel=0.05)


def test_dropping_stopwords_narrows_the_sample_hits(sample_stores: dict[str, Store]) -> None:
    # "a hot drink" shares only "a" with most sample documents; without it, only the
    # documents holding "hot" or "drink" match.
    store = sample_stores["tantivy"]
    assert store.analyze("a hot drink") == ["hot", "drink"]
    hits = store.search("a hot drink", 12)
    texts = {c.point_id: document_terms(c.text + " " + c.title) for c in store.chunks()}
    assert hits
    assert all({"hot", "drink"} & set(texts[h.point_id]) for h in hits)


# -- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["tantivy", "qdrant"])
@pytest.mark.parametrize(
    ("option", "terms"), [(None, ["cat"]), ("english", ["cat"]), ("none", ["the", "cat"])]
)
def test_settings_choose_the_query_stopwords(
    tmp_path: Path, backend: str, option: str | None, terms: list[str]
) -> None:
    sparse: dict[str, str] = {"backend": backend}
    if option is not None:
        sparse["query_stopwords"] = option
    store = build_sparse_store(Settings(data_dir=tmp_path, sparse=sparse))  # type: ignore[arg-type]
    try:
        assert isinstance(store, TantivySparseStore | QdrantSparseStore)
        assert store.analyze("the cat") == terms
    finally:
        store.close()
