"""The ``/v1/search`` response body, built as plain data and serialised once.

``SearchResponseOut`` (``api/schemas.py``) is the response's declared schema: the OpenAPI
document, the CLI's local ``--json`` and the tests use it. Building that tree of pydantic
models for every search validated data the engine had just made (about 50 models for a page
of documents, a snippet computed twice per best passage) and cost about 0.5 ms of a search's
time under the GIL; here the same JSON, key for key, is built from dicts and written by
pydantic-core's serialiser. ``tests/api/test_search_json.py`` checks that both give the same
document for every response shape.
"""

from __future__ import annotations

from typing import Any

import pydantic_core

from braid.engine.highlight import snippet_html
from braid.engine.models import DocumentHit, Hit, SearchResponse

JsonObject = dict[str, Any]


def search_response_json(response: SearchResponse, include_text: bool, explain: bool) -> bytes:
    """``SearchResponseOut.from_engine(response, ...).model_dump_json()``, as bytes, faster."""
    documents = response.documents
    snippets: dict[int, str | None] = {}  # by id(hit): a best passage appears twice
    if documents is not None:
        hits = [_hit(d.rank, d.best, include_text, explain, snippets) for d in documents]
        rendered: list[JsonObject] | None = [
            _document(d, include_text, explain, snippets) for d in documents
        ]
    else:
        first = response.offset + 1
        hits = [
            _hit(rank, h, include_text, explain, snippets)
            for rank, h in enumerate(response.hits, start=first)
        ]
        rendered = None
    model = response.embedding_model
    weights = response.fusion_weights
    facets = response.facets
    body: JsonObject = {
        "hits": hits,
        "documents": rendered,
        "offset": response.offset,
        "next_cursor": response.next_cursor,
        "facets": {
            field: [{"value": v.value, "count": v.count} for v in values]
            for field, values in facets.items()
        }
        if facets is not None
        else None,
        "mode": response.mode,
        "timings_ms": {k: round(float(v), 3) for k, v in response.timings_ms.items()},
        "embedding_model": {"id": model.model_id, "version": model.version, "dim": model.dim}
        if model
        else None,
        "reranker_model": response.reranker_model,
        "fusion_weights": {k: round(float(v), 6) for k, v in weights.items()}
        if weights is not None
        else None,
    }
    # inf/nan as null, as pydantic's model serialiser writes them by default.
    return pydantic_core.to_json(body, inf_nan_mode="null")


def _snippet(hit: Hit, snippets: dict[int, str | None]) -> str | None:
    key = id(hit)
    if key not in snippets:
        chunk, spans = hit.chunk, hit.highlights
        snippets[key] = (
            snippet_html(chunk.text, spans) if chunk is not None and spans is not None else None
        )
    return snippets[key]


def _stages(hit: Hit) -> dict[str, JsonObject]:
    return {k: {"rank": s.rank, "score": float(s.score)} for k, s in hit.stages.items()}


def _hit(
    rank: int, hit: Hit, include_text: bool, explain: bool, snippets: dict[int, str | None]
) -> JsonObject:
    chunk = hit.chunk
    return {
        "rank": rank,
        "doc_id": hit.doc_id,
        "chunk_id": hit.chunk_id,
        "score": float(hit.score),
        "title": chunk.title if chunk else None,
        "text": chunk.text if chunk and include_text else None,
        "start": chunk.start if chunk else None,
        "end": chunk.end if chunk else None,
        "metadata": dict(chunk.metadata) if chunk else {},
        "highlights": hit.highlights,
        "snippet": _snippet(hit, snippets),
        "stages": _stages(hit) if explain else None,
    }


def _passage(
    hit: Hit, include_text: bool, explain: bool, snippets: dict[int, str | None]
) -> JsonObject:
    chunk = hit.chunk
    return {
        "chunk_id": hit.chunk_id,
        "score": float(hit.score),
        "text": chunk.text if chunk and include_text else None,
        "start": chunk.start if chunk else None,
        "end": chunk.end if chunk else None,
        "highlights": hit.highlights,
        "snippet": _snippet(hit, snippets),
        "stages": _stages(hit) if explain else None,
    }


def _document(
    document: DocumentHit, include_text: bool, explain: bool, snippets: dict[int, str | None]
) -> JsonObject:
    chunk = document.best.chunk
    return {
        "rank": document.rank,
        "doc_id": document.doc_id,
        "score": float(document.score),
        "title": chunk.title if chunk else None,
        "metadata": dict(chunk.metadata) if chunk else {},
        "passages": [_passage(p, include_text, explain, snippets) for p in document.passages],
    }
