"""``CachingEmbedder`` remembers query vectors, so a sweep encodes each query once;
``CachingReranker`` remembers cross-encoder scores, so the reranker gate scores each dev
query's head once whatever blends it compares.

A parameter sweep runs every training query through ``HybridSearcher.search`` once per
configuration. Fusion parameters do not change the query vector, and encoding it is about 95% of
the query path on a CPU, so the sweep hands the searcher this wrapper (an ``Embedder``) around
the real model: the first search of a query encodes it, later ones get the same vector back.
Everything else (both retrievers, fusion, reranking, fetching chunks) runs for real each time.
The cache holds vectors by exact query text; passages are never cached. Latency measured through
it has no ``embed`` cost after the first pass: sweeps report quality, ``braid eval run`` latency.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from braid.engine.models import ModelInfo
from braid.engine.protocols import Embedder, Reranker, Vectors
from braid.engine.searcher import HybridSearcher

if TYPE_CHECKING:
    from braid.engine.factory import Engine


class CachingEmbedder:
    """An ``Embedder`` that caches ``encode_queries`` results by query text."""

    def __init__(self, inner: Embedder) -> None:
        self._inner = inner
        self._cache: dict[str, np.ndarray] = {}
        self.hits = 0
        self.misses = 0

    @property
    def info(self) -> ModelInfo:
        return self._inner.info

    @property
    def max_seq_length(self) -> int:
        return self._inner.max_seq_length

    @property
    def passage_prefix(self) -> str:
        return self._inner.passage_prefix

    def encode_queries(self, texts: Sequence[str]) -> Vectors:
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        self.hits += len(texts) - len(missing)
        self.misses += len(missing)
        if missing:
            for text, vector in zip(missing, self._inner.encode_queries(missing), strict=True):
                self._cache[text] = vector
        if not texts:
            return np.zeros((0, self.info.dim), dtype=np.float32)
        return np.stack([self._cache[t] for t in texts]).astype(np.float32, copy=False)

    def encode_passages(self, texts: Sequence[str], batch_size: int | None = None) -> Vectors:
        return self._inner.encode_passages(texts, batch_size=batch_size)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self._inner.count_tokens(texts)


class CachingReranker:
    """A ``Reranker`` that caches ``score`` results by (query, passages).

    Blending (``reranker.blend``) reorders the same head by the same cross-encoder scores, so
    a comparison of blends needs the cross-encoder once per query; the fused scores it is
    blended with are computed for real on every search.
    """

    def __init__(self, inner: Reranker) -> None:
        self._inner = inner
        self._cache: dict[tuple[str, tuple[str, ...]], list[float]] = {}
        self.hits = 0
        self.misses = 0

    @property
    def model_id(self) -> str:
        return self._inner.model_id

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        key = (query, tuple(passages))
        if key in self._cache:
            self.hits += 1
        else:
            self.misses += 1
            self._cache[key] = self._inner.score(query, passages)
        return list(self._cache[key])


def caching_searcher(engine: Engine) -> HybridSearcher:
    """A searcher over ``engine``'s stores and defaults that encodes each query text once and
    never reranks: for callers that search the same queries several times (a sweep's points,
    mining's dense, BM25 and hybrid searches). Close it when done."""
    return HybridSearcher(
        CachingEmbedder(engine.embedder),
        engine.dense,
        engine.sparse,
        None,
        engine.searcher.defaults,
    )
