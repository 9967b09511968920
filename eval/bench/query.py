"""``braid bench query``: latency per stage of the real query path on a 100k-chunk index.

The index is built once through the ingestion pipeline (cached in the data dir) from a real
corpus scaled up (``eval.bench.corpus``). Every mode runs the same queries; the figures are
medians and 95th percentiles per stage, plus the orchestration ratio
``total / (embed + max(dense, sparse))``. Qdrant Edge's own fused query (dense + BM25 sparse
prefetches, RRF in the engine) runs side by side on the same vectors as a peer reference.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from braid.engine.config import Settings
from braid.engine.dense.edge import QdrantEdgeDenseStore
from braid.engine.fusion import FusionMethod
from braid.engine.models import SearchMode
from braid.eval.bench.corpus import queries, scaled_corpus
from braid.eval.bench.stats import percentiles
from braid.eval.peer import PeerShard, timed_query
from braid.ingestion.documents import SourceDocument
from braid.ingestion.pipeline import Progress
from braid.ingestion.service import Workspace, open_workspace

BENCH_FILTER = {"year": {"$gte": 2000}, "source": {"$in": ["pubmed", "journal", "review"]}}
# name -> (mode, filter, fusion method: None is the configured default)
MODES: dict[str, tuple[SearchMode, dict[str, Any] | None, FusionMethod | None]] = {
    "bm25": ("bm25", None, None),
    "dense": ("dense", None, None),
    "hybrid": ("hybrid", None, None),
    "hybrid rrf": ("hybrid", None, "rrf"),  # the default before adaptive fusion, side by side
    "hybrid+filter": ("hybrid", BENCH_FILTER, None),
}


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
) -> dict[str, Any]:
    """Run every mode (and the peer) over the same queries; return the report."""
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
            "filter": BENCH_FILTER,
            "modes": {},
        }
        for name, (mode, flt, fusion) in MODES.items():
            samples = []
            ratios = []
            for text in texts:
                timings = searcher.search(
                    text, top_k=10, mode=mode, filter=flt, rerank=False, fusion=fusion
                ).timings_ms
                samples.append(timings)
                core = timings.get("embed", 0.0) + max(
                    timings.get("dense", 0.0), timings.get("sparse", 0.0)
                )
                ratios.append(timings["total"] / core if core > 0 else 1.0)
            report["modes"][name] = percentiles(samples) | {
                "overhead_ratio_p50": round(statistics.median(ratios), 3)
            }
        if with_peer:
            report["peer_qdrant_edge_fused_rrf"] = _peer_bench(workspace, settings, texts)
            ours = report["modes"]["hybrid"]["p50"]["total"]
            theirs = report["peer_qdrant_edge_fused_rrf"]["p50"]["total"]
            report["hybrid_p50_over_peer_p50"] = round(ours / theirs, 3) if theirs else None
        return report
    finally:
        workspace.close()


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
