"""A new embedding model beside the old one: re-index, judge, promote, drop (server mode);
and moving BM25 from one sparse backend to the other.

``reindex`` builds the new model's collection from the chunks the stores already hold
(Tantivy keeps every chunk), without touching the alias that searches use; ``promote``
switches the alias atomically and records the new model in the ledger; ``drop`` deletes
collections that nothing serves. The embedded Qdrant Edge store holds one model per data dir:
there, ingest into a new data dir and compare the two.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from braid.engine.config import Settings
from braid.engine.errors import ConfigError
from braid.engine.factory import build_embedder, build_sparse_store, record_sparse_backend
from braid.engine.models import Chunk
from braid.ingestion.service import Workspace, tokenizer_of_embedder

if TYPE_CHECKING:
    from braid.engine.dense.qdrant import QdrantDenseStore

REINDEX_BATCH = 256
MOVE_BATCH = 10_000


def _server_store(workspace: Workspace) -> QdrantDenseStore:
    # Imported here: qdrant-client takes a second to import, and Qdrant Edge needs none of it.
    from braid.engine.dense.qdrant import QdrantDenseStore

    dense = workspace.engine.dense
    if not isinstance(dense, QdrantDenseStore):
        raise ConfigError(
            "model versions side by side need Qdrant in server or local mode "
            "(BRAID_QDRANT__MODE); with the embedded store, ingest into a new data dir"
        )
    return dense


def reindex(
    workspace: Workspace, model_name: str, on_progress: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """Embed every stored chunk with ``model_name`` into that model's own collection.

    Loads the new model itself, so ``workspace`` may be opened without models.
    """
    from braid.engine.dense.qdrant import QdrantDenseStore
    from braid.engine.qdrant.aliases import collection_for
    from braid.ingestion.chunking import TokenChunker

    current = _server_store(workspace)
    settings: Settings = workspace.settings
    new_settings = settings.model_copy(
        update={"embedder": settings.embedder.model_copy(update={"model": model_name})}
    )
    embedder = build_embedder(new_settings)
    target = collection_for(settings.qdrant.collection, embedder.info)
    store = QdrantDenseStore(
        current.client, target, embedder.info, current.options, owns_client=False
    )
    chunker = TokenChunker(
        tokenizer_of_embedder(embedder),
        embedder.max_seq_length,
        embedder.passage_prefix,
    )
    done = 0
    batch: list[Chunk] = []

    def flush() -> None:
        nonlocal done
        texts = [chunker.embed_input(c) for c in batch]
        too_long = [
            c.chunk_id
            for c, t in zip(batch, texts, strict=True)
            if chunker.count(t) > chunker.limit
        ]
        if too_long:
            raise ConfigError(
                f"{len(too_long)} chunks (e.g. {too_long[0]}) were cut for the old model and do "
                f"not fit {model_name}'s {chunker.limit} tokens: re-ingest the documents instead"
            )
        store.upsert(batch, embedder.encode_passages(texts))
        done += len(batch)
        batch.clear()
        if on_progress is not None:
            on_progress(done)

    try:
        for chunk in workspace.engine.sparse.chunks():
            batch.append(chunk)
            if len(batch) >= REINDEX_BATCH:
                flush()
        if batch:
            flush()
    finally:
        store.close()  # the connection stays open: it is the workspace's
    info = embedder.info
    return {
        "collection": target,
        "chunks": done,
        "model": {"id": info.model_id, "version": info.version, "dim": info.dim},
    }


def collections(workspace: Workspace) -> list[dict[str, Any]]:
    """The model collections behind the alias, and which one it serves."""
    from braid.engine.qdrant.aliases import model_collections

    store = _server_store(workspace)
    return model_collections(store.client, workspace.settings.qdrant.collection)


def promote_collection(workspace: Workspace, collection: str) -> dict[str, Any]:
    """Serve ``collection`` from now on; the ledger records its model."""
    from braid.engine.qdrant.aliases import promote

    store = _server_store(workspace)
    known = {c["collection"]: c for c in collections(workspace)}
    if collection not in known:
        raise ConfigError(f"{collection!r} is not one of {sorted(known)}")
    promote(store.client, workspace.settings.qdrant.collection, collection)
    entry = known[collection]
    workspace.ledger.set_model(str(entry["model_id"]), str(entry["model_version"]))
    return {
        "serving": collection,
        "model_id": entry["model_id"],
        "model_version": entry["model_version"],
    }


def drop_collections(workspace: Workspace, names: list[str]) -> list[str]:
    """Delete model collections the alias does not serve; returns those dropped."""
    from braid.engine.qdrant.aliases import drop

    store = _server_store(workspace)
    return drop(store.client, workspace.settings.qdrant.collection, names)


def move_sparse(
    workspace: Workspace,
    backend: Literal["tantivy", "qdrant"],
    on_progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Copy every stored chunk into the other BM25 backend and switch the data dir to it.

    No embedding: BM25 is rebuilt from the chunk text. The data dir records the new backend
    only after the copy is committed and optimized, so a crash leaves it on the old one (run
    the move again). The old store's files are kept; delete them once satisfied.
    """
    settings: Settings = workspace.settings
    if settings.sparse.backend == backend:
        raise ConfigError(f"BM25 already lives in {backend!r}")
    target = settings.model_copy(
        update={"sparse": settings.sparse.model_copy(update={"backend": backend})}
    )
    started = time.perf_counter()
    store = build_sparse_store(target, client=workspace.engine.connection, check_backend=False)
    try:
        # A previous, interrupted move may have left chunks behind: start from nothing.
        store.delete_docs(sorted(store.doc_ids()))
        store.commit()
        done = 0
        batch: list[Chunk] = []
        for chunk in workspace.engine.sparse.chunks():
            batch.append(chunk)
            if len(batch) >= MOVE_BATCH:
                store.upsert(batch)
                store.commit()
                done += len(batch)
                batch = []
                if on_progress is not None:
                    on_progress(done)
        store.upsert(batch)
        store.commit()
        done += len(batch)
        store.optimize()
        copied = store.count()
    finally:
        store.close()
    expected = workspace.engine.sparse.count()
    if copied != expected:
        raise ConfigError(f"moved {copied} chunks but the old store holds {expected}: not switched")
    record_sparse_backend(target)
    return {
        "from": settings.sparse.backend,
        "to": backend,
        "chunks": copied,
        "seconds": round(time.perf_counter() - started, 2),
        "next": f"set BRAID_SPARSE__BACKEND={backend} for every process of this data dir",
    }
