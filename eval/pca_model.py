"""``braid train pca``: a smaller embedding model, fitted on the index's own vectors.

The vectors an index holds are rotated onto their principal axes and cut to the first ``k``
(``engine/rotation.py``). That is a linear map, so it becomes one more module of the model: a
sentence-transformers ``Dense`` layer (``k x d``, no bias, identity activation) between the
pooling and the normalisation, written with sentence-transformers' own ``save``. The result is
a model folder like any other: ``SentenceTransformer(path)`` loads it, the ONNX embedder runs
it, ``braid reindex --model`` builds a ``k``-dimensional collection beside the served one and
``braid promote`` switches to it. Its version hashes the projection too
(``engine.model_files.weights_version``), so it is never taken for the model it came from.

No labels and no training: the fit is one SVD of the stored vectors. ``braid eval tradeoffs
--pca`` measures the same cut through the query path before anything is re-indexed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from braid.engine.config import Settings
from braid.engine.errors import ConfigError, InvalidRequestError
from braid.engine.locking import DataDirLock
from braid.engine.model_files import resolve_model_path, weights_version
from braid.engine.models import ModelInfo
from braid.engine.rotation import principal_axes
from braid.engine.stores import open_stores
from braid.eval.tradeoffs import read_vectors

CARD_FILE = "braid-model-card.json"
ROLE = "braid train pca"


@dataclass(frozen=True)
class PcaModelRecord:
    """What ``braid train pca`` made; ``as_dict`` is its ``--json`` document."""

    out: str
    base: dict[str, object]
    dims: int
    vectors: int
    variance_kept: float  # share of the centred vectors' variance on the kept axes
    version: str
    created: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def default_pca_dir(data_dir: Path, base: str, dims: int) -> Path:
    """``<data_dir>/models/<base-name>-pca<dims>-<UTC timestamp>``."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return data_dir / "models" / f"{base.rstrip('/').rsplit('/', 1)[-1]}-pca{dims}-{stamp}"


def fit_pca_model(settings: Settings, dims: int, out: Path | None = None) -> PcaModelRecord:
    """Fit the projection on the data dir's stored vectors and write the model folder.

    Args:
        settings: the data dir whose index (dense store) provides the vectors; its model is
            the one the index records, which must be the configured model's folder as is.
        dims: dimensions to keep, below the model's.
        out: the new model's folder (default ``default_pca_dir``); must not exist.

    Raises:
        InvalidRequestError: ``dims`` not below the model's dimension, or ``out`` exists.
        ConfigError: the index's model cannot be found as it was, or the index is empty.
        IndexLockedError: another process owns the data dir.
    """
    # The stores alone, under the data dir's lock: the fit only reads the vectors.
    lock = DataDirLock(settings.data_dir, role=ROLE)
    lock.acquire()
    try:
        stores = open_stores(settings)
        try:
            model = stores.dense.model
            if model is None:
                raise ConfigError(f"{settings.data_dir} holds no dense index to fit on")
            if not 1 <= dims < model.dim:
                raise InvalidRequestError(
                    f"--dims must lie in 1..{model.dim - 1} (the index's model has {model.dim})"
                )
            vectors = read_vectors(stores.dense).vectors
        finally:
            stores.close()
    finally:
        lock.release()
    base_dir = _model_folder(settings.embedder.model, model)
    target = out or default_pca_dir(settings.data_dir, model.model_id, dims)
    if target.exists():
        raise InvalidRequestError(f"{target} exists: give a new --out")
    axes = principal_axes(vectors)
    kept = _variance_kept(vectors, axes, dims)
    _write_model(base_dir, axes[:, :dims].T.copy(), target)
    version = weights_version(target) or ""
    record = PcaModelRecord(
        out=str(target),
        base={"id": model.model_id, "version": model.version, "dim": model.dim},
        dims=dims,
        vectors=len(vectors),
        variance_kept=round(kept, 6),
        version=version,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    card = record.as_dict() | {
        "kind": "pca",
        "fitted_on": str(settings.data_dir.resolve()),
        "method": "principal axes of the index's unit vectors (centred for the fit, applied "
        "without centring), the first dims kept, as a Dense layer before Normalize",
    }
    (target / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")
    return record


def _model_folder(configured: str, model: ModelInfo) -> Path:
    """The folder of the model the index was built with, checked by its version."""
    folder = Path(resolve_model_path(configured))
    if not folder.is_dir():
        raise ConfigError(
            f"the embedding model {configured!r} is not a folder: give the folder the index "
            "was built with (BRAID_EMBEDDER__MODEL)"
        )
    found = weights_version(folder)
    if found != model.version:
        raise ConfigError(
            f"{folder} is version {found}, the index was built with {model.model_id} version "
            f"{model.version}: fit on the index of that model"
        )
    return folder


def _variance_kept(vectors: np.ndarray, axes: np.ndarray, dims: int) -> float:
    centred = vectors.astype(np.float64) - vectors.mean(axis=0)
    spread = (centred @ axes.astype(np.float64)).var(axis=0)
    total = float(spread.sum())
    return float(spread[:dims].sum() / total) if total > 0 else 1.0


def _write_model(base_dir: Path, weight: np.ndarray, target: Path) -> None:
    """The base model with a ``Dense`` projection before its ``Normalize`` (sentence-
    transformers' own modules and ``save``)."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense, Normalize

    from braid.engine.devices import quiet_model_loading

    quiet_model_loading()
    base = SentenceTransformer(str(base_dir), device="cpu")
    modules = list(base)
    projection = Dense(
        weight.shape[1],
        weight.shape[0],
        bias=False,
        activation_function=torch.nn.Identity(),
        init_weight=torch.from_numpy(np.ascontiguousarray(weight, dtype=np.float32)),
    )
    at = next((i for i, m in enumerate(modules) if isinstance(m, Normalize)), len(modules))
    if at == len(modules):
        modules.append(Normalize())  # braid's vectors are unit length either way
    modules.insert(at, projection)
    smaller = SentenceTransformer(modules=modules, device="cpu")
    smaller.max_seq_length = base.max_seq_length
    target.parent.mkdir(parents=True, exist_ok=True)
    smaller.save(str(target))
