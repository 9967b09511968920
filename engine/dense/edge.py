"""``QdrantEdgeDenseStore``: Qdrant's own engine in-process (qdrant-edge-py), the default."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import qdrant_edge as qe

from braid.engine.dense.common import (
    CORE_INDEXES,
    IndexKind,
    check_model,
    manifest,
    metadata_index_kinds,
    stored_point_ids,
)
from braid.engine.dense.qdrant_filters import METADATA_KEY, to_qdrant_filter
from braid.engine.errors import BackendUnavailableError
from braid.engine.filters import FilterExpr
from braid.engine.models import Chunk, ModelInfo, ScoredPoint
from braid.engine.payload import chunk_from_payload, chunk_payload
from braid.engine.protocols import Vectors

MANIFEST_FILE = "braid-model.json"
_SCHEMA_TYPES: dict[IndexKind, Any] = {
    "keyword": qe.PayloadSchemaType.Keyword,
    "float": qe.PayloadSchemaType.Float,
    "bool": qe.PayloadSchemaType.Bool,
}
_SCROLL_PAGE = 10_000


class QdrantEdgeDenseStore:
    """Dense store in a Qdrant Edge shard directory (single process: it owns the files)."""

    def __init__(
        self, path: str | Path, model: ModelInfo, *, search_threads: int | None = None
    ) -> None:
        """Open the shard at ``path``, creating it for ``model`` when it does not exist.

        Args:
            path: shard directory.
            model: the embedding model whose vectors this store holds.
            search_threads: size of the shard's search pool (``None``: one per CPU).

        Raises:
            ModelMismatchError: the shard was built with another model.
            BackendUnavailableError: the shard cannot be opened.
        """
        self._path = Path(path)
        self._model = model
        self._lock = threading.Lock()
        manifest_path = self._path / MANIFEST_FILE
        stored = json.loads(manifest_path.read_text()) if manifest_path.exists() else None
        check_model(stored, model, f"the Qdrant Edge shard at {self._path}")
        config = qe.EdgeConfig(
            vectors=qe.EdgeVectorParams(size=model.dim, distance=qe.Distance.Cosine),
            max_search_threads=search_threads,
        )
        try:
            if stored is None:
                self._path.mkdir(parents=True, exist_ok=True)
                self._shard = qe.EdgeShard.create(str(self._path), config)
                manifest_path.write_text(json.dumps(manifest(model)))
            else:
                self._shard = qe.EdgeShard.load(str(self._path), config)
        except Exception as exc:  # the binding raises plain exceptions
            raise BackendUnavailableError(
                f"cannot open Qdrant Edge shard at {self._path}: {exc}"
            ) from exc
        self._indexed: set[str] = set(self._shard.info().payload_schema)
        self._ensure_indexes(dict(CORE_INDEXES))

    @property
    def model(self) -> ModelInfo:
        return self._model

    def _ensure_indexes(self, kinds: dict[str, IndexKind]) -> None:
        for field, kind in kinds.items():
            key = field if field in CORE_INDEXES else f"{METADATA_KEY}.{field}"
            if key not in self._indexed:
                self._shard.update(qe.UpdateOperation.create_field_index(key, _SCHEMA_TYPES[kind]))
                self._indexed.add(key)

    def upsert(self, chunks: Sequence[Chunk], vectors: Vectors) -> None:
        """Insert or overwrite chunks with their vectors (durable through Qdrant's WAL)."""
        if not chunks:
            return
        points = [
            qe.Point(id=c.point_id, vector=v.tolist(), payload=chunk_payload(c, self._model))
            for c, v in zip(chunks, vectors, strict=True)
        ]
        with self._lock:
            self._ensure_indexes(metadata_index_kinds(chunks))
            self._shard.update(qe.UpdateOperation.upsert_points(points))

    def delete_docs(self, doc_ids: Sequence[str]) -> None:
        """Delete every chunk of these documents."""
        if not doc_ids:
            return
        condition = qe.FieldCondition(key="doc_id", match=qe.MatchAny(any=list(doc_ids)))
        with self._lock:
            self._shard.update(
                qe.UpdateOperation.delete_points_by_filter(qe.Filter(must=[condition]))
            )

    def search(
        self, vector: Vectors, limit: int, filter: FilterExpr | None = None
    ) -> list[ScoredPoint]:
        """Best ``limit`` chunks by cosine similarity, filtered inside the engine."""
        request = qe.QueryRequest(
            limit=limit,
            query=qe.Query.Nearest(vector.tolist()),
            filter=to_qdrant_filter(filter, qe),
            with_payload=False,
        )
        found = self._shard.query(request)
        return sorted(
            (ScoredPoint(str(p.id), float(p.score)) for p in found),
            key=lambda p: (-p.score, p.point_id),
        )

    def fetch(self, point_ids: Sequence[str]) -> dict[str, Chunk]:
        """Stored chunks by point id."""
        point_ids = stored_point_ids(point_ids)
        if not point_ids:
            return {}
        records = self._shard.retrieve(list(point_ids), with_payload=True, with_vector=False)
        return {str(r.id): chunk_from_payload(r.payload or {}) for r in records}

    def doc_ids(self, filter: FilterExpr | None = None) -> set[str]:
        """Ids of documents with a chunk matching ``filter``."""
        found: set[str] = set()
        offset: Any = None
        while True:
            records, offset = self._shard.scroll(
                qe.ScrollRequest(
                    offset=offset,
                    limit=_SCROLL_PAGE,
                    filter=to_qdrant_filter(filter, qe),
                    with_payload=["doc_id"],
                )
            )
            found.update(str((r.payload or {})["doc_id"]) for r in records)
            if offset is None:
                return found

    def count(self) -> int:
        return int(self._shard.count(qe.CountRequest(exact=True)))

    def optimize(self) -> None:
        """Build HNSW and payload indexes now; Qdrant Edge only does it when asked."""
        with self._lock:
            self._shard.optimize()

    def flush(self) -> None:
        with self._lock:
            self._shard.flush()

    def close(self) -> None:
        with self._lock:
            self._shard.flush()
            self._shard.close()

    def points(
        self, batch: int = _SCROLL_PAGE
    ) -> Iterator[tuple[str, list[float], dict[str, Any]]]:
        """Every point as (point id, vector, payload), in pages (export, benchmarks)."""
        offset: Any = None
        while True:
            records, offset = self._shard.scroll(
                qe.ScrollRequest(offset=offset, limit=batch, with_payload=True, with_vector=True)
            )
            for record in records:
                vector = record.vector
                yield (
                    str(record.id),
                    [float(x) for x in vector] if isinstance(vector, list) else [],  # type: ignore[arg-type]
                    dict(record.payload or {}),
                )
            if offset is None:
                return
