"""``POST /v1/embed``: the embedding model as a service, with its batching contract."""

from __future__ import annotations

import asyncio
from functools import partial

from fastapi import APIRouter

from braid.api.deps import JSON_BODY, READ, CheckedEmbed, EngineDep, MetricsDep, ReadyDep
from braid.api.errors import error_responses
from braid.api.metrics import Metrics
from braid.api.routing import JsonRoute
from braid.api.schemas import EmbedRequest, EmbedResponse, ModelOut
from braid.engine.factory import Engine

router = APIRouter(prefix="/v1", tags=["embed"], route_class=JsonRoute)


@router.post(
    "/embed",
    response_model=EmbedResponse,
    dependencies=[READ, JSON_BODY],
    responses=error_responses(400, 401, 413, 415, 422, 503),
    summary="Embed texts",
)
async def embed(
    body: CheckedEmbed, engine: EngineDep, metrics: MetricsDep, runtime: ReadyDep
) -> EmbedResponse:
    """L2-normalised embeddings of up to `api.max_embed_texts` texts in one request.

    `kind` picks the query or the passage prefix (for models that use them). Texts longer
    than the model's `max_seq_length` tokens are cut by the model: `truncated` says which,
    so a client that must not lose text can chunk it first. Vectors are comparable with the
    index's (same model; see `model.version`).
    """
    # On the search threads: encoding takes a core, as a search does.
    run = partial(_embed, body, engine, metrics)
    return await asyncio.get_running_loop().run_in_executor(runtime.search_pool, run)


def _embed(body: EmbedRequest, engine: Engine, metrics: Metrics) -> EmbedResponse:
    embedder = engine.embedder
    if body.kind == "query":
        vectors = embedder.encode_queries(body.texts)
        prefix_texts = body.texts
    else:
        vectors = embedder.encode_passages(body.texts)
        prefix_texts = [embedder.passage_prefix + t for t in body.texts]
    tokens = embedder.count_tokens(prefix_texts)
    metrics.embedded_texts.labels(kind=body.kind).inc(len(body.texts))
    limit = embedder.max_seq_length
    return EmbedResponse(
        embeddings=vectors.tolist(),
        tokens=tokens,
        truncated=[n > limit for n in tokens],
        model=ModelOut.from_engine(embedder.info),
        max_seq_length=limit,
    )
