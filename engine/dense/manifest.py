"""The model lock: what a dense store records about the model that built it, and the check."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from braid.engine.errors import ModelMismatchError
from braid.engine.models import ModelInfo


def manifest(model: ModelInfo) -> dict[str, Any]:
    """What a store records about the model that built it."""
    return {"model_id": model.model_id, "model_version": model.version, "dim": model.dim}


def model_of(stored: Mapping[str, Any] | None) -> ModelInfo | None:
    """The model a manifest names (``None``: no manifest, or one that names no model)."""
    if not stored or stored.get("model_id") is None or stored.get("dim") is None:
        return None
    return ModelInfo(
        model_id=str(stored["model_id"]),
        version=str(stored.get("model_version")),
        dim=int(stored["dim"]),
    )


def check_model(stored: Mapping[str, Any] | None, model: ModelInfo, where: str) -> None:
    """Raise ``ModelMismatchError`` unless ``stored`` names ``model`` (or is ``None``).

    The same weights version and dimension under another id (a folder path of the same
    model) is the same model.

    Raises:
        ModelMismatchError: naming both models, so the operator knows what to re-index with.
    """
    if stored is None:
        return
    expected = manifest(model)
    if {k: stored.get(k) for k in expected} == expected:
        return
    if (
        model.version not in ("", "None")
        and stored.get("model_version") == model.version
        and stored.get("dim") == model.dim
    ):
        # The same weights under another name (the bundled model given by its folder path):
        # the version is the weights' hash, so the vectors are the same.
        return
    raise ModelMismatchError(
        f"{where} was built with {stored.get('model_id')} (version "
        f"{stored.get('model_version')}, dim {stored.get('dim')}) but is opened with "
        f"{model.model_id} (version {model.version}, dim {model.dim}); re-index with "
        "the new model or configure the old one"
    )
