"""Build the engine's parts from ``Settings``: the one place that picks implementations.

``build_engine`` loads the models and opens the stores (``engine.stores``); with
``models=False`` it opens the stores alone and imports no torch.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

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


EmbedderBackend = Literal["torch", "onnx", "onnx-int8"]


def embedder_backend(settings: Settings) -> EmbedderBackend:
    """The backend ``embedder.backend`` means on this machine.

    ``auto`` is ``onnx-int8`` where the model runs on the CPU and onnxruntime is installed
    (measured fastest for single queries here, rankings within 0.004 nDCG@10 of torch; see
    the README), and ``torch`` where a GPU may be used (fp16 there) or onnxruntime is
    missing. Whether a GPU is present is read from the device nodes, not by importing torch.
    """
    cfg = settings.embedder
    if cfg.backend != "auto":
        return cfg.backend
    if gpu_present(settings) or importlib.util.find_spec("onnxruntime") is None:
        return "torch"
    return "onnx-int8"


def gpu_present(settings: Settings) -> bool:
    """Whether the embedder may run on a GPU: ``embedder.device`` cuda, or auto with an
    NVIDIA device present (read from the device nodes, without importing torch)."""
    device = settings.embedder.device
    return device.startswith("cuda") or (device == "auto" and _nvidia_present())


def _nvidia_present() -> bool:
    return Path("/proc/driver/nvidia").exists() or Path("/dev/nvidia0").exists()


def onnx_cache_dir(settings: Settings) -> Path:
    """Where ONNX exports live: shared by every data dir of this user (about 150 MB)."""
    if settings.embedder.onnx_cache_dir is not None:
        return settings.embedder.onnx_cache_dir
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "braid" / "onnx"


def build_embedder(settings: Settings) -> Embedder:
    """Load the configured sentence-transformers model on its backend (``embedder_backend``).

    ``torch`` imports torch; ``onnx``/``onnx-int8`` run onnxruntime on the CPU from a file
    exported once into ``onnx_cache_dir`` (the export imports torch, later loads do not).
    Both report the same ``ModelInfo``, so either opens the same index.

    Raises:
        ConfigError: the model cannot be loaded (or exported).
        MissingDependencyError: an ONNX backend without onnxruntime.
    """
    cfg = settings.embedder
    backend = embedder_backend(settings)
    if backend in ("onnx", "onnx-int8"):
        from braid.engine.onnx_embedder import OnnxEmbedder

        return OnnxEmbedder(
            cfg.model,
            cache_dir=onnx_cache_dir(settings),
            quantized=backend == "onnx-int8",
            cpu_threads=cfg.cpu_threads,
            spin_wait=cfg.spin_wait is not False,
            query_prefix=cfg.query_prefix,
            passage_prefix=cfg.passage_prefix,
            batch_size=cfg.batch_size,
            max_seq_length=cfg.max_seq_length,
        )
    from braid.engine.embedder import SentenceTransformerEmbedder

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
        rerank_blend=settings.reranker.blend,
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
