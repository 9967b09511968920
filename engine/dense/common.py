"""What both Qdrant stores share: the model manifest check and payload-index inference."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from braid.engine.errors import ModelMismatchError
from braid.engine.models import Chunk, ModelInfo

IndexKind = Literal["keyword", "float", "bool"]
# Payload fields braid itself filters or deletes on.
CORE_INDEXES: dict[str, IndexKind] = {"doc_id": "keyword", "model_version": "keyword"}


def manifest(model: ModelInfo) -> dict[str, Any]:
    """What a store records about the model that built it."""
    return {"model_id": model.model_id, "model_version": model.version, "dim": model.dim}


def check_model(stored: Mapping[str, Any] | None, model: ModelInfo, where: str) -> None:
    """Raise ``ModelMismatchError`` unless ``stored`` names ``model``.

    Raises:
        ModelMismatchError: naming both models, so the operator knows what to re-index with.
    """
    if stored is None:
        return
    expected = manifest(model)
    if {k: stored.get(k) for k in expected} != expected:
        raise ModelMismatchError(
            f"{where} was built with {stored.get('model_id')} (version "
            f"{stored.get('model_version')}, dim {stored.get('dim')}) but is opened with "
            f"{model.model_id} (version {model.version}, dim {model.dim}); re-index with "
            "the new model or configure the old one"
        )


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
        try:
            uuid.UUID(point_id)
        except (ValueError, AttributeError, TypeError):
            continue
        valid.append(point_id)
    return valid
