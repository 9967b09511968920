"""``QdrantEdgeDenseStore``: Qdrant's own engine in-process (qdrant-edge-py), the default."""

from __future__ import annotations

from pathlib import Path

from braid.engine.dense.manifest import check_model, model_of
from braid.engine.dense.store import CollectionDenseStore
from braid.engine.models import ModelInfo
from braid.engine.qdrant.absent import AbsentCollection
from braid.engine.qdrant.edge import EdgeCollection, read_manifest
from braid.engine.qdrant.points import DenseLayout
from braid.engine.qdrant.protocol import Collection

MANIFEST_FILE = "braid-model.json"


class QdrantEdgeDenseStore(CollectionDenseStore):
    """Dense store in a Qdrant Edge shard directory (single process: it owns the files)."""

    def __init__(
        self, path: str | Path, model: ModelInfo | None = None, *, search_threads: int | None = None
    ) -> None:
        """Open the shard at ``path``; create it for ``model`` when it does not exist.

        Args:
            path: shard directory.
            model: the embedding model whose vectors the caller writes and searches with;
                ``None`` opens the model the shard's manifest records (no shard: an empty
                store, nothing created).
            search_threads: size of the shard's search pool (``None``: one per CPU).

        Raises:
            ModelMismatchError: the shard was built with another model.
            BackendUnavailableError: the shard cannot be opened.
        """
        path = Path(path)
        where = f"the Qdrant Edge shard at {path}"
        stored = read_manifest(path, MANIFEST_FILE)
        if model is not None:
            check_model(stored, model, where)  # before the shard is opened with model's dim
        layout_model = model_of(stored) or model
        collection: Collection = (
            AbsentCollection(where)
            if layout_model is None
            else EdgeCollection(
                path,
                DenseLayout(layout_model.dim),
                manifest_file=MANIFEST_FILE,
                search_threads=search_threads,
            )
        )
        super().__init__(collection, model)
        self._edge = collection if isinstance(collection, EdgeCollection) else None

    def flush(self) -> None:
        if self._edge is not None:
            self._edge.flush()
