"""``Collection``: the calls the dense and the sparse stores make of the engine holding points."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

from braid.engine.filters import FilterExpr
from braid.engine.models import ScoredPoint
from braid.engine.qdrant.points import IndexKind, Layout, Point, Record, Vector


class Collection(Protocol):
    """Points of one layout (dense or sparse) with their payload, in one Qdrant engine.

    Implemented by ``EdgeCollection`` (an Edge shard directory) and ``ClientCollection`` (a
    server collection or alias, or qdrant-client's local mode). Every failure of the engine
    surfaces as ``BackendUnavailableError``; the client adapter retries transient ones first.
    """

    @property
    def name(self) -> str:
        """Where the points live, for messages (a path or a collection name)."""
        ...

    @property
    def layout(self) -> Layout: ...

    def manifest(self) -> dict[str, Any] | None:
        """What the store recorded about itself (model, BM25 scoring); ``None`` if nothing."""
        ...

    def write_manifest(self, manifest: Mapping[str, Any]) -> None:
        """Replace the manifest atomically."""
        ...

    def ensure_indexes(self, kinds: Mapping[str, IndexKind]) -> None:
        """Create payload indexes for these fields (metadata fields by bare name)."""
        ...

    def indexed_fields(self) -> set[str]:
        """Metadata fields (bare names) that have a payload index: every field a chunk has."""
        ...

    def upsert(self, points: Sequence[Point]) -> None:
        """Insert or overwrite points (durable when it returns)."""
        ...

    def delete_docs(self, doc_ids: Sequence[str]) -> None:
        """Delete every point whose payload ``doc_id`` is one of ``doc_ids``."""
        ...

    def query(self, vector: Vector, limit: int, filter: FilterExpr | None) -> list[ScoredPoint]:
        """Best ``limit`` points for ``vector``, pre-filtered, best first, ties by point id."""
        ...

    def retrieve(self, point_ids: Sequence[str]) -> list[Record]:
        """Stored points by id with their payload; ids that name no point are left out."""
        ...

    def scroll(
        self, filter: FilterExpr | None, payload: bool | list[str], vectors: bool = False
    ) -> Iterator[Record]:
        """Every point matching ``filter``, in pages, in point-id order."""
        ...

    def count(self) -> int:
        """Number of points (exact)."""
        ...

    def optimize(self) -> None:
        """Build indexes and merge segments now (Edge); a server does it in the background."""
        ...

    def close(self) -> None: ...
