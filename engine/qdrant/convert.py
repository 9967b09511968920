"""Engine-neutral points and records to and from the engines' own classes.

Qdrant Edge (``qdrant_edge``) and qdrant-client (``qdrant_client.models``) name these classes
alike (``SparseVector``, ``Filter``, ``FieldCondition``, ``MatchAny``), so, as for filters,
one converter serves both: the caller passes the module that holds the classes.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from braid.engine.qdrant.points import Layout, Record, SparseLayout, SparseVector, Vector


def engine_vector(vector: Vector, layout: Layout, qm: ModuleType) -> Any:
    """A point's vector as the engine takes it: a list, or ``{name: SparseVector}``."""
    if isinstance(vector, SparseVector):
        if not isinstance(layout, SparseLayout):
            raise TypeError("a sparse vector for a dense collection")
        return {layout.name: qm.SparseVector(indices=vector.indices, values=vector.values)}
    return vector


def doc_ids_filter(doc_ids: list[str], qm: ModuleType) -> Any:
    """The filter selecting every point of these documents."""
    return qm.Filter(must=[qm.FieldCondition(key="doc_id", match=qm.MatchAny(any=doc_ids))])


def record_from(found: Any, vectors: bool) -> Record:
    """An engine's stored point as a ``Record`` (its dense vector only when asked for)."""
    vector = found.vector if vectors and isinstance(found.vector, list) else None
    return Record(
        str(found.id),
        dict(found.payload or {}),
        [float(x) for x in vector] if vector is not None else None,
    )
