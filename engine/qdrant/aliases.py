"""Model versions side by side on a server (or local mode): one collection per model version.

Searches and writes use an alias (``Settings.qdrant.collection``); each embedding model version
gets its own collection ``<alias>__<model>__<version>`` behind it, so a new model can be
indexed beside the old one (``braid reindex``), judged (``braid eval compare``) and switched to
atomically (``promote``); the old collection stays until ``drop``. Qdrant Edge has no
aliases: ``engine.dense.edge_versions`` does the same with one shard per model version and a
pointer file, under the same names.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from qdrant_client import QdrantClient
from qdrant_client import models as qm

from braid.engine.errors import ConfigError
from braid.engine.qdrant.naming import collection_for

# The naming lives in ``naming`` (no qdrant-client needed); importable from here as before.
__all__ = ["aliases", "collection_for", "drop", "model_collections", "promote"]


def aliases(client: QdrantClient) -> dict[str, str]:
    """Alias name -> collection name."""
    return {a.alias_name: a.collection_name for a in client.get_aliases().aliases}


def model_collections(client: QdrantClient, alias: str) -> list[dict[str, Any]]:
    """Collections built for ``alias`` (one per model version), and which one it serves."""
    serving = aliases(client).get(alias)
    found = []
    for description in client.get_collections().collections:
        if description.name.startswith(f"{alias}__"):
            metadata = client.get_collection(description.name).config.metadata or {}
            found.append(
                {
                    "collection": description.name,
                    "model_id": metadata.get("model_id"),
                    "model_version": metadata.get("model_version"),
                    "dim": metadata.get("dim"),
                    "points": client.count(description.name, exact=True).count,
                    "serving": description.name == serving,
                }
            )
    return found


def promote(client: QdrantClient, alias: str, collection: str) -> None:
    """Point ``alias`` at ``collection`` in one atomic request.

    Raises:
        ConfigError: there is no such collection.
    """
    if not client.collection_exists(collection):
        raise ConfigError(f"no Qdrant collection {collection!r}")
    operations: list[Any] = []
    if alias in aliases(client):
        operations.append(qm.DeleteAliasOperation(delete_alias=qm.DeleteAlias(alias_name=alias)))
    operations.append(
        qm.CreateAliasOperation(
            create_alias=qm.CreateAlias(collection_name=collection, alias_name=alias)
        )
    )
    client.update_collection_aliases(change_aliases_operations=operations)


def drop(client: QdrantClient, alias: str, collections: Iterable[str]) -> list[str]:
    """Delete model collections that the alias does not serve; returns what was dropped.

    Raises:
        ConfigError: one of them is what the alias serves.
    """
    serving = aliases(client).get(alias)
    dropped = []
    for name in collections:
        if name == serving:
            raise ConfigError(f"{name!r} is what {alias!r} serves: promote another one first")
        if client.delete_collection(name):
            dropped.append(name)
    return dropped
