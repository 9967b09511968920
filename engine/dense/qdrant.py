"""``QdrantDenseStore``: the dense leg on a Qdrant server (or local mode) through qdrant-client.

Model versions side by side: ``open_aliased`` keeps one collection per embedding model
version behind the alias that searches and writes use (``engine.qdrant.aliases``).
"""

from __future__ import annotations

from qdrant_client import QdrantClient

from braid.engine.dense.manifest import manifest
from braid.engine.dense.store import CollectionDenseStore
from braid.engine.errors import BackendUnavailableError
from braid.engine.models import ModelInfo
from braid.engine.qdrant.absent import AbsentCollection
from braid.engine.qdrant.aliases import aliases, collection_for, promote
from braid.engine.qdrant.client import (
    ClientCollection,
    QdrantOptions,
    collection_exists,
    dense_layout_of,
)
from braid.engine.qdrant.points import DenseLayout
from braid.engine.qdrant.retries import BACKEND_ERRORS

__all__ = ["QdrantDenseStore", "QdrantOptions"]


class QdrantDenseStore(CollectionDenseStore):
    """Dense store in one Qdrant collection (or alias), reached through ``QdrantClient``."""

    def __init__(
        self,
        client: QdrantClient,
        collection: str,
        model: ModelInfo | None = None,
        options: QdrantOptions | None = None,
        *,
        owns_client: bool = True,
    ) -> None:
        """Use ``collection`` (a collection or an alias), creating it for ``model`` if missing.

        The model manifest lives in the collection's metadata.

        Args:
            client: the connection (shared with the sparse store when ``owns_client`` is off).
            collection: a collection or an alias.
            model: the embedding model the caller uses; ``None`` opens what the collection's
                manifest records (no collection: an empty store, nothing created).
            options: server options.
            owns_client: ``close`` closes the client too.

        Raises:
            ModelMismatchError: the collection was built with another model.
            BackendUnavailableError: the server cannot be reached.
        """
        self._options = options or QdrantOptions()
        self._client = client
        self._name = collection
        # An absent collection holds no client: this store closes it then, if it owns it.
        self._closes_client = False
        if model is None and not collection_exists(client, collection, self._options.retries):
            super().__init__(AbsentCollection(f"the Qdrant collection {collection!r}"), None)
            self._closes_client = owns_client
            return
        layout = (
            DenseLayout(model.dim) if model is not None else dense_layout_of(client, collection)
        )
        super().__init__(
            ClientCollection(
                client,
                collection,
                layout,
                self._options,
                manifest=manifest(model) if model is not None else None,
                owns_client=owns_client,
            ),
            model,
        )

    @classmethod
    def open_aliased(
        cls,
        client: QdrantClient,
        alias: str,
        model: ModelInfo | None = None,
        options: QdrantOptions | None = None,
        *,
        owns_client: bool = True,
    ) -> QdrantDenseStore:
        """Open the collection behind ``alias``, or create ``model``'s collection and the alias.

        Without a model and without the alias, nothing is created (an empty store).

        Raises:
            ModelMismatchError: the alias points at another model's collection (re-index with
                ``braid reindex`` and ``braid promote``, or configure that model).
            BackendUnavailableError: the server cannot be reached.
        """
        try:
            target = aliases(client).get(alias)
            if target is None and model is not None and not client.collection_exists(alias):
                target = collection_for(alias, model)
                cls(client, target, model, options, owns_client=False)  # creates it, with indexes
                promote(client, alias, target)
        except BACKEND_ERRORS as exc:
            raise BackendUnavailableError(f"Qdrant at {alias!r}: {exc}") from exc
        return cls(client, alias, model, options, owns_client=owns_client)

    def close(self) -> None:
        super().close()
        if self._closes_client:
            self._client.close()

    @property
    def collection(self) -> str:
        return self._name

    @property
    def client(self) -> QdrantClient:
        return self._client

    @property
    def options(self) -> QdrantOptions:
        return self._options
