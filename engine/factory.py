"""Build the engine's parts from ``Settings``: the one place that picks implementations."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from braid.engine.config import Settings
from braid.engine.errors import BackendUnavailableError, BraidError, ConfigError
from braid.engine.profiles import with_profile
from braid.engine.protocols import DenseStore, Embedder, Reranker, SparseStore
from braid.engine.searcher import HybridSearcher, SearchDefaults

if TYPE_CHECKING:
    from qdrant_client import QdrantClient

    from braid.engine.dense.qdrant import QdrantOptions


# The qdrant sparse backend's collection on a server: "<qdrant.collection>_bm25".
BM25_COLLECTION_SUFFIX = "_bm25"
SPARSE_MARKER_FILE = "braid-sparse.json"


def build_embedder(settings: Settings) -> Embedder:
    from braid.engine.embedder import SentenceTransformerEmbedder

    cfg = settings.embedder
    return SentenceTransformerEmbedder(
        cfg.model,
        device=cfg.device,
        cpu_threads=cfg.cpu_threads,
        query_prefix=cfg.query_prefix,
        passage_prefix=cfg.passage_prefix,
        batch_size=cfg.batch_size,
        max_seq_length=cfg.max_seq_length,
    )


def build_reranker(settings: Settings) -> Reranker | None:
    cfg = settings.reranker
    if not cfg.enabled or not cfg.model:
        return None
    from braid.engine.reranker import CrossEncoderReranker

    return CrossEncoderReranker(
        cfg.model,
        device=cfg.device,
        cpu_threads=settings.embedder.cpu_threads,
        max_length=cfg.max_length,
        batch_size=cfg.batch_size,
        backend=cfg.backend,
    )


def build_dense_store(settings: Settings, embedder: Embedder) -> DenseStore:
    cfg = settings.qdrant
    if cfg.mode == "edge":
        from braid.engine.dense.edge import QdrantEdgeDenseStore

        return QdrantEdgeDenseStore(
            settings.dense_dir, embedder.info, search_threads=cfg.search_threads
        )
    from braid.engine.dense.qdrant import QdrantDenseStore

    return QdrantDenseStore.open_aliased(
        qdrant_client(settings), cfg.collection, embedder.info, qdrant_options(settings)
    )


def qdrant_client(settings: Settings) -> QdrantClient:
    """A qdrant-client for ``settings.qdrant`` (server URL, or local mode in the data dir)."""
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


def qdrant_options(settings: Settings) -> QdrantOptions:
    from braid.engine.dense.qdrant import QdrantOptions

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
        client: qdrant backend in local or server mode: the dense store's client to share
            (local mode allows one client per folder); ``None`` opens one.
        check_backend: refuse a data dir whose BM25 lives in the other backend (off only
            while moving it from one backend to the other).
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
        )
        # A reader sees each commit of the writing process as soon as it is made.
        return FollowingSparseStore(store) if read_only else store
    from braid.engine.sparse.qdrant_backends import ClientSparseCollection, EdgeSparseCollection
    from braid.engine.sparse.qdrant_sparse import QdrantSparseStore

    cfg = settings.qdrant
    collection: EdgeSparseCollection | ClientSparseCollection
    if cfg.mode == "edge":
        collection = EdgeSparseCollection(
            settings.sparse_qdrant_dir, search_threads=cfg.search_threads
        )
    else:
        collection = ClientSparseCollection(
            client or qdrant_client(settings),
            f"{cfg.collection}{BM25_COLLECTION_SUFFIX}",
            shard_number=cfg.shard_number,
            replication_factor=cfg.replication_factor,
            on_disk_payload=cfg.on_disk_payload,
            upsert_batch=cfg.upsert_batch,
            retries=cfg.retries,
            owns_client=client is None,
        )
    return QdrantSparseStore(collection, avg_len=settings.sparse.avg_len, read_only=read_only)


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


def search_defaults(settings: Settings) -> SearchDefaults:
    return SearchDefaults(
        weights=dict(settings.fusion.weights),
        rrf_k=settings.fusion.rrf_k,
        candidates=settings.fusion.candidates,
        rerank_depth=settings.reranker.depth,
        fusion=settings.fusion.method,
    )


@dataclass
class Engine:
    """Everything a process needs to search and write one data dir."""

    embedder: Embedder
    dense: DenseStore
    sparse: SparseStore
    searcher: HybridSearcher

    def close(self) -> None:
        self.searcher.close()
        self.sparse.close()
        self.dense.close()


def build_engine(settings: Settings, *, read_only: bool = False) -> Engine:
    """Load the models and open both stores of ``settings.data_dir``.

    Raises:
        ModelMismatchError: the dense store was built with another embedding model.
        IndexLockedError: another process writes the stores.
    """
    settings = with_profile(settings)
    embedder = build_embedder(settings)
    dense = build_dense_store(settings, embedder)
    try:
        sparse = build_sparse_store(
            settings, read_only=read_only, client=getattr(dense, "client", None)
        )
    except BraidError:
        dense.close()
        raise
    searcher = HybridSearcher(
        embedder, dense, sparse, build_reranker(settings), search_defaults(settings)
    )
    return Engine(embedder=embedder, dense=dense, sparse=sparse, searcher=searcher)
