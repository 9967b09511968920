"""The peer: Qdrant Edge's own hybrid query over the same index (``braid eval run --mode
peer-qdrant``, and the latency reference of ``braid bench query``).

The peer shard is one Qdrant Edge shard holding, per chunk of braid's dense store, the same
stored vector (named ``dense``) and a BM25 sparse vector (named ``bm25``) made by Qdrant's own
``Bm25`` model (English tokenizer, stopwords and stemmer) over the text braid's BM25 sees
(``bm25_text``: title, then text), with Qdrant's IDF modifier: the shard computes IDF at query
time, as a Qdrant collection configured for BM25 does. A query is Qdrant's documented hybrid
recipe: two prefetches (nearest ``dense`` with the query vector braid's embedder makes, nearest
``bm25`` with ``Bm25.embed_query``), each ``candidates`` deep, fused by the engine's RRF.

RRF here is Qdrant's, not braid's: score = sum of ``1 / (k + position)`` with 0-based positions
(``rrf_scoring`` in qdrant's lib/segment/src/common/reciprocal_rank_fusion.rs), and Qdrant's
default ``k`` is 2 (``DEFAULT_RRF_K`` there), which is what a ``Fusion.RRF`` query without
parameters gets. qdrant-edge-py requires ``k`` explicitly, so the peer passes 2. In braid's
1-based convention (``1 / (k + rank)``) that is k = 1.

The shard is built once per evaluation index and kept in the index's data dir
(``peer/qdrant-edge``) with a stamp of what it was built from (corpus fingerprint, embedding
model, chunking, chunk count); any difference rebuilds it. The stamp is written last, so an
interrupted build is rebuilt too.
"""

from __future__ import annotations

import json
import platform
import shutil
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from types import TracebackType
from typing import Self

import qdrant_edge as qe

from braid.engine.dense.store import CollectionDenseStore
from braid.engine.errors import ConfigError
from braid.engine.grouping import rank_documents
from braid.engine.payload import chunk_from_payload
from braid.engine.protocols import DenseStore, Embedder
from braid.engine.searcher import HybridSearcher
from braid.engine.sparse.analysis import bm25_text
from braid.eval.datasets import Dataset
from braid.eval.evaluation import ModeResult, scored_result
from braid.eval.indexes import EvalIndex
from braid.eval.runs import (
    PEER_MODE,
    Run,
    RunParams,
    run_tag,
)

QDRANT_DEFAULT_RRF_K = 2  # qdrant DEFAULT_RRF_K; 1 / (k + position), positions 0-based
PEER_DIR = Path("peer") / "qdrant-edge"
STAMP_FILE = "braid-peer.json"
STAMP_FORMAT = 1  # bump when the shard's layout or BM25 configuration changes
DENSE, SPARSE = "dense", "bm25"
BM25_LANGUAGE = "english"
BATCH = 1000


@dataclass(frozen=True)
class PeerHit:
    """One chunk of a peer result: its point id (braid's), document and score."""

    point_id: str
    doc_id: str
    score: float


class PeerShard:
    """An opened peer shard; ``built`` says whether this open (re)built it."""

    def __init__(self, shard: qe.EdgeShard, path: Path, stamp: dict[str, object], built: bool):
        self._shard = shard
        self.path = path
        self.stamp = stamp
        self.built = built
        self._bm25 = qe.Bm25(qe.Bm25Config(language=BM25_LANGUAGE))  # queries: no avg_len

    @classmethod
    def open(cls, dense: DenseStore, dim: int, path: Path, key: Mapping[str, object]) -> PeerShard:
        """The peer shard at ``path``, (re)built from ``dense`` unless its stamp equals ``key``.

        Args:
            dense: braid's dense store (Qdrant Edge or qdrant-client): its stored vectors and
                chunk payloads are copied.
            dim: the vectors' dimension.
            path: the shard's directory (removed and rebuilt when stale).
            key: what the shard is built from (corpus, model, chunking, counts): the stamp.

        Raises:
            ConfigError: the dense store cannot list its points.
        """
        if not isinstance(dense, CollectionDenseStore):
            raise ConfigError("the peer needs a dense store that can list its points")
        config = edge_config(dim)
        wanted = {"format": STAMP_FORMAT, **key}
        stamp_path = path / STAMP_FILE
        if stamp_path.is_file():
            stamp = json.loads(stamp_path.read_text())
            if {k: stamp.get(k) for k in wanted} == json.loads(json.dumps(wanted, default=str)):
                return cls(qe.EdgeShard.load(str(path), config), path, stamp, built=False)
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        shard = qe.EdgeShard.create(str(path), config)
        try:
            stamp = {**wanted, "bm25": _fill(shard, dense)}
            shard.optimize()
            shard.flush()
        except BaseException:
            shard.close()
            raise
        stamp_path.write_text(json.dumps(stamp, indent=1, default=str) + "\n")
        return cls(shard, path, stamp, built=True)

    def close(self) -> None:
        self._shard.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def query(
        self,
        vector: Sequence[float],
        text: str,
        *,
        limit: int,
        candidates: int,
        rrf_k: int = QDRANT_DEFAULT_RRF_K,
    ) -> list[PeerHit]:
        """Qdrant's hybrid query: both prefetches ``candidates`` deep, fused by Qdrant's RRF."""
        request = qe.QueryRequest(
            limit=limit,
            prefetches=[
                qe.Prefetch(limit=candidates, query=qe.Query.Nearest(list(vector), using=DENSE)),
                qe.Prefetch(limit=candidates, query=self._sparse_query(text)),
            ],
            query=qe.Fusion.Rrf(k=rrf_k),  # type: ignore[arg-type]  # the stub omits Rrf
            with_payload=True,
        )
        return _hits(self._shard.query(request))

    def dense_leg(self, vector: Sequence[float], limit: int) -> list[PeerHit]:
        """The dense prefetch alone (what the fused query fuses, for checking it)."""
        query = qe.Query.Nearest(list(vector), using=DENSE)
        return _hits(
            self._shard.query(qe.QueryRequest(limit=limit, query=query, with_payload=True))
        )

    def sparse_leg(self, text: str, limit: int) -> list[PeerHit]:
        """The BM25 prefetch alone."""
        query = self._sparse_query(text)
        return _hits(
            self._shard.query(qe.QueryRequest(limit=limit, query=query, with_payload=True))
        )

    def _sparse_query(self, text: str) -> qe.Query:
        return qe.Query.Nearest(self._bm25.embed_query(text), using=SPARSE)


def edge_config(dim: int) -> qe.EdgeConfig:
    return qe.EdgeConfig(
        vectors={DENSE: qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine)},
        sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
    )


def _fill(shard: qe.EdgeShard, dense: CollectionDenseStore) -> dict[str, object]:
    """Copy every point of ``dense`` with its BM25 vector; returns the BM25 configuration."""
    rows: list[tuple[str, list[float], str, str]] = []
    for point_id, vector, payload in dense.points():
        chunk = chunk_from_payload(payload)
        rows.append((point_id, vector, chunk.doc_id, bm25_text(chunk)))
    # Qdrant's Bm25 normalises document length by avg_len (default 256 tokens, far from a
    # chunk's length): give it this corpus's mean, in whitespace tokens (Bm25 keeps its
    # token counts to itself).
    average = statistics.fmean(max(1, len(t.split())) for *_, t in rows) if rows else 1.0
    bm25 = qe.Bm25(qe.Bm25Config(language=BM25_LANGUAGE, avg_len=average))
    for start in range(0, len(rows), BATCH):
        points = [
            qe.Point(
                id=pid,
                vector={DENSE: vec, SPARSE: bm25.embed_document(text)},
                payload={"doc_id": doc_id},
            )
            for pid, vec, doc_id, text in rows[start : start + BATCH]
        ]
        shard.update(qe.UpdateOperation.upsert_points(points))
    return {"language": BM25_LANGUAGE, "avg_len": average, "points": len(rows)}


def _hits(points: Sequence[qe.ScoredPoint]) -> list[PeerHit]:
    return [
        PeerHit(str(p.id), str((p.payload or {}).get("doc_id", "")), float(p.score)) for p in points
    ]


def settle_ties(hits: Sequence[PeerHit], limit: int) -> list[PeerHit]:
    """The best ``limit`` hits, equal scores ordered by point id.

    Qdrant's RRF does not break ties, and they are common (a point at position i of one leg
    only scores as one at position i of the other; swapped positions sum alike), and it
    collects points in a randomly seeded hash map, so their order changes from process to
    process. Asked for the whole fused list and settled here, a peer run is reproducible.
    """
    return sorted(hits, key=lambda h: (-h.score, h.point_id))[:limit]


def timed_query(
    peer: PeerShard,
    embedder: Embedder,
    text: str,
    *,
    limit: int,
    candidates: int,
    rrf_k: int = QDRANT_DEFAULT_RRF_K,
) -> tuple[list[PeerHit], dict[str, float]]:
    """Embed ``text`` with braid's embedder, run the peer query; hits and timings in ms."""
    started = time.perf_counter()
    vector = embedder.encode_queries([text])[0].tolist()
    embedded = time.perf_counter()
    hits = peer.query(vector, text, limit=limit, candidates=candidates, rrf_k=rrf_k)
    done = time.perf_counter()
    return hits, {
        "embed": (embedded - started) * 1e3,
        "query": (done - embedded) * 1e3,
        "total": (done - started) * 1e3,
    }


# -- the peer as an evaluation mode ---------------------------------------------------------


STAMPED_STATE = ("corpus_sha256", "documents", "chunks", "embedding_model", "chunking")


def peer_key(state: Mapping[str, object]) -> dict[str, object]:
    """What of an eval index's state the peer shard is built from (its stamp)."""
    return {k: state.get(k) for k in STAMPED_STATE}


def open_peer(index: EvalIndex) -> PeerShard:
    """The index's peer shard, built on first use and whenever the index changed."""
    engine = index.workspace.engine
    return PeerShard.open(
        engine.dense, engine.embedder.info.dim, index.data_dir / PEER_DIR, peer_key(index.state)
    )


@dataclass(frozen=True)
class PeerParams:
    """The peer's run parameters: braid's depth, documents and candidate depth, resolved as a
    hybrid run resolves them (``of``), and Qdrant's fusion."""

    depth: int
    docs: int
    candidates: int
    rrf_k: int = QDRANT_DEFAULT_RRF_K

    @classmethod
    def of(cls, searcher: HybridSearcher, params: RunParams) -> PeerParams:
        resolved = replace(params, mode="hybrid").resolve(searcher)
        return cls(resolved.depth, resolved.docs, resolved.candidates or resolved.depth)

    def as_dict(self) -> dict[str, object]:
        return {
            "mode": PEER_MODE,
            "depth": self.depth,
            "docs": self.docs,
            "candidates": self.candidates,
            "fusion": "qdrant-rrf",
            "rrf_k": self.rrf_k,
            "rrf_formula": "1 / (k + position), positions 0-based",
            "ties": "by point id",
            "prefetch": [DENSE, f"{SPARSE} (Qdrant Bm25 {BM25_LANGUAGE}, IDF modifier)"],
        }

    @property
    def fusion(self) -> str:
        """The peer's fusion, named for reports."""
        return f"Qdrant Edge prefetch dense+bm25, RRF k={self.rrf_k}"

    def label(self) -> str:
        return f"{PEER_MODE}: {self.fusion} c={self.candidates}"


def evaluate_peer(
    peer: PeerShard,
    searcher: HybridSearcher,
    dataset: Dataset,
    params: RunParams,
    *,
    context: Mapping[str, object] | None = None,
    runs_dir: Path | None = None,
    warmup: int = 3,
    on_query: Callable[[int, int], None] | None = None,
) -> ModeResult:
    """The peer over every judged query, grouped into documents as braid's runs are.

    The query vector comes from the searcher's embedder (the same model, the same prefix), the
    candidate depth and the number of chunks asked for are those of a braid hybrid run with
    ``params``.
    """
    p = PeerParams.of(searcher, params)
    embedder = searcher.embedder

    def run_one(text: str) -> tuple[list[PeerHit], dict[str, float]]:
        # every fused point (each leg adds at most ``candidates``), then ties settled
        hits, timings = timed_query(
            peer, embedder, text, limit=2 * p.candidates, candidates=p.candidates, rrf_k=p.rrf_k
        )
        return settle_ties(hits, p.depth), timings

    for text in list(dataset.queries.values())[:warmup]:
        run_one(text)
    ranking: dict[str, list[tuple[str, float]]] = {}
    timings: dict[str, dict[str, float]] = {}
    total = len(dataset.queries)
    for i, (qid, text) in enumerate(dataset.queries.items(), start=1):
        hits, timings[qid] = run_one(text)
        ranking[qid] = rank_documents(((h.doc_id, h.score) for h in hits), p.docs)
        if on_query is not None:
            on_query(i, total)
    model = embedder.info
    meta: dict[str, object] = {
        "dataset": dataset.name,
        "split": dataset.split,
        "mode": PEER_MODE,
        "params": p.as_dict(),
        "label": p.label(),
        "embedding_model": {"id": model.model_id, "version": model.version},
        "reranker_model": None,
        "peer": {
            "engine": f"qdrant-edge-py {version('qdrant-edge-py')}",
            "fusion": p.fusion,
            "shard": str(peer.path),
            "built": peer.built,
            "bm25": peer.stamp.get("bm25"),
        },
        "queries": total,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        **dict(context or {}),
    }
    meta["tag"] = run_tag(meta)
    return scored_result(
        PEER_MODE, Run(ranking=ranking, timings=timings, meta=meta), dataset, runs_dir
    )
