"""Open the two stores of a data dir from ``Settings``, without any model.

The dense store takes the embedding model's identity from its manifest unless the caller
passes the model it encodes with (then the model lock is checked). In server and local mode
one qdrant-client connection is opened here and passed to both stores; ``Stores.close``
closes it after them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from braid.engine.config import Settings
from braid.engine.errors import BackendUnavailableError, BraidError, ConfigError
from braid.engine.models import ModelInfo
from braid.engine.protocols import DenseStore, SparseStore

if TYPE_CHECKING:
    from qdrant_client import QdrantClient

    from braid.engine.qdrant.client import QdrantOptions

# The qdrant sparse backend's collection on a server: "<qdrant.collection>_bm25".
BM25_COLLECTION_SUFFIX = "_bm25"
SPARSE_MARKER_FILE = "braid-sparse.json"


def qdrant_client(settings: Settings) -> QdrantClient:
    """A qdrant-client for ``settings.qdrant`` (server URL, or local mode in the data dir).

    Raises:
        BackendUnavailableError: local mode's folder is in use by another client.
    """
    from qdrant_client import QdrantClient

    cfg = settings.qdrant
    try:
        if cfg.mode == "local":
            return QdrantClient(path=str(settings.data_dir / "qdrant-local"))
        return QdrantClient(
            url=cfg.url,
            api_key=cfg.api_key.get_secret_value() if cfg.api_key else None,
            timeout=cfg.timeout_s,
            prefer_grpc=cfg.prefer_grpc,
            grpc_port=cfg.grpc_port,
        )
    except (RuntimeError, ValueError) as exc:  # local mode: folder already in use
        raise BackendUnavailableError(f"cannot open Qdrant ({cfg.mode}): {exc}") from exc


def qdrant_connection(settings: Settings) -> QdrantClient | None:
    """The connection both stores share: ``None`` when neither needs qdrant-client (Edge)."""
    if settings.qdrant.mode == "edge":
        return None
    return qdrant_client(settings)


def qdrant_options(settings: Settings) -> QdrantOptions:
    from braid.engine.qdrant.client import QdrantOptions

    cfg = settings.qdrant
    return QdrantOptions(
        on_disk_vectors=cfg.on_disk_vectors,
        on_disk_payload=cfg.on_disk_payload,
        quantization=cfg.quantization,
        rescore=cfg.rescore,
        oversampling=cfg.oversampling,
        hnsw_ef=cfg.hnsw_ef,
        shard_number=cfg.shard_number,
        replication_factor=cfg.replication_factor,
        upsert_batch=cfg.upsert_batch,
        upsert_parallel=cfg.upsert_parallel,
        retries=cfg.retries,
    )


def build_dense_store(
    settings: Settings, model: ModelInfo | None = None, *, connection: QdrantClient | None = None
) -> DenseStore:
    """The dense store of ``settings``.

    Args:
        model: the embedding model the caller encodes with (checked against the store's
            manifest; a new store is created for it); ``None`` opens the manifest's model
            and creates nothing.
        connection: server and local mode: the shared client (left open on ``close``);
            ``None`` opens one that the store owns.

    Raises:
        ModelMismatchError: the store was built with another model.
        BackendUnavailableError: Qdrant cannot be reached or opened.
        ConfigError: Edge: the serving pointer is malformed or names a missing shard.
    """
    cfg = settings.qdrant
    if cfg.mode == "edge":
        from braid.engine.dense.edge import QdrantEdgeDenseStore
        from braid.engine.dense.edge_versions import serving_path

        # The shard the data dir's pointer serves (``braid promote``), else <data_dir>/dense.
        return QdrantEdgeDenseStore(
            serving_path(settings.data_dir), model, search_threads=cfg.search_threads
        )
    from braid.engine.dense.qdrant import QdrantDenseStore

    return QdrantDenseStore.open_aliased(
        connection or qdrant_client(settings),
        cfg.collection,
        model,
        qdrant_options(settings),
        owns_client=connection is None,
    )


def build_sparse_store(
    settings: Settings,
    *,
    read_only: bool = False,
    client: QdrantClient | None = None,
    check_backend: bool = True,
) -> SparseStore:
    """The BM25 store ``settings.sparse.backend`` names.

    Args:
        read_only: open without writing (an API reader): Tantivy without its writer,
            following the commits of the process that writes (``braid worker``); Qdrant
            without touching the collection's manifest or indexes.
        client: qdrant backend in local or server mode: the connection to share with the
            dense store (local mode allows one client per folder; left open on ``close``);
            ``None`` opens one that the store owns.
        check_backend: refuse a data dir whose BM25 lives in the other backend (off only
            while moving it from one backend to the other).

    Raises:
        ConfigError: the data dir's BM25 lives in the other backend.
        IndexLockedError: another process writes the Tantivy index.
    """
    if check_backend:
        check_sparse_backend(settings)
    if settings.sparse.backend == "tantivy":
        from braid.engine.sparse.following import FollowingSparseStore
        from braid.engine.sparse.tantivy_store import TantivySparseStore

        store = TantivySparseStore(
            settings.sparse_dir,
            read_only=read_only,
            writer_threads=settings.tantivy.writer_threads,
            query_stopwords=settings.sparse.query_stopwords,
        )
        # A reader sees each commit of the writing process as soon as it is made.
        return FollowingSparseStore(store) if read_only else store
    from braid.engine.sparse.qdrant_backends import ClientSparseCollection, EdgeSparseCollection
    from braid.engine.sparse.qdrant_sparse import QdrantSparseStore

    cfg = settings.qdrant
    if cfg.mode == "edge":
        collection = EdgeSparseCollection(
            settings.sparse_qdrant_dir, search_threads=cfg.search_threads
        )
    else:
        collection = ClientSparseCollection(
            client or qdrant_client(settings),
            f"{cfg.collection}{BM25_COLLECTION_SUFFIX}",
            qdrant_options(settings),
            owns_client=client is None,
        )
    return QdrantSparseStore(
        collection,
        avg_len=settings.sparse.avg_len,
        read_only=read_only,
        query_stopwords=settings.sparse.query_stopwords,
    )


def record_sparse_backend(settings: Settings) -> None:
    """Mark the data dir's BM25 as living in ``settings.sparse.backend`` from now on."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    marker = settings.data_dir / SPARSE_MARKER_FILE
    tmp = marker.with_suffix(".tmp")
    tmp.write_text(json.dumps({"backend": settings.sparse.backend}))
    tmp.replace(marker)


def check_sparse_backend(settings: Settings) -> None:
    """Record which BM25 backend the data dir uses; refuse to open it with the other one.

    Raises:
        ConfigError: the data dir's BM25 index lives in the other backend (an empty BM25
            side would silently answer nothing).
    """
    marker = settings.data_dir / SPARSE_MARKER_FILE
    wanted = settings.sparse.backend
    if marker.exists():
        stored = json.loads(marker.read_text()).get("backend")
        if stored != wanted:
            raise ConfigError(
                f"the data dir {settings.data_dir} keeps BM25 in {stored!r} but "
                f"sparse.backend is {wanted!r}: set BRAID_SPARSE__BACKEND={stored} or "
                "ingest into a new data dir"
            )
        return
    if wanted == "qdrant" and settings.sparse_dir.exists():
        # Data dirs made before the marker existed kept BM25 in Tantivy.
        raise ConfigError(
            f"the data dir {settings.data_dir} keeps BM25 in 'tantivy' but sparse.backend "
            "is 'qdrant': set BRAID_SPARSE__BACKEND=tantivy or ingest into a new data dir"
        )
    record_sparse_backend(settings)


@dataclass
class Stores:
    """Both stores of one data dir and the Qdrant connection they share (if any)."""

    dense: DenseStore
    sparse: SparseStore
    connection: QdrantClient | None = None

    def close(self) -> None:
        try:
            self.sparse.close()
            self.dense.close()
        finally:
            if self.connection is not None:
                self.connection.close()


def open_stores(
    settings: Settings, *, model: ModelInfo | None = None, read_only: bool = False
) -> Stores:
    """Open the dense and the sparse store of ``settings.data_dir``; loads no model.

    Args:
        model: the embedding model the caller will encode with (checked against the dense
            store, which is created for it when new); ``None``: the dense store serves the
            model its manifest records, and a new data dir stays empty.
        read_only: see ``build_sparse_store``.

    Raises:
        ModelMismatchError: the dense store was built with another embedding model.
        IndexLockedError: another process writes the stores.
        BackendUnavailableError: Qdrant cannot be reached or opened.
    """
    connection = qdrant_connection(settings)
    try:
        dense = build_dense_store(settings, model, connection=connection)
        try:
            sparse = build_sparse_store(settings, read_only=read_only, client=connection)
        except BraidError:
            dense.close()
            raise
    except BaseException:
        if connection is not None:
            connection.close()
        raise
    return Stores(dense=dense, sparse=sparse, connection=connection)
