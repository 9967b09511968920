"""``HybridSearcher``: the one query path that the CLI, the API and the evaluation share."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal, get_args

from braid.engine.adaptive import AdaptiveRule, rule_for_model
from braid.engine.errors import InvalidRequestError
from braid.engine.facets import check_facet_fields, count_facets
from braid.engine.filters import FilterExpr, parse_filter
from braid.engine.fusion import FUSION_METHODS, RRF_K, blend_rerank, fuse_explained, single
from braid.engine.fusion import FusionMethod as FusionMethod  # re-exported: eval imports it here
from braid.engine.grouping import DEFAULT_PASSAGES, best_per_document, group_documents
from braid.engine.highlight import highlight_spans
from braid.engine.models import (
    Chunk,
    DocumentHit,
    Hit,
    ScoredPoint,
    SearchMode,
    SearchResponse,
    StageScore,
)
from braid.engine.paging import (
    Cursor,
    CursorError,
    IndexChangedError,
    PastDepthError,
    fingerprint,
)
from braid.engine.protocols import DenseStore, Embedder, Reranker, SparseStore

MAX_TOP_K = 1000
MAX_CANDIDATES = 10_000
MAX_PASSAGES = 10

GroupBy = Literal["chunk", "document"]
GROUP_BY: tuple[GroupBy, ...] = get_args(GroupBy)
FusionLevel = Literal["chunk", "document"]
FUSION_LEVELS: tuple[FusionLevel, ...] = get_args(FusionLevel)
# Fusion methods whose fused score lies in [0, 1], so that min_score means the same for
# every query (min-max normalised legs, weights that sum to 1).
BOUNDED_FUSION: tuple[FusionMethod, ...] = ("adaptive", "convex")
IndexVersion = Callable[[], str]


@dataclass(frozen=True, slots=True)
class SearchDefaults:
    """Defaults for parameters a request leaves out (from ``Settings.fusion``/``reranker``)."""

    weights: Mapping[str, float] = field(default_factory=lambda: {"bm25": 1.0, "dense": 1.0})
    rrf_k: float = RRF_K
    candidates: int = 100
    rerank_depth: int = 30
    rerank_blend: float = 1.0
    fusion: FusionMethod = "adaptive"
    fusion_level: FusionLevel = "chunk"


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
        self._rule: AdaptiveRule | None = None  # chosen for the embedder's model on first use
        # What cursors check: a value that changes whenever the index is written (the
        # ingestion ledger's version); None: cursors are not checked against writes.
        self.index_version: IndexVersion | None = None
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
        group_by: GroupBy = "chunk",
        passages: int = DEFAULT_PASSAGES,
        fusion_level: FusionLevel | None = None,
        offset: int = 0,
        cursor: str | None = None,
        facets: Sequence[str] = (),
        highlight: bool = False,
        min_score: float | None = None,
        rerank_blend: float | None = None,
    ) -> SearchResponse:
        """Run one query through the configured stages.

        Args:
            query: the user's text.
            top_k: hits to return: chunks, or documents with ``group_by="document"``.
            mode: ``bm25``, ``dense`` or ``hybrid``.
            filter: a parsed filter or its JSON form; pushed into both engines.
            weights: per-retriever fusion weights (``bm25``, ``dense``).
            rrf_k: RRF constant.
            candidates: hits fetched from each retriever (at least ``top_k``).
            rerank: rerank with the cross-encoder (default: when one is configured).
            rerank_depth: fused hits that are reranked.
            rerank_blend: the cross-encoder's share of a reranked hit's score; the rest is
                the first-stage score, each min-max normalised over the reranked hits
                (``engine.fusion.blend_rerank``). 1 (the default unless configured) orders
                by the cross-encoder alone.
            fusion: ``adaptive`` (min-max fusion with per-query weights from the dense top
                score, ``engine/adaptive.py``), ``rrf`` (weighted reciprocal rank fusion),
                ``convex`` (weighted sum of min-max normalised scores), ``dbsf`` (Qdrant's
                distribution-based score fusion) or ``zscore`` (weighted sum of z-scores);
                see ``engine/fusion.py``.
            group_by: ``chunk`` (default) returns chunk hits; ``document`` also groups them
                into ``documents`` (``engine/grouping.py``), ``top_k`` of them.
            passages: chunks kept per document when grouping.
            fusion_level: ``chunk`` fuses the retrievers' chunk lists; ``document`` first cuts
                each list to each document's best chunk, so documents meet in fusion (their
                stage ranks are then document ranks, and each document has one passage).
            offset: results (documents or chunks) to skip: pages are slices of one list, the
                query's candidates fused; ``offset + top_k`` may not pass the candidate
                depth (``PastDepthError``).
            cursor: the ``next_cursor`` of the previous page (instead of ``offset``): it
                holds the offset and depth, and is refused for another query
                (``CursorError``) or after the index changed (``IndexChangedError``).
            facets: metadata fields to count values of, over the candidate documents
                (``engine/facets.py``).
            highlight: mark the query's BM25 terms in each hit that BM25 found
                (``Hit.highlights``, ``engine/highlight.py``).
            min_score: drop hits whose fused score is below it; needs a fused score in
                [0, 1]: hybrid mode with ``adaptive`` or ``convex`` fusion. Reranked hits
                keep their reranked order; the threshold still applies to the fused score.

        Returns:
            Hits best first with their chunks and per-stage ranks and scores (and documents
            when grouping), the fusion weights used, and timings in milliseconds for
            ``embed``, ``dense``, ``sparse``, ``fuse``, ``rerank``, ``fetch`` and ``total``.

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
        page = self._page_start(offset, cursor)
        if page is not None:
            candidates = page.depth
            offset = page.offset
        top_k, depth, use_rerank, rerank_n = self._check(
            query, top_k, mode, weights, candidates, rerank, rerank_depth, fusion, offset
        )
        blend = self.defaults.rerank_blend if rerank_blend is None else rerank_blend
        if not 0.0 <= blend <= 1.0:
            raise InvalidRequestError(f"rerank_blend must be between 0 and 1, got {blend}")
        level = self._check_grouping(group_by, passages, fusion_level)
        method = fusion or self.defaults.fusion
        self._check_min_score(min_score, mode, method)
        facet_fields = (
            check_facet_fields(list(facets), self.dense.metadata_fields()) if facets else []
        )
        shape = fingerprint(
            {
                "query": query,
                "mode": mode,
                "filter": repr(expr),
                "weights": dict(weights) if weights is not None else None,
                "rrf_k": rrf_k,
                "fusion": method,
                # the blend only when it changes the order: older cursors stay valid
                "rerank": [use_rerank, rerank_n] + ([blend] if use_rerank and blend < 1 else []),
                "group_by": group_by,
                "passages": passages,
                "level": level,
                "min_score": min_score,
            }
        )
        version = self.index_version() if self.index_version is not None else ""
        if page is not None:
            self._check_cursor(page, shape, version)
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

        fetch_ms = 0.0
        chunks: dict[str, Chunk] = {}
        if level == "document" and mode == "hybrid":
            # Documents must be known before fusion: fetch every candidate's chunk once.
            t = time.perf_counter()
            chunks = self._fetch({p.point_id for r in rankings.values() for p in r})
            fetch_ms += _ms(t)
        t = time.perf_counter()
        hits, used = self._fuse(mode, rankings, weights, rrf_k, fusion, chunks)
        timings["fuse"] = _ms(t)

        if use_rerank and self.reranker is not None and hits:
            t = time.perf_counter()
            hits = self._rerank(query, hits, rerank_n, blend)
            timings["rerank"] = _ms(t)

        t = time.perf_counter()
        if min_score is not None:
            hits = [h for h in hits if h.stages[method].score >= min_score]
        facet_counts = None
        if facet_fields:
            self._attach_chunks(hits)  # every candidate: the counted set
            facet_counts = count_facets((h.chunk for h in hits if h.chunk), facet_fields)
        documents = None
        # A page is a slice of the first `depth` results: a later page may not raise the
        # depth (that would change the list), so the last page may be short.
        end = min(offset + top_k, depth)
        if group_by == "document":
            documents = self._documents(hits, end + 1, passages)
            more = len(documents) > end
            documents = documents[offset:end]
            hits = [p for d in documents for p in d.passages]
        else:
            more = len(hits) > end
            hits = hits[offset:end]
            self._attach_chunks(hits)
        timings["fetch"] = fetch_ms + _ms(t)
        if highlight:
            t = time.perf_counter()
            self._highlight(query, hits)
            timings["highlight"] = _ms(t)
        next_cursor = None
        if more and end < depth:
            next_cursor = Cursor(end, depth, shape, version).encode()
        timings["total"] = _ms(started)
        return SearchResponse(
            hits=hits,
            timings_ms=timings,
            mode=mode,
            embedding_model=self.embedder.info,
            reranker_model=self.reranker.model_id if use_rerank and self.reranker else None,
            documents=documents,
            fusion_weights=used,
            offset=offset,
            next_cursor=next_cursor,
            facets=facet_counts,
        )

    @staticmethod
    def _page_start(offset: int, cursor: str | None) -> Cursor | None:
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise PastDepthError(f"offset must be a non-negative integer, got {offset!r}")
        if cursor is None:
            return None
        if offset:
            raise CursorError("give cursor or offset, not both")
        return Cursor.decode(cursor)

    @staticmethod
    def _check_cursor(page: Cursor, shape: str, version: str) -> None:
        if page.fingerprint != shape:
            raise CursorError(
                "cursor belongs to another search: query, mode, filter, fusion, weights, "
                "reranking, grouping and min_score must be those of its first page"
            )
        if page.index_version != version:
            raise IndexChangedError(
                "the index changed since the cursor's page was made: its next page could "
                "repeat or skip results; search again from the first page"
            )

    @staticmethod
    def _check_min_score(min_score: float | None, mode: str, method: str) -> None:
        if min_score is None:
            return
        if not 0.0 <= min_score <= 1.0:
            raise InvalidRequestError(
                f"min_score must be in [0, 1], got {min_score}", "$.min_score"
            )
        if mode != "hybrid" or method not in BOUNDED_FUSION:
            raise InvalidRequestError(
                "min_score needs a fused score in [0, 1]: hybrid mode with fusion "
                f"{' or '.join(BOUNDED_FUSION)} (this search: {mode}, {method})",
                "$.min_score",
            )

    def _highlight(self, query: str, hits: Sequence[Hit]) -> None:
        terms = set(self.sparse.analyze(query))
        for hit in hits:
            found_by_bm25 = "bm25" in hit.stages
            if hit.chunk is None or not found_by_bm25:
                hit.highlights = []
                continue
            hit.highlights = highlight_spans(hit.chunk.text, terms)

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
        offset: int = 0,
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
        # Enough candidates to fill a first page, and to rerank the depth asked for. A later
        # page may not raise the depth: that would change the list it is a slice of.
        depth = max(depth, top_k if offset == 0 else 0, rerank_n if use_rerank else 0)
        if offset and offset >= depth:
            raise PastDepthError(
                f"offset {offset} is past the candidate depth ({depth}): only the first "
                "`candidates` results of a search can be paged through; ask with more "
                "candidates"
            )
        return top_k, depth, use_rerank, rerank_n

    def _check_grouping(
        self, group_by: str, passages: int, fusion_level: str | None
    ) -> FusionLevel:
        if group_by not in GROUP_BY:
            raise InvalidRequestError(f"group_by must be one of {GROUP_BY}, got {group_by!r}")
        if not 1 <= passages <= MAX_PASSAGES:
            raise InvalidRequestError(f"passages must be between 1 and {MAX_PASSAGES}")
        level = fusion_level if fusion_level is not None else self.defaults.fusion_level
        if level not in FUSION_LEVELS:
            raise InvalidRequestError(f"fusion_level must be one of {FUSION_LEVELS}, got {level!r}")
        return level

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
        chunks: Mapping[str, Chunk],
    ) -> tuple[list[Hit], dict[str, float] | None]:
        """Fused hits and the weights fusion used (``None`` for a single retriever)."""
        if mode != "hybrid":
            name = "bm25" if mode == "bm25" else "dense"
            return single(rankings[name], name), None
        chosen = weights if weights is not None else self.defaults.weights
        k = rrf_k if rrf_k is not None else self.defaults.rrf_k
        method = fusion or self.defaults.fusion
        rule = self.rule if method == "adaptive" else None
        if chunks:
            return self._fuse_documents(method, rankings, chosen, k, rule, chunks)
        return fuse_explained(method, rankings, chosen, k, rule)

    def _fuse_documents(
        self,
        method: FusionMethod,
        rankings: Mapping[str, list[ScoredPoint]],
        weights: Mapping[str, float],
        k: float,
        rule: AdaptiveRule | None,
        chunks: Mapping[str, Chunk],
    ) -> tuple[list[Hit], dict[str, float]]:
        doc_of = {pid: chunk.doc_id for pid, chunk in chunks.items()}
        by_doc = {name: best_per_document(r, doc_of) for name, r in rankings.items()}
        # Each document is shown by its best chunk in the retriever that ranked it higher
        # (dense first on a tie): the chunk that earned its place.
        shown: dict[str, tuple[int, str]] = {}
        for name in ("dense", "bm25"):
            seen: set[str] = set()
            for point in rankings.get(name, ()):
                doc_id = doc_of.get(point.point_id)
                if doc_id is None or doc_id in seen:
                    continue
                seen.add(doc_id)
                place = (len(seen), point.point_id)
                if doc_id not in shown or place[0] < shown[doc_id][0]:
                    shown[doc_id] = place
        fused, used = fuse_explained(method, by_doc, weights, k, rule)
        hits = []
        for hit in fused:
            point_id = shown[hit.point_id][1]
            hits.append(Hit(point_id, hit.score, hit.stages, chunks[point_id]))
        return hits, used

    @property
    def rule(self) -> AdaptiveRule:
        """The adaptive rule for this searcher's embedding model (fitted, or the fallback)."""
        if self._rule is None:
            self._rule = rule_for_model(self.embedder.info.model_id)
        return self._rule

    def _documents(self, hits: list[Hit], top_k: int, passages: int) -> list[DocumentHit]:
        # Chunks are fetched in growing batches until top_k documents are filled: several
        # chunks of one document may take several places.
        start, batch = 0, max(2 * top_k, 32)
        documents: list[DocumentHit] = []
        while start < len(hits) and len(documents) < top_k:
            self._attach_chunks(hits[start : start + batch])
            start += batch
            documents = group_documents(hits[:start], top_k, passages)
            batch *= 2
        return documents

    def _rerank(self, query: str, hits: list[Hit], depth: int, blend: float) -> list[Hit]:
        assert self.reranker is not None  # checked by the caller (internal invariant)
        head, tail = hits[:depth], hits[depth:]
        self._attach_chunks(head)
        passages = [_passage(h) for h in head]
        scores = self.reranker.score(query, passages)
        # At 1 a hit's score is the cross-encoder's own; below, the blend in [0, 1].
        final = scores if blend >= 1.0 else blend_rerank([h.score for h in head], scores, blend)
        order = sorted(range(len(head)), key=lambda i: (-final[i], head[i].point_id))
        head = [head[i] for i in order]
        for rank, (hit, i) in enumerate(zip(head, order, strict=True), start=1):
            hit.score = final[i]
            # the final rank, beside the cross-encoder's own score
            hit.stages["rerank"] = StageScore(rank=rank, score=scores[i])
        return head + tail

    def _fetch(self, point_ids: Iterable[str]) -> dict[str, Chunk]:
        wanted = list(point_ids)
        if not wanted:
            return {}
        chunks = self.dense.fetch(wanted)
        absent = [pid for pid in wanted if pid not in chunks]
        if absent:
            # A chunk the dense store lacks (a BM25-only hit mid-update): ask the sparse side.
            chunks |= self.sparse.fetch(absent)
        return chunks

    def _attach_chunks(self, hits: list[Hit]) -> None:
        missing = [h.point_id for h in hits if h.chunk is None]
        if not missing:
            return
        chunks = self._fetch(missing)
        for hit in hits:
            if hit.chunk is None:
                hit.chunk = chunks.get(hit.point_id)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def _passage(hit: Hit) -> str:
    if hit.chunk is None:
        return ""
    return f"{hit.chunk.title}\n{hit.chunk.text}" if hit.chunk.title else hit.chunk.text
