"""BM25 as sparse vectors: the term-frequency half at write time, IDF in Qdrant at query time.

Qdrant's ``IDF`` modifier multiplies each query dimension by
``ln(1 + (N - n + 0.5) / (n + 0.5))`` over the live points, Lucene's (and Tantivy's) IDF. So a
chunk stores, for each of its terms, BM25's saturated term frequency

    tf * (k1 + 1) / (tf + k1 * (1 - b + b * len / avg_len))

and a query stores how often each of its terms occurs in it (English stopwords dropped
unless ``query_stopwords`` is "none": ``analysis.query_terms``); their dot product times the
IDF is Tantivy's BM25 score (which keeps the ``k1 + 1`` factor). The one approximation is
``avg_len``: Tantivy recomputes the corpus average at every commit, a stored vector keeps the
average it was written with (``QdrantSparseStore`` measures it on the first write and
``optimize`` rewrites the vectors when the corpus has drifted from it).

Terms become dimensions by a 32-bit BLAKE2b hash, so there is no vocabulary to share between
processes. Two distinct terms in a million collide with probability ~1e-4 each; a collision
merges their postings (both terms then match both sets of chunks), as in fastembed's BM25.
"""

from __future__ import annotations

import hashlib
from collections import Counter

from braid.engine.qdrant.points import SparseVector
from braid.engine.sparse.analysis import (
    QueryStopwords,
    checked_query_stopwords,
    en_stem_analyzer,
    query_terms,
)

K1 = 1.2
B = 0.75
# Terms seen by one process are remembered (hashing is most of the encoding cost).
_TERM_CACHE_LIMIT = 2_000_000


# The collection's own sparse vector type (sorted dimension indices and their values).
SparseVectorData = SparseVector


def term_dimension(term: str) -> int:
    """The sparse dimension of an analysed term (stable across processes and versions)."""
    return int.from_bytes(hashlib.blake2b(term.encode(), digest_size=4).digest(), "little")


class Bm25Encoder:
    """Turns chunk text and query text into BM25 sparse vectors."""

    def __init__(
        self, k1: float = K1, b: float = B, *, query_stopwords: QueryStopwords = "english"
    ) -> None:
        """An encoder with BM25's ``k1`` and ``b``.

        Args:
            query_stopwords: what ``query`` drops from query text (``analysis.query_terms``);
                chunk text always keeps every term.

        Raises:
            ConfigError: ``query_stopwords`` is not a known option.
        """
        self.k1 = k1
        self.b = b
        self.query_stopwords = checked_query_stopwords(query_stopwords)
        self._analyzer = en_stem_analyzer()
        self._dimensions: dict[str, int] = {}

    def terms(self, text: str) -> list[str]:
        """Analysed terms of chunk ``text``, in order, repeats kept (every term)."""
        return list(self._analyzer.analyze(text))

    def query_terms(self, text: str) -> list[str]:
        """Analysed terms of query ``text``, in order, repeats kept, stopwords per option."""
        return query_terms(text, self.query_stopwords)

    def _dimension(self, term: str) -> int:
        dim = self._dimensions.get(term)
        if dim is None:
            dim = term_dimension(term)
            if len(self._dimensions) < _TERM_CACHE_LIMIT:
                self._dimensions[term] = dim
        return dim

    def document(self, terms: list[str], avg_len: float) -> SparseVectorData:
        """Saturated term frequencies of a chunk of ``len(terms)`` terms."""
        norm = self.k1 * (1.0 - self.b + self.b * len(terms) / avg_len)
        weights: dict[int, float] = {}
        for term, tf in Counter(terms).items():
            dim = self._dimension(term)
            # Colliding terms add up, as their postings would.
            weights[dim] = weights.get(dim, 0.0) + tf * (self.k1 + 1.0) / (tf + norm)
        return _sorted_vector(weights)

    def query(self, text: str) -> SparseVectorData:
        """How often each query term occurs (a repeated term counts again, as in Tantivy)."""
        weights: dict[int, float] = {}
        for term, count in Counter(self.query_terms(text)).items():
            dim = self._dimension(term)
            weights[dim] = weights.get(dim, 0.0) + float(count)
        return _sorted_vector(weights)


def _sorted_vector(weights: dict[int, float]) -> SparseVectorData:
    indices = sorted(weights)
    return SparseVectorData(indices, [weights[i] for i in indices])
