"""``braid bench query``: latency per stage of the real query path on a 100k-chunk index.

The index is built once through the ingestion pipeline (cached in the data dir) from a real
corpus scaled up (``eval.bench.corpus``). Every mode runs the same queries; the figures are
medians and 95th percentiles per stage, plus the orchestration ratio
``total / (embed + max(dense, sparse))``. Qdrant Edge's own fused query (dense + BM25 sparse
prefetches, RRF in the engine) runs side by side on the same vectors as a peer reference.

The query encoder's backends (``embedder.backend``: torch, onnx, onnx-int8) are timed side by
side in the same run: single-query encode p50/p95, the hybrid query with each as its encoder
(same index, same ratio), and each one's cosine to torch's vectors on the same queries.
"""

from __future__ import annotations

import importlib.util
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, get_args

import numpy as np

from braid.engine.config import EmbedderSettings, Settings
from braid.engine.dense.edge import QdrantEdgeDenseStore
from braid.engine.factory import build_embedder, embedder_backend
from braid.engine.fusion import FusionMethod
from braid.engine.models import SearchMode
from braid.engine.protocols import Embedder
from braid.engine.searcher import HybridSearcher
from braid.eval.bench.corpus import queries, scaled_corpus
from braid.eval.bench.stats import percentiles
from braid.eval.peer import PeerShard, timed_query
from braid.ingestion.documents import SourceDocument
from braid.ingestion.pipeline import Progress
from braid.ingestion.service import Workspace, open_workspace

BENCH_FILTER = {"year": {"$gte": 2000}, "source": {"$in": ["pubmed", "journal", "review"]}}
# name -> (mode, filter, fusion method: None is the configured default, result shape)
MODES: dict[str, tuple[SearchMode, dict[str, Any] | None, FusionMethod | None, dict[str, Any]]] = {
    "bm25": ("bm25", None, None, {}),
    "dense": ("dense", None, None, {}),
    "hybrid": ("hybrid", None, None, {}),
    "hybrid rrf": ("hybrid", None, "rrf", {}),  # the default before adaptive fusion
    "hybrid+filter": ("hybrid", BENCH_FILTER, None, {}),
    # What the API answers by default: documents with passages, then facets and highlights.
    "hybrid documents": ("hybrid", None, None, {"group_by": "document"}),
    "hybrid documents+facets+highlights": (
        "hybrid",
        None,
        None,
        {"group_by": "document", "facets": ["source", "year"], "highlight": True},
    ),
}
ENCODER_BACKENDS: tuple[str, ...] = tuple(
    b for b in get_args(EmbedderSettings.model_fields["backend"].annotation) if b != "auto"
)
# Each backend's block runs this many times, alternating, so that a change in the load of a
# shared machine falls on every backend alike.
ENCODER_ROUNDS = 2


def default_encoder_backends() -> list[str]:
    """Every ``embedder.backend`` when onnxruntime is installed, else torch alone."""
    if importlib.util.find_spec("onnxruntime") is None:
        return ["torch"]
    return list(ENCODER_BACKENDS)


def build_index(
    settings: Settings,
    corpus: Path,
    size: int,
    real_vectors: int,
    on_progress: Callable[[Progress], None] | None,
) -> Workspace:
    """Open (and fill, the first time) the benchmark's data dir.

    The first ``real_vectors`` passages go through the real ingestion pipeline (the model
    embeds them: about 30 passages/s on two CPU cores). The rest, so that 100k chunks build
    in minutes rather than an hour, get *composed* vectors: the normalised mean of three real
    passage vectors plus a little noise, i.e. points inside the real embedding distribution.
    Their text, BM25 postings and metadata are real. Latency depends on the index's size and
    shape, not on where its vectors came from; the report says how many of each there are.
    """
    workspace = open_workspace(settings, role="braid bench query")
    passages = list(scaled_corpus(corpus, size))
    real = passages[:real_vectors]
    if workspace.ledger.totals()["documents"] < len(real):
        workspace.pipeline.run(real, on_progress=on_progress)
    if workspace.engine.dense.count() < len(passages):
        _compose(workspace, passages[len(real) :])
    workspace.engine.dense.optimize()
    return workspace


def _compose(workspace: Workspace, passages: list[SourceDocument], seed: int = 11) -> None:
    dense = workspace.engine.dense
    if not isinstance(dense, QdrantEdgeDenseStore):
        raise TypeError("composed vectors need the Qdrant Edge dense store")
    pool = np.asarray([vector for _, vector, _ in dense.points()], dtype=np.float32)
    rng = np.random.default_rng(seed)
    chunker = workspace.pipeline.chunker
    for start in range(0, len(passages), 2000):
        chunks = [c for doc in passages[start : start + 2000] for c in chunker.chunk(doc)]
        picks = rng.integers(0, len(pool), size=(len(chunks), 3))
        vectors = pool[picks].mean(axis=1) + rng.normal(0, 0.02, size=(len(chunks), pool.shape[1]))
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        dense.upsert(chunks, vectors.astype(np.float32))
        workspace.engine.sparse.upsert(chunks)
    workspace.engine.sparse.commit()


def run_query_bench(
    settings: Settings,
    corpus: Path,
    size: int,
    query_count: int,
    real_vectors: int,
    on_progress: Callable[[Progress], None] | None = None,
    with_peer: bool = True,
    encoder_backends: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Run every mode (and the peer) over the same queries; return the report.

    ``encoder_backends`` (default: ``default_encoder_backends()``; empty: none) are timed as
    query encoders under ``report["encoders"]``.
    """
    backends = default_encoder_backends() if encoder_backends is None else list(encoder_backends)
    unknown = sorted(set(backends) - set(ENCODER_BACKENDS))
    if unknown:
        raise ValueError(f"unknown embedder backends {unknown}; expected {ENCODER_BACKENDS}")
    workspace = build_index(settings, corpus, size, real_vectors, on_progress)
    try:
        searcher = workspace.engine.searcher
        texts = queries(corpus, query_count)
        for text in texts[:20]:  # warm caches and the model
            searcher.search(text, top_k=10, mode="hybrid", rerank=False)
        report: dict[str, Any] = {
            "chunks": workspace.engine.dense.count(),
            "real_vectors": min(real_vectors, size),
            "composed_vectors": max(0, size - real_vectors),
            "queries": len(texts),
            "top_k": 10,
            "candidates": searcher.defaults.candidates,
            "embedding_model": workspace.engine.embedder.info.model_id,
            "embedder_backend": embedder_backend(settings),
            "filter": BENCH_FILTER,
            "modes": {},
        }
        for name, (mode, flt, fusion, shape) in MODES.items():
            samples = []
            ratios = []
            for text in texts:
                timings = searcher.search(
                    text, top_k=10, mode=mode, filter=flt, rerank=False, fusion=fusion, **shape
                ).timings_ms
                samples.append(timings)
                ratios.append(_overhead_ratio(timings))
            report["modes"][name] = percentiles(samples) | {
                "overhead_ratio_p50": round(statistics.median(ratios), 3)
            }
        if backends:
            report["encoders"] = encoder_bench(workspace, settings, texts, backends)
            report["encoder_cpu_threads"] = settings.embedder.cpu_threads
        if with_peer:
            report["peer_qdrant_edge_fused_rrf"] = _peer_bench(workspace, settings, texts)
            ours = report["modes"]["hybrid"]["p50"]["total"]
            theirs = report["peer_qdrant_edge_fused_rrf"]["p50"]["total"]
            report["hybrid_p50_over_peer_p50"] = round(ours / theirs, 3) if theirs else None
        return report
    finally:
        workspace.close()


def _overhead_ratio(timings: Mapping[str, float]) -> float:
    """``total / (embed + max(dense, sparse))``: what orchestration adds to the slowest path."""
    core = timings.get("embed", 0.0) + max(timings.get("dense", 0.0), timings.get("sparse", 0.0))
    return timings["total"] / core if core > 0 else 1.0


def encoder_bench(
    workspace: Workspace, settings: Settings, texts: list[str], backends: Sequence[str]
) -> dict[str, Any]:
    """Each backend as the query encoder over the same queries and the same index.

    Per backend: ``encode_ms`` (one query per call, p50/p95), ``hybrid`` (the hybrid query's
    stages with that encoder, p50/p95, and its ``overhead_ratio_p50``), and
    ``cosine_to_torch`` (mean and min over the queries) when torch is among them. Backends
    run in blocks, not interleaved per query: onnxruntime's threads spin for a moment after
    each run, which would be timed against the next backend's call.
    """
    engine = workspace.engine
    embedders: dict[str, Embedder] = {}
    for backend in backends:
        if backend == embedder_backend(settings):
            embedders[backend] = engine.embedder
        else:
            section = settings.embedder.model_copy(update={"backend": backend})
            embedders[backend] = build_embedder(settings.model_copy(update={"embedder": section}))
        if embedders[backend].info != engine.embedder.info:  # cannot differ: the same model
            raise RuntimeError(f"{backend} reports {embedders[backend].info}")
    searchers = {
        b: HybridSearcher(e, engine.dense, engine.sparse, None, engine.searcher.defaults)
        for b, e in embedders.items()
    }
    encode: dict[str, list[dict[str, float]]] = {b: [] for b in backends}
    hybrid: dict[str, list[dict[str, float]]] = {b: [] for b in backends}
    try:
        for searcher in searchers.values():
            for text in texts[:20]:  # warm the session and the stores' caches
                searcher.search(text, top_k=10, mode="hybrid", rerank=False)
        for _ in range(ENCODER_ROUNDS):
            for backend, embedder in embedders.items():
                for text in texts:
                    started = time.perf_counter()
                    embedder.encode_queries([text])
                    encode[backend].append({"encode": (time.perf_counter() - started) * 1000})
                for text in texts:
                    result = searchers[backend].search(text, top_k=10, mode="hybrid", rerank=False)
                    hybrid[backend].append(result.timings_ms)
    finally:
        for searcher in searchers.values():
            searcher.close()
    reference = embedders["torch"].encode_queries(texts) if "torch" in embedders else None
    report: dict[str, Any] = {}
    for backend, embedder in embedders.items():
        stats = percentiles(encode[backend])
        entry: dict[str, Any] = {
            "encode_ms": {q: stats[q]["encode"] for q in ("p50", "p95")},
            "hybrid": percentiles(hybrid[backend])
            | {
                "overhead_ratio_p50": round(
                    statistics.median(_overhead_ratio(t) for t in hybrid[backend]), 3
                )
            },
        }
        if reference is not None:
            cosines = np.einsum("ij,ij->i", embedder.encode_queries(texts), reference)
            entry["cosine_to_torch"] = {
                "mean": round(float(cosines.mean()), 5),
                "min": round(float(cosines.min()), 5),
            }
        report[backend] = entry
    return report


def _peer_bench(workspace: Workspace, settings: Settings, texts: list[str]) -> dict[str, Any]:
    dense = workspace.engine.dense
    if not isinstance(dense, QdrantEdgeDenseStore):
        raise TypeError("the peer reference needs the Qdrant Edge dense store")
    embedder = workspace.engine.embedder
    path = settings.data_dir / "peer-edge-hybrid"
    candidates = workspace.engine.searcher.defaults.candidates
    with PeerShard.open(dense, embedder.info.dim, path, {"chunks": dense.count()}) as shard:
        samples = [
            # k does not change latency; the bench has always run RRF k=60
            timed_query(shard, embedder, text, limit=10, candidates=candidates, rrf_k=60)[1]
            for text in texts
        ]
    return percentiles(samples)
