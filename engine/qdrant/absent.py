"""``AbsentCollection``: the stand-in for a dense collection that no model has created yet.

A store opened without an embedding model (``braid stats`` on a fresh data dir) must not
create anything, since only a model knows the dimension: it reads as empty and refuses writes.
"""

# The arguments are the protocol's; a stand-in that stores nothing ignores them.
# ruff: noqa: ARG002

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from braid.engine.errors import ConfigError
from braid.engine.filters import FilterExpr
from braid.engine.models import ScoredPoint
from braid.engine.qdrant.points import DenseLayout, IndexKind, Layout, Point, Record, Vector


class AbsentCollection:
    """No points, no manifest; every write raises ``ConfigError``."""

    def __init__(self, name: str) -> None:
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    @property
    def layout(self) -> Layout:
        return DenseLayout(0)

    def _refuse(self) -> ConfigError:
        return ConfigError(
            f"{self._name} does not exist yet and was opened without an embedding model: "
            "open it with the model (an ingest) to create it"
        )

    def manifest(self) -> dict[str, Any] | None:
        return None

    def write_manifest(self, manifest: Mapping[str, Any]) -> None:
        raise self._refuse()

    def ensure_indexes(self, kinds: Mapping[str, IndexKind]) -> None:
        raise self._refuse()

    def indexed_fields(self) -> set[str]:
        return set()

    def upsert(self, points: Sequence[Point]) -> None:
        raise self._refuse()

    def delete_docs(self, doc_ids: Sequence[str]) -> None:
        """Nothing is stored, so nothing is deleted."""

    def query(self, vector: Vector, limit: int, filter: FilterExpr | None) -> list[ScoredPoint]:
        return []

    def retrieve(self, point_ids: Sequence[str]) -> list[Record]:
        return []

    def scroll(
        self, filter: FilterExpr | None, payload: bool | list[str], vectors: bool = False
    ) -> Iterator[Record]:
        return iter(())

    def count(self) -> int:
        return 0

    def optimize(self) -> None:
        """Nothing to index."""

    def close(self) -> None:
        """Nothing is open."""
