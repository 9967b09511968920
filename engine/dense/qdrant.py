"""``QdrantDenseStore``: a Qdrant server through qdrant-client.

The same class serves qdrant-client's local mode (``:memory:`` or a path), which the tests use
as a stand-in for the server: same client, same models. Local mode searches by brute force,
so it is never the default for real corpora.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Sequence
from typing import Any

from qdrant_client import QdrantClient
from qdrant_client import models as qm
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from engine.dense.common import (
    CORE_INDEXES,
    IndexKind,
    check_model,
    manifest,
    metadata_index_kinds,
    stored_point_ids,
)
from engine.dense.qdrant_filters import METADATA_KEY, to_qdrant_filter
from engine.errors import BackendUnavailableError
from engine.filters import FilterExpr
from engine.models import Chunk, ModelInfo, ScoredPoint
from engine.payload import chunk_from_payload, chunk_payload
from engine.protocols import Vectors

_SCHEMA_TYPES: dict[IndexKind, qm.PayloadSchemaType] = {
    "keyword": qm.PayloadSchemaType.KEYWORD,
    "float": qm.PayloadSchemaType.FLOAT,
    "bool": qm.PayloadSchemaType.BOOL,
}
_SCROLL_PAGE = 10_000
_BACKEND_ERRORS = (UnexpectedResponse, ResponseHandlingException, ConnectionError, TimeoutError)


class QdrantDenseStore:
    """Dense store in one Qdrant collection, reached through ``QdrantClient``."""

    def __init__(self, client: QdrantClient, collection: str, model: ModelInfo) -> None:
        """Use ``collection``, creating it for ``model`` when missing.

        The model manifest lives in the collection's metadata.

        Raises:
            ModelMismatchError: the collection was built with another model.
            BackendUnavailableError: the server cannot be reached.
        """
        self._client = client
        self._collection = collection
        self._model = model
        self._lock = threading.Lock()
        try:
            if client.collection_exists(collection):
                stored = client.get_collection(collection).config.metadata
                check_model(stored or {}, model, f"the Qdrant collection {collection!r}")
            else:
                client.create_collection(
                    collection,
                    vectors_config=qm.VectorParams(size=model.dim, distance=qm.Distance.COSINE),
                    metadata=manifest(model),
                )
            self._indexed: set[str] = set(client.get_collection(collection).payload_schema)
            self._ensure_indexes(dict(CORE_INDEXES))
        except _BACKEND_ERRORS as exc:
            raise BackendUnavailableError(f"Qdrant at {collection!r}: {exc}") from exc

    @property
    def model(self) -> ModelInfo:
        return self._model

    def _ensure_indexes(self, kinds: dict[str, IndexKind]) -> None:
        for field, kind in kinds.items():
            key = field if field in CORE_INDEXES else f"{METADATA_KEY}.{field}"
            if key not in self._indexed:
                with warnings.catch_warnings():
                    # Local mode warns that indexes do nothing there; a server uses them.
                    warnings.simplefilter("ignore", UserWarning)
                    self._client.create_payload_index(self._collection, key, _SCHEMA_TYPES[kind])
                self._indexed.add(key)

    def upsert(self, chunks: Sequence[Chunk], vectors: Vectors) -> None:
        if not chunks:
            return
        points = [
            qm.PointStruct(id=c.point_id, vector=v.tolist(), payload=chunk_payload(c, self._model))
            for c, v in zip(chunks, vectors, strict=True)
        ]
        try:
            with self._lock:
                self._ensure_indexes(metadata_index_kinds(chunks))
                self._client.upsert(self._collection, points=points, wait=True)
        except _BACKEND_ERRORS as exc:
            raise BackendUnavailableError(f"Qdrant upsert failed: {exc}") from exc

    def delete_docs(self, doc_ids: Sequence[str]) -> None:
        if not doc_ids:
            return
        selector = qm.Filter(
            must=[qm.FieldCondition(key="doc_id", match=qm.MatchAny(any=list(doc_ids)))]
        )
        try:
            self._client.delete(
                self._collection, points_selector=qm.FilterSelector(filter=selector), wait=True
            )
        except _BACKEND_ERRORS as exc:
            raise BackendUnavailableError(f"Qdrant delete failed: {exc}") from exc

    def search(
        self, vector: Vectors, limit: int, filter: FilterExpr | None = None
    ) -> list[ScoredPoint]:
        try:
            found = self._client.query_points(
                self._collection,
                query=vector.tolist(),
                query_filter=to_qdrant_filter(filter, qm),
                limit=limit,
                with_payload=False,
            ).points
        except _BACKEND_ERRORS as exc:
            raise BackendUnavailableError(f"Qdrant search failed: {exc}") from exc
        return sorted(
            (ScoredPoint(str(p.id), float(p.score)) for p in found),
            key=lambda p: (-p.score, p.point_id),
        )

    def fetch(self, point_ids: Sequence[str]) -> dict[str, Chunk]:
        point_ids = stored_point_ids(point_ids)
        if not point_ids:
            return {}
        records = self._client.retrieve(self._collection, ids=list(point_ids), with_payload=True)
        return {str(r.id): chunk_from_payload(r.payload or {}) for r in records}

    def doc_ids(self, filter: FilterExpr | None = None) -> set[str]:
        found: set[str] = set()
        offset: Any = None
        while True:
            records, offset = self._client.scroll(
                self._collection,
                scroll_filter=to_qdrant_filter(filter, qm),
                limit=_SCROLL_PAGE,
                offset=offset,
                with_payload=["doc_id"],
            )
            found.update(str((r.payload or {})["doc_id"]) for r in records)
            if offset is None:
                return found

    def count(self) -> int:
        return int(self._client.count(self._collection, exact=True).count)

    def optimize(self) -> None:
        """A server indexes in the background; nothing to force here."""

    def close(self) -> None:
        self._client.close()
