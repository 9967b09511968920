"""What crosses the ``Collection`` boundary: points, records, layouts and payload indexes.

Engine-neutral dataclasses: each adapter converts them into its own engine's classes, so the
stores above never see ``qdrant_edge`` or ``qdrant_client`` objects.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from braid.engine.models import Chunk, ScoredPoint

IndexKind = Literal["keyword", "float", "bool"]
# Payload fields braid itself filters or deletes on.
CORE_INDEXES: dict[str, IndexKind] = {"doc_id": "keyword", "model_version": "keyword"}
METADATA_KEY = "metadata"
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass(frozen=True, slots=True)
class SparseVector:
    """Sorted dimension indices and their values."""

    indices: list[int]
    values: list[float]


Vector = list[float] | SparseVector


@dataclass(frozen=True, slots=True)
class DenseLayout:
    """One unnamed cosine vector of ``dim`` floats per point (the dense leg)."""

    dim: int


@dataclass(frozen=True, slots=True)
class SparseLayout:
    """One named sparse vector per point, scored with Qdrant's IDF modifier (BM25)."""

    name: str = "bm25"


Layout = DenseLayout | SparseLayout


@dataclass(frozen=True, slots=True)
class Point:
    """A point to write: id (a UUID string), its vector (of the layout's kind), payload."""

    id: str
    vector: Vector
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Record:
    """A stored point read back; ``vector`` only when asked for (dense layout)."""

    id: str
    payload: dict[str, Any]
    vector: list[float] | None = None


def index_key(field: str) -> str:
    """The payload key of a field: braid's own fields at the top, metadata under ``metadata``."""
    return field if field in CORE_INDEXES else f"{METADATA_KEY}.{field}"


def metadata_fields(keys: Iterable[str]) -> set[str]:
    """The metadata fields (bare names) among payload index keys."""
    prefix = f"{METADATA_KEY}."
    return {key[len(prefix) :] for key in keys if key.startswith(prefix)}


def metadata_index_kinds(chunks: Iterable[Chunk]) -> dict[str, IndexKind]:
    """Payload index kind for each metadata field, inferred from the first value seen.

    Filtering works on fields without an index (Qdrant checks the payload); the index makes
    filtered search fast, so fields get one as soon as they appear.
    """
    kinds: dict[str, IndexKind] = {}
    for chunk in chunks:
        for key, value in chunk.metadata.items():
            if key in kinds:
                continue
            if isinstance(value, bool):
                kinds[key] = "bool"
            elif isinstance(value, int | float):
                kinds[key] = "float"
            else:
                kinds[key] = "keyword"
    return kinds


def stored_point_ids(point_ids: Sequence[str]) -> list[str]:
    """The ids that can name a stored point (UUIDs); any other string is simply absent.

    Qdrant rejects a malformed id with an error instead of not finding it.
    """
    valid = []
    for point_id in point_ids:
        # The ids braid writes (str(uuid5)) pass the pattern; only others take uuid.UUID's
        # slower checks (a search fetches dozens of ids per query).
        if not (isinstance(point_id, str) and _CANONICAL_UUID.fullmatch(point_id)):
            try:
                uuid.UUID(point_id)
            except (ValueError, AttributeError, TypeError):
                continue
        valid.append(point_id)
    return valid


def ranked(found: Iterable[tuple[object, float]]) -> list[ScoredPoint]:
    """Engine answers as ``ScoredPoint``s, best first, ties by point id (the store contract:
    engines order equal scores differently)."""
    points = [ScoredPoint(str(pid), float(score)) for pid, score in found]
    points.sort(key=_best_first)
    return points


def _best_first(point: ScoredPoint) -> tuple[float, str]:
    return -point.score, point.point_id
