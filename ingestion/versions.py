"""A new embedding model beside the old one: re-index, judge, promote, drop; and moving BM25
from one sparse backend to the other.

``reindex`` builds the new model's collection from the chunks the stores already hold
(Tantivy keeps every chunk), without touching what searches use; ``promote`` switches to it
atomically and records the new model in the ledger; ``drop`` deletes collections that nothing
serves. On a Qdrant server (or local mode) the switch is an alias (``engine.qdrant.aliases``);
on the embedded Qdrant Edge each model version is a shard folder and the switch a pointer file
(``engine.dense.edge_versions``). Both name collections alike and answer with the same keys.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from braid.engine.config import Settings
from braid.engine.errors import ConfigError
from braid.engine.factory import build_embedder, build_sparse_store, record_sparse_backend
from braid.engine.models import Chunk, ModelInfo
from braid.engine.protocols import DenseStore, Embedder
from braid.ingestion.service import Workspace, tokenizer_of_embedder

if TYPE_CHECKING:
    from braid.engine.dense.qdrant import QdrantDenseStore

REINDEX_BATCH = 256
MOVE_BATCH = 10_000


def _on_edge(workspace: Workspace) -> bool:
    return workspace.settings.qdrant.mode == "edge"


def _server_store(workspace: Workspace) -> QdrantDenseStore:
    # Imported here: qdrant-client takes a second to import, and Qdrant Edge needs none of it.
    from braid.engine.dense.qdrant import QdrantDenseStore

    dense = workspace.engine.dense
    if not isinstance(dense, QdrantDenseStore):
        raise ConfigError(f"the dense store is not a Qdrant collection: {type(dense).__name__}")
    return dense


def _model_dict(model: ModelInfo) -> dict[str, Any]:
    return {"id": model.model_id, "version": model.version, "dim": model.dim}


def _listing(collection: str, model: ModelInfo, points: int, serving: bool) -> dict[str, Any]:
    # The keys engine.qdrant.aliases.model_collections answers with on a server.
    return {
        "collection": collection,
        "model_id": model.model_id,
        "model_version": model.version,
        "dim": model.dim,
        "points": points,
        "serving": serving,
    }


def reindex(
    workspace: Workspace,
    model_name: str,
    on_progress: Callable[[int], None] | None = None,
    *,
    batch_size: int = REINDEX_BATCH,
) -> dict[str, Any]:
    """Embed every stored chunk with ``model_name`` into that model's own collection.

    Loads the new model itself, so ``workspace`` may be opened without models. What searches
    use is never changed (that is ``promote_collection``); running it again for the same model
    writes the same collection again (points are upserted by id), so an interrupted run is
    finished by re-running it.

    Args:
        workspace: the data dir, opened by this process.
        model_name: a sentence-transformers name or folder.
        on_progress: called with the number of chunks embedded so far, after each batch.
        batch_size: chunks per embedding and write batch.

    Returns:
        ``{"collection", "chunks", "model": {"id", "version", "dim"}}``.

    Raises:
        ConfigError: the model cannot be loaded, or a stored chunk does not fit its tokens.
    """
    settings: Settings = workspace.settings
    new_settings = settings.model_copy(
        update={"embedder": settings.embedder.model_copy(update={"model": model_name})}
    )
    embedder = build_embedder(new_settings)
    if _on_edge(workspace):
        target, store, serving = _edge_target(workspace, embedder.info)
    else:
        target, store, serving = _server_target(workspace, embedder.info)
    try:
        done = _embed_chunks(workspace, store, embedder, model_name, on_progress, batch_size)
        if not serving:
            # Documents deleted since an earlier run into this collection: gone here too.
            stale = store.doc_ids() - workspace.engine.sparse.doc_ids()
            store.delete_docs(sorted(stale))
    finally:
        if store is not workspace.engine.dense:
            store.close()  # a server connection stays open: it is the workspace's
    return {"collection": target, "chunks": done, "model": _model_dict(embedder.info)}


def _server_target(workspace: Workspace, model: ModelInfo) -> tuple[str, DenseStore, bool]:
    from braid.engine.dense.qdrant import QdrantDenseStore
    from braid.engine.qdrant.aliases import aliases, collection_for

    current = _server_store(workspace)
    alias = workspace.settings.qdrant.collection
    target = collection_for(alias, model)
    store = QdrantDenseStore(current.client, target, model, current.options, owns_client=False)
    return target, store, aliases(current.client).get(alias) == target


def _edge_target(workspace: Workspace, model: ModelInfo) -> tuple[str, DenseStore, bool]:
    from braid.engine.dense.edge import QdrantEdgeDenseStore
    from braid.engine.dense.edge_versions import remove_unfinished, serving_path, shard_path
    from braid.engine.qdrant.naming import collection_for

    settings = workspace.settings
    target = collection_for(settings.qdrant.collection, model)
    path = shard_path(settings.data_dir, settings.qdrant.collection, target)
    if path == serving_path(settings.data_dir):
        # Re-indexing with the serving model: the shard this process holds open already.
        return target, workspace.engine.dense, True
    remove_unfinished(path)
    store = QdrantEdgeDenseStore(path, model, search_threads=settings.qdrant.search_threads)
    return target, store, False


def _embed_chunks(
    workspace: Workspace,
    store: DenseStore,
    embedder: Embedder,
    model_name: str,
    on_progress: Callable[[int], None] | None,
    batch_size: int,
) -> int:
    from braid.ingestion.chunking import TokenChunker

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

    for chunk in workspace.engine.sparse.chunks():
        batch.append(chunk)
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    return done


def collections(workspace: Workspace) -> list[dict[str, Any]]:
    """The collections built per embedding model version, and which one searches use.

    Each: ``{"collection", "model_id", "model_version", "dim", "points", "serving"}``.
    """
    if _on_edge(workspace):
        from braid.engine.dense.edge_versions import count_points, shards

        settings = workspace.settings
        return [
            _listing(
                s.collection,
                s.model,
                # The serving shard is open in this process: count through it.
                workspace.engine.dense.count() if s.serving else count_points(s.path),
                s.serving,
            )
            for s in shards(settings.data_dir, settings.qdrant.collection)
        ]
    from braid.engine.qdrant.aliases import model_collections

    store = _server_store(workspace)
    return model_collections(store.client, workspace.settings.qdrant.collection)


def promote_collection(workspace: Workspace, collection: str) -> dict[str, Any]:
    """Serve ``collection`` from now on; the ledger records its model.

    On Qdrant Edge the shard must hold as many chunks as the one served now (a re-index that
    was interrupted is refused: run it again first).

    Returns:
        ``{"serving", "model_id", "model_version"}``.

    Raises:
        ConfigError: no such collection, or (Edge) an incomplete one.
    """
    known = {c["collection"]: c for c in collections(workspace)}
    if collection not in known:
        raise ConfigError(f"{collection!r} is not one of {sorted(known)}")
    entry = known[collection]
    settings = workspace.settings
    if _on_edge(workspace):
        from braid.engine.dense.edge_versions import promote as point_at
        from braid.engine.dense.edge_versions import shards

        expected = workspace.engine.dense.count()
        if not entry["serving"] and entry["points"] != expected:
            raise ConfigError(
                f"{collection!r} holds {entry['points']} chunks but the serving shard holds "
                f"{expected}: finish it with `braid reindex --model {entry['model_id']}` "
                "before promoting it"
            )
        shard = next(
            s
            for s in shards(settings.data_dir, settings.qdrant.collection)
            if s.collection == collection
        )
        point_at(settings.data_dir, shard)
    else:
        from braid.engine.qdrant.aliases import promote as alias_to

        alias_to(_server_store(workspace).client, settings.qdrant.collection, collection)
    workspace.ledger.set_model(str(entry["model_id"]), str(entry["model_version"]))
    return {
        "serving": collection,
        "model_id": entry["model_id"],
        "model_version": entry["model_version"],
    }


def drop_collections(workspace: Workspace, names: list[str]) -> list[str]:
    """Delete model collections that nothing serves; returns those dropped (unknown names are
    skipped).

    Raises:
        ConfigError: one of them is the collection searches use.
    """
    alias = workspace.settings.qdrant.collection
    if _on_edge(workspace):
        from braid.engine.dense.edge_versions import drop as drop_shards

        return drop_shards(workspace.settings.data_dir, alias, names)
    from braid.engine.qdrant.aliases import drop

    return drop(_server_store(workspace).client, alias, names)


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
