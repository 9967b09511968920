"""The payload every stored chunk carries, and its conversion back into a ``Chunk``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from braid.engine.models import Chunk, Metadata, ModelInfo


def chunk_payload(chunk: Chunk, model: ModelInfo | None = None) -> dict[str, Any]:
    """Payload of one chunk; with ``model``, the embedding model's identity too."""
    payload: dict[str, Any] = {
        "doc_id": chunk.doc_id,
        "chunk_id": chunk.chunk_id,
        "chunk_index": chunk.chunk_index,
        "content_hash": chunk.content_hash,
        "title": chunk.title,
        "text": chunk.text,
        "start": chunk.start,
        "end": chunk.end,
        "metadata": dict(chunk.metadata),
    }
    if model is not None:
        payload |= {"model_id": model.model_id, "model_version": model.version, "dim": model.dim}
    return payload


def chunk_from_payload(payload: Mapping[str, Any]) -> Chunk:
    """Rebuild the ``Chunk`` that ``chunk_payload`` stored."""
    return Chunk(
        doc_id=str(payload["doc_id"]),
        chunk_index=int(payload["chunk_index"]),
        text=str(payload.get("text", "")),
        title=str(payload.get("title", "")),
        metadata=cast(Metadata, dict(payload.get("metadata") or {})),
        content_hash=str(payload.get("content_hash", "")),
        start=int(payload.get("start", 0)),
        end=int(payload.get("end", 0)),
    )
