"""Build the engine's parts from ``Settings``: the one place that picks implementations.

``build_engine`` loads the models and opens the stores (``engine.stores``); with
``models=False`` it opens the stores alone and imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from braid.engine.config import Settings
from braid.engine.profiles import with_profile
from braid.engine.protocols import DenseStore, Embedder, Reranker, SparseStore
from braid.engine.searcher import HybridSearcher, SearchDefaults
from braid.engine.stores import (
    BM25_COLLECTION_SUFFIX,
    SPARSE_MARKER_FILE,
    Stores,
    build_dense_store,
    build_sparse_store,
    check_sparse_backend,
    open_stores,
    qdrant_client,
    qdrant_options,
    record_sparse_backend,
)
from braid.engine.unloaded import UnloadedEmbedder

if TYPE_CHECKING:
    from qdrant_client import QdrantClient

# The store builders live in engine.stores; importable from here as before.
__all__ = [
    "BM25_COLLECTION_SUFFIX",
    "SPARSE_MARKER_FILE",
    "Engine",
    "Stores",
    "build_dense_store",
    "build_embedder",
    "build_engine",
    "build_reranker",
    "build_sparse_store",
    "check_sparse_backend",
    "open_stores",
    "qdrant_client",
    "qdrant_options",
    "record_sparse_backend",
    "search_defaults",
]


def build_embedder(settings: Settings) -> Embedder:
    """Load the configured sentence-transformers model (imports torch).

    Raises:
        ConfigError: the model cannot be loaded.
    """
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
    """Load the configured cross-encoder; ``None`` when reranking is off or unconfigured."""
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


def search_defaults(settings: Settings) -> SearchDefaults:
    return SearchDefaults(
        weights=dict(settings.fusion.weights),
        rrf_k=settings.fusion.rrf_k,
        candidates=settings.fusion.candidates,
        rerank_depth=settings.reranker.depth,
        fusion=settings.fusion.method,
        fusion_level=settings.fusion.level,
    )


@dataclass
class Engine:
    """Everything a process needs to search and write one data dir: the stores, the models
    and the searcher over them."""

    embedder: Embedder
    stores: Stores
    searcher: HybridSearcher

    @property
    def dense(self) -> DenseStore:
        return self.stores.dense

    @property
    def sparse(self) -> SparseStore:
        return self.stores.sparse

    @property
    def connection(self) -> QdrantClient | None:
        """The qdrant-client both stores share (server and local mode); ``None`` on Edge."""
        return self.stores.connection

    def close(self) -> None:
        try:
            self.searcher.close()
        finally:
            self.stores.close()


def build_engine(settings: Settings, *, read_only: bool = False, models: bool = True) -> Engine:
    """Load the models and open both stores of ``settings.data_dir``.

    Args:
        read_only: open the sparse store without writing (an API reader).
        models: ``False`` loads no model and imports no torch: the dense store serves the
            model its manifest records, BM25 searches work, and anything that needs the
            embedder raises ``ModelsNotLoadedError``.

    Raises:
        ModelMismatchError: the dense store was built with another embedding model.
        IndexLockedError: another process writes the stores.
    """
    settings = with_profile(settings)
    embedder: Embedder = (
        build_embedder(settings) if models else UnloadedEmbedder(settings.embedder.model)
    )
    stores: Stores = open_stores(
        settings, model=embedder.info if models else None, read_only=read_only
    )
    try:
        reranker = build_reranker(settings) if models else None
    except BaseException:
        stores.close()
        raise
    searcher = HybridSearcher(
        embedder, stores.dense, stores.sparse, reranker, search_defaults(settings)
    )
    return Engine(embedder=embedder, stores=stores, searcher=searcher)
