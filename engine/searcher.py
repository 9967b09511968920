"""``HybridSearcher``: the one query path that the CLI, the API and the evaluation share."""

from __future__ import annotations

import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import get_args

from braid.engine.errors import InvalidRequestError
from braid.engine.filters import FilterExpr, parse_filter
from braid.engine.fusion import FUSION_METHODS, RRF_K, fuse, single
from braid.engine.fusion import FusionMethod as FusionMethod  # re-exported: eval imports it here
from braid.engine.models import Hit, ScoredPoint, SearchMode, SearchResponse, StageScore
from braid.engine.protocols import DenseStore, Embedder, Reranker, SparseStore

MAX_TOP_K = 1000
MAX_CANDIDATES = 10_000


@dataclass(frozen=True, slots=True)
class SearchDefaults:
    """Defaults for parameters a request leaves out (from ``Settings.fusion``/``reranker``)."""

    weights: Mapping[str, float] = field(default_factory=lambda: {"bm25": 1.0, "dense": 1.0})
    rrf_k: float = RRF_K
    candidates: int = 100
    rerank_depth: int = 30
    fusion: FusionMethod = "rrf"


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


class HybridSearcher:
    """BM25 and dense retrieval run concurrently, fused, optionally reranked."""

    def __init__(
        self,
        embedder: Embedder,
        dense: DenseStore,
        sparse: SparseStore,
        reranker: Reranker | None = None,
        defaults: SearchDefaults | None = None,
    ) -> None:
        self.embedder = embedder
        self.dense = dense
        self.sparse = sparse
        self.reranker = reranker
        self.defaults = defaults or SearchDefaults()
        # BM25 runs here while the calling thread embeds the query and searches Qdrant;
        # both engines release the GIL while they search.
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="braid-sparse")

    def search(
        self,
        query: str,
        top_k: int = 10,
        mode: SearchMode = "hybrid",
        filter: FilterExpr | Mapping[str, object] | None = None,
        weights: Mapping[str, float] | None = None,
        rrf_k: float | None = None,
        candidates: int | None = None,
        rerank: bool | None = None,
        rerank_depth: int | None = None,
        fusion: FusionMethod | None = None,
    ) -> SearchResponse:
        """Run one query through the configured stages.

        Args:
            query: the user's text.
            top_k: hits to return.
            mode: ``bm25``, ``dense`` or ``hybrid``.
            filter: a parsed filter or its JSON form; pushed into both engines.
            weights: per-retriever fusion weights (``bm25``, ``dense``).
            rrf_k: RRF constant.
            candidates: hits fetched from each retriever (at least ``top_k``).
            rerank: rerank with the cross-encoder (default: when one is configured).
            rerank_depth: fused hits that are reranked.
            fusion: ``rrf`` (weighted reciprocal rank fusion), ``convex`` (weighted sum of
                min-max normalised scores), ``dbsf`` (Qdrant's distribution-based score
                fusion) or ``zscore`` (weighted sum of z-scores); see ``engine/fusion.py``.

        Returns:
            Hits best first with their chunks and per-stage ranks and scores, and timings in
            milliseconds for ``embed``, ``dense``, ``sparse``, ``fuse``, ``rerank``, ``fetch``
            and ``total``.

        Raises:
            InvalidRequestError: a parameter is out of range.
            InvalidFilterError: the filter is malformed.
        """
        started = time.perf_counter()
        expr = (
            filter
            if filter is None or not isinstance(filter, Mapping)
            else parse_filter(dict(filter))
        )
        top_k, depth, use_rerank, rerank_n = self._check(
            query, top_k, mode, weights, candidates, rerank, rerank_depth, fusion
        )
        timings: dict[str, float] = {}

        sparse_future: Future[tuple[list[ScoredPoint], float]] | None = None
        if mode in ("bm25", "hybrid"):
            sparse_future = self._pool.submit(self._timed_sparse, query, depth, expr)
        rankings: dict[str, list[ScoredPoint]] = {}
        if mode in ("dense", "hybrid"):
            t = time.perf_counter()
            vector = self.embedder.encode_queries([query])[0]
            timings["embed"] = _ms(t)
            t = time.perf_counter()
            rankings["dense"] = self.dense.search(vector, depth, expr)
            timings["dense"] = _ms(t)
        if sparse_future is not None:
            rankings["bm25"], timings["sparse"] = sparse_future.result()

        t = time.perf_counter()
        hits = self._fuse(mode, rankings, weights, rrf_k, fusion)
        timings["fuse"] = _ms(t)

        if use_rerank and self.reranker is not None and hits:
            t = time.perf_counter()
            hits = self._rerank(query, hits, rerank_n)
            timings["rerank"] = _ms(t)

        hits = hits[:top_k]
        t = time.perf_counter()
        self._attach_chunks(hits)
        timings["fetch"] = _ms(t)
        timings["total"] = _ms(started)
        return SearchResponse(
            hits=hits,
            timings_ms=timings,
            mode=mode,
            embedding_model=self.embedder.info,
            reranker_model=self.reranker.model_id if use_rerank and self.reranker else None,
        )

    def _check(
        self,
        query: str,
        top_k: int,
        mode: str,
        weights: Mapping[str, float] | None,
        candidates: int | None,
        rerank: bool | None,
        rerank_depth: int | None,
        fusion: str | None,
    ) -> tuple[int, int, bool, int]:
        if mode not in get_args(SearchMode):
            raise InvalidRequestError(f"mode must be one of {get_args(SearchMode)}, got {mode!r}")
        if fusion is not None and fusion not in FUSION_METHODS:
            raise InvalidRequestError(f"fusion must be one of {FUSION_METHODS}, got {fusion!r}")
        if not query.strip():
            raise InvalidRequestError("query is empty")
        if not 1 <= top_k <= MAX_TOP_K:
            raise InvalidRequestError(f"top_k must be between 1 and {MAX_TOP_K}")
        if weights is not None:
            unknown = set(weights) - {"bm25", "dense"}
            if unknown or any(w < 0 for w in weights.values()):
                raise InvalidRequestError("weights take non-negative values for 'bm25' and 'dense'")
        depth = candidates if candidates is not None else self.defaults.candidates
        if not 1 <= depth <= MAX_CANDIDATES:
            raise InvalidRequestError(f"candidates must be between 1 and {MAX_CANDIDATES}")
        use_rerank = self.reranker is not None if rerank is None else rerank
        if use_rerank and self.reranker is None:
            raise InvalidRequestError("reranking asked for, but no reranker is configured")
        rerank_n = rerank_depth if rerank_depth is not None else self.defaults.rerank_depth
        if not 1 <= rerank_n <= MAX_CANDIDATES:
            raise InvalidRequestError(f"rerank_depth must be between 1 and {MAX_CANDIDATES}")
        # Enough candidates to fill top_k, and to rerank the depth asked for.
        depth = max(depth, top_k, rerank_n if use_rerank else 0)
        return top_k, depth, use_rerank, rerank_n

    def _timed_sparse(
        self, query: str, depth: int, expr: FilterExpr | None
    ) -> tuple[list[ScoredPoint], float]:
        t = time.perf_counter()
        found = self.sparse.search(query, depth, expr)
        return found, _ms(t)

    def _fuse(
        self,
        mode: SearchMode,
        rankings: dict[str, list[ScoredPoint]],
        weights: Mapping[str, float] | None,
        rrf_k: float | None,
        fusion: FusionMethod | None,
    ) -> list[Hit]:
        if mode != "hybrid":
            name = "bm25" if mode == "bm25" else "dense"
            return single(rankings[name], name)
        chosen = weights if weights is not None else self.defaults.weights
        k = rrf_k if rrf_k is not None else self.defaults.rrf_k
        return fuse(fusion or self.defaults.fusion, rankings, chosen, k)

    def _rerank(self, query: str, hits: list[Hit], depth: int) -> list[Hit]:
        assert self.reranker is not None  # checked by the caller (internal invariant)
        head, tail = hits[:depth], hits[depth:]
        self._attach_chunks(head)
        passages = [_passage(h) for h in head]
        scores = self.reranker.score(query, passages)
        for hit, score in zip(head, scores, strict=True):
            hit.score = score
        head.sort(key=lambda h: (-h.score, h.point_id))
        for rank, hit in enumerate(head, start=1):
            hit.stages["rerank"] = StageScore(rank=rank, score=hit.score)
        return head + tail

    def _attach_chunks(self, hits: list[Hit]) -> None:
        missing = [h.point_id for h in hits if h.chunk is None]
        if not missing:
            return
        chunks = self.dense.fetch(missing)
        absent = [pid for pid in missing if pid not in chunks]
        if absent:
            # A chunk the dense store lacks (a BM25-only hit mid-update): ask the sparse side.
            chunks |= self.sparse.fetch(absent)
        for hit in hits:
            if hit.chunk is None:
                hit.chunk = chunks.get(hit.point_id)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def _passage(hit: Hit) -> str:
    if hit.chunk is None:
        return ""
    return f"{hit.chunk.title}\n{hit.chunk.text}" if hit.chunk.title else hit.chunk.text
