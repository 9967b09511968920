"""``POST /v1/search``: one query through BM25, dense retrieval, fusion and reranking."""

from __future__ import annotations

import asyncio
from functools import partial

from fastapi import APIRouter, Response

from braid.api.deps import (
    JSON_BODY,
    READ,
    CheckedSearch,
    MetricsDep,
    ReadyDep,
    SearcherDep,
    request_filter,
)
from braid.api.errors import error_responses
from braid.api.metrics import Metrics
from braid.api.routing import JsonRoute
from braid.api.schemas import SearchRequest, SearchResponseOut
from braid.api.search_json import search_response_json
from braid.engine.searcher import HybridSearcher

router = APIRouter(prefix="/v1", tags=["search"], route_class=JsonRoute)


@router.post(
    "/search",
    response_model=SearchResponseOut,
    dependencies=[READ, JSON_BODY],
    responses=error_responses(400, 401, 409, 413, 415, 422, 503),
    summary="Search the index",
)
async def search(
    body: CheckedSearch, searcher: SearcherDep, metrics: MetricsDep, runtime: ReadyDep
) -> Response:
    """Hybrid (BM25 + dense, fused), BM25-only or dense-only search with metadata filters.

    Runs on the server's search threads (`api.search_threads`, one per CPU by default):
    embedding and reranking never block the event loop, and searches admitted beyond the
    threads wait their turn instead of contending for the cores.
    """
    run = partial(_search, body, searcher, metrics)
    return await asyncio.get_running_loop().run_in_executor(runtime.search_pool, run)


def _search(body: SearchRequest, searcher: HybridSearcher, metrics: Metrics) -> Response:
    response = searcher.search(
        body.query,
        top_k=body.top_k,
        mode=body.mode,
        filter=request_filter(body.filter),
        weights=body.weights.model_dump() if body.weights else None,
        rrf_k=body.rrf_k,
        candidates=body.candidates,
        rerank=body.rerank,
        rerank_depth=body.rerank_depth,
        fusion=body.fusion,
        group_by=body.group_by,
        passages=body.passages,
        offset=body.offset,
        cursor=body.cursor,
        facets=body.facets or (),
        highlight=body.highlight,
        min_score=body.min_score,
    )
    metrics.observe_search(response)
    # Serialised here, once, without building the response_model's tree of models (which
    # only documents the shape): see api/search_json.py.
    body_json = search_response_json(response, body.include_text, body.explain)
    return Response(body_json, media_type="application/json")
