"""Where ``QdrantSparseStore`` keeps its points: the shared ``engine.qdrant`` collections,
opened with the BM25 layout (one sparse vector ``bm25`` with the IDF modifier)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from braid.engine.qdrant.points import SparseLayout
from braid.engine.qdrant.protocol import Collection

if TYPE_CHECKING:
    from qdrant_client import QdrantClient

    from braid.engine.qdrant.client import QdrantOptions

VECTOR_NAME = "bm25"
MANIFEST_FILE = "braid-bm25.json"
BM25_LAYOUT = SparseLayout(VECTOR_NAME)


def EdgeSparseCollection(path: Path, *, search_threads: int | None = None) -> Collection:  # noqa: N802
    """A Qdrant Edge shard directory holding only the ``bm25`` sparse vector."""
    from braid.engine.qdrant.edge import EdgeCollection

    return EdgeCollection(
        path, BM25_LAYOUT, manifest_file=MANIFEST_FILE, search_threads=search_threads
    )


def ClientSparseCollection(  # noqa: N802
    client: QdrantClient,
    collection: str,
    options: QdrantOptions | None = None,
    *,
    owns_client: bool = False,
) -> Collection:
    """A collection on a Qdrant server (or qdrant-client's local mode) via qdrant-client.

    The client is usually the dense store's connection (local mode allows one client per
    folder); ``close`` then leaves it open for its owner.
    """
    from braid.engine.qdrant.client import ClientCollection

    return ClientCollection(client, collection, BM25_LAYOUT, options, owns_client=owns_client)
