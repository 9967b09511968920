"""``CollectionDenseStore``: the dense leg written once over a ``Collection``.

Qdrant Edge (``edge.QdrantEdgeDenseStore``) and qdrant-client (``qdrant.QdrantDenseStore``)
differ only in the collection they open; search, fetch, scroll, the model lock and the
payload indexes live here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from braid.engine.dense.manifest import check_model, manifest, model_of
from braid.engine.errors import ConfigError
from braid.engine.filters import FilterExpr
from braid.engine.models import Chunk, ModelInfo, ScoredPoint
from braid.engine.payload import chunk_from_payload, chunk_payload
from braid.engine.protocols import Vectors
from braid.engine.qdrant.points import CORE_INDEXES, Point, metadata_index_kinds
from braid.engine.qdrant.protocol import Collection


class CollectionDenseStore:
    """Chunk vectors with their payload in one collection, searched by cosine similarity."""

    def __init__(self, collection: Collection, model: ModelInfo | None) -> None:
        """Check (or record) the model, then make sure braid's own payload indexes exist.

        Args:
            collection: where the points live.
            model: the embedding model the caller encodes with; ``None`` opens whatever the
                collection's manifest records (nothing: an empty store that refuses writes).

        Raises:
            ModelMismatchError: the collection was built with another model.
        """
        self._collection = collection
        stored = collection.manifest()
        if model is not None:
            check_model(stored, model, collection.name)
            if stored is None:
                collection.write_manifest(manifest(model))
        self._model = model_of(stored) if stored is not None else model
        if self._model is not None:
            collection.ensure_indexes(CORE_INDEXES)

    @property
    def model(self) -> ModelInfo | None:
        """The model the stored vectors come from (``None``: an empty store, no model)."""
        return self._model

    def _require_model(self) -> ModelInfo:
        if self._model is None:
            raise ConfigError(
                f"{self._collection.name} has no embedding model yet: open it with one to write"
            )
        return self._model

    def upsert(self, chunks: Sequence[Chunk], vectors: Vectors) -> None:
        """Insert or overwrite chunks with their vectors (one point per ``Chunk.point_id``).

        Raises:
            ConfigError: the store was opened without a model and holds none.
        """
        if not chunks:
            return
        model = self._require_model()
        points = [
            Point(c.point_id, v.tolist(), chunk_payload(c, model))
            for c, v in zip(chunks, vectors, strict=True)
        ]
        self._collection.ensure_indexes(metadata_index_kinds(chunks))
        self._collection.upsert(points)

    def delete_docs(self, doc_ids: Sequence[str]) -> None:
        """Delete every chunk of these documents."""
        self._collection.delete_docs(doc_ids)

    def search(
        self, vector: Vectors, limit: int, filter: FilterExpr | None = None
    ) -> list[ScoredPoint]:
        """Best ``limit`` chunks by cosine similarity, filtered inside the engine, best first,
        ties by point id."""
        return self._collection.query(vector.tolist(), limit, filter)

    def fetch(self, point_ids: Sequence[str]) -> dict[str, Chunk]:
        """Stored chunks by point id; unknown (or malformed) ids are absent."""
        return {r.id: chunk_from_payload(r.payload) for r in self._collection.retrieve(point_ids)}

    def metadata_fields(self) -> set[str]:
        """Metadata fields some stored chunk has (each has a payload index)."""
        return self._collection.indexed_fields()

    def doc_ids(self, filter: FilterExpr | None = None) -> set[str]:
        """Ids of documents with a chunk matching ``filter``."""
        return {str(r.payload["doc_id"]) for r in self._collection.scroll(filter, ["doc_id"])}

    def count(self) -> int:
        """Number of chunks (points)."""
        return self._collection.count()

    def optimize(self) -> None:
        """Build the vector and payload indexes now (Qdrant Edge only does it when asked)."""
        self._collection.optimize()

    def close(self) -> None:
        self._collection.close()

    def points(self) -> Iterator[tuple[str, list[float], dict[str, Any]]]:
        """Every point as (point id, vector, payload), in pages (export, benchmarks)."""
        for record in self._collection.scroll(None, True, vectors=True):
            yield record.id, record.vector or [], record.payload
