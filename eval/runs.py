"""Runs: every query of a split through ``HybridSearcher.search``, ranked by document.

There is no evaluation-only retrieval code: a run calls the same ``search`` the CLI and the API
call, with explicit parameters, and keeps what it returns. Chunks are the unit of retrieval,
documents the unit of judgement: a run asks the searcher for ``docs`` documents
(``group_by="document"``), grouped by the engine's own rules (``engine/grouping.py``: a
document's place is its first chunk's, its score that chunk's). There is no evaluation-only
aggregation.

``depth`` (default 200) is the least number of chunks each retriever contributes, so that 100
documents (Recall@100) can be filled although several chunks of one document take several
places. ``candidates`` (hits per retriever) defaults to the searcher's default (settings or
profile) but is never below the depth, and run files record the value in effect. A sweep sets
``depth = candidates`` so that each point's top 10 is exactly what the API returns with it.

The peer (``peer-qdrant``, ``eval.peer``) is not a braid mode: Qdrant Edge's own hybrid query
over the same stored vectors, grouped into documents by the same ``group_documents``.

Run files are TREC runs (``qid Q0 docid rank score tag``) with a JSON sidecar holding the
dataset, split, mode, parameters, model ids and versions and the index state. The score column
is rank-derived (``docs + 1 - rank``): a reranked run mixes cross-encoder scores (head) with fused
scores (tail), and tied fused scores would be re-ordered arbitrarily by trec_eval-style tools,
so only rank-derived scores make every tool evaluate exactly the order braid returned.
"""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, get_args

from braid.engine.models import SearchMode, SearchResponse
from braid.engine.searcher import FusionLevel, FusionMethod, HybridSearcher
from braid.eval.datasets import Dataset

ModeName = Literal["bm25", "dense", "hybrid", "hybrid+rerank", "bm25+rerank"]
MODES: tuple[str, ...] = get_args(ModeName)
SINGLE_MODES = ("bm25", "dense")
DEFAULT_MODES: tuple[str, ...] = ("bm25", "dense", "hybrid", "hybrid+rerank")
# Not braid modes: a peer engine's own hybrid query over the same index (eval.peer); opt-in.
PEER_MODE = "peer-qdrant"
PEER_MODES: tuple[str, ...] = (PEER_MODE,)
DEFAULT_DEPTH = 200  # chunks asked for, to fill 100 documents
DEFAULT_DOCS = 100  # documents kept per query (Recall@100, MAP@100)


class UnknownModeError(ValueError):
    pass


def split_mode(mode: str) -> tuple[SearchMode, bool]:
    """``hybrid+rerank`` -> (``hybrid``, True)."""
    if mode not in MODES:
        raise UnknownModeError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
    base, _, suffix = mode.partition("+")
    search_mode: SearchMode = base  # type: ignore[assignment]
    return search_mode, suffix == "rerank"


@dataclass(frozen=True)
class RunParams:
    """Everything that decides a run's ranking, besides the index and the models.

    ``None`` means the searcher's default (from ``Settings`` or a profile); ``resolve`` fills
    them in so that run files record the values actually used.
    """

    mode: str = "hybrid"
    depth: int = DEFAULT_DEPTH
    docs: int = DEFAULT_DOCS
    candidates: int | None = None
    weights: Mapping[str, float] | None = None
    rrf_k: float | None = None
    fusion: FusionMethod | None = None
    rerank_depth: int | None = None
    fusion_level: FusionLevel | None = None
    rerank_blend: float | None = None

    def resolve(self, searcher: HybridSearcher) -> RunParams:
        d = searcher.defaults
        _, rerank = split_mode(self.mode)
        return RunParams(
            mode=self.mode,
            depth=self.depth,
            docs=self.docs,
            # the searcher fetches at least top_k (= depth) hits per retriever
            candidates=max(self.candidates or d.candidates, self.depth),
            weights=dict(self.weights if self.weights is not None else d.weights),
            rrf_k=self.rrf_k if self.rrf_k is not None else d.rrf_k,
            fusion=self.fusion or d.fusion,
            rerank_depth=(self.rerank_depth or d.rerank_depth) if rerank else None,
            rerank_blend=(
                (self.rerank_blend if self.rerank_blend is not None else d.rerank_blend)
                if rerank
                else None
            ),
            fusion_level=self.fusion_level or d.fusion_level,
        )

    def as_dict(self) -> dict[str, object]:
        search_mode, rerank = split_mode(self.mode)
        out: dict[str, object] = {
            "mode": self.mode,
            "depth": self.depth,
            "docs": self.docs,
            "candidates": self.candidates,
        }
        if search_mode == "hybrid":
            out |= {
                "fusion": self.fusion,
                "weights": dict(self.weights) if self.weights is not None else None,
            }
            if self.fusion == "rrf":  # the only method with a k
                out["rrf_k"] = self.rrf_k
            if self.fusion_level == "document":  # absent at the default: old tags unchanged
                out["fusion_level"] = self.fusion_level
        if rerank:
            out["rerank_depth"] = self.rerank_depth
            if self._blended():  # absent at 1: old tags unchanged
                out["rerank_blend"] = self.rerank_blend
        return out

    def _blended(self) -> bool:
        """Reranked hits mix in the first stage (a blend below 1)."""
        return self.rerank_blend is not None and self.rerank_blend < 1

    def label(self) -> str:
        """Short human label: ``hybrid rrf k=60 w=1:1 c=200``."""
        search_mode, rerank = split_mode(self.mode)
        parts = [self.mode]
        if search_mode == "hybrid":
            w = self.weights or {}
            parts.append(str(self.fusion))
            if self.fusion == "rrf":  # the only method with a k
                parts.append(f"k={_num(self.rrf_k)}")
            parts.append(f"w={_num(w.get('bm25', 1.0))}:{_num(w.get('dense', 1.0))}")
            if self.fusion_level == "document":
                parts.append("level=document")
        parts.append(f"c={self.candidates}")
        if rerank:
            parts.append(f"rd={self.rerank_depth}")
            if self._blended():
                parts.append(f"blend={_num(self.rerank_blend)}")
        return " ".join(parts)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


@dataclass
class Run:
    """Ranked documents per query, latency per query and stage, and where they came from."""

    ranking: dict[str, list[tuple[str, float]]]  # query id -> [(doc id, best chunk score)]
    timings: dict[str, dict[str, float]] = field(default_factory=dict)
    meta: dict[str, object] = field(default_factory=dict)

    @property
    def mode(self) -> str:
        return str(self.meta.get("mode", ""))

    def as_scores(self) -> dict[str, dict[str, float]]:
        """query -> doc -> rank-derived score (higher is better), for metric libraries."""
        return {
            qid: {doc: float(len(docs) - i) for i, (doc, _) in enumerate(docs)}
            for qid, docs in self.ranking.items()
        }

    def doc_ids(self, query_id: str, k: int | None = None) -> list[str]:
        docs = [d for d, _ in self.ranking.get(query_id, [])]
        return docs if k is None else docs[:k]


def search_once(searcher: HybridSearcher, query: str, params: RunParams) -> SearchResponse:
    """One query through the product's query path, with every parameter explicit."""
    search_mode, rerank = split_mode(params.mode)
    return searcher.search(
        query,
        top_k=params.docs,
        mode=search_mode,
        weights=params.weights,
        rrf_k=params.rrf_k,
        candidates=params.candidates,
        rerank=rerank,
        rerank_depth=params.rerank_depth,
        rerank_blend=params.rerank_blend,
        fusion=params.fusion,
        group_by="document",
        passages=1,
        fusion_level=params.fusion_level,
    )


def execute_run(
    searcher: HybridSearcher,
    dataset: Dataset,
    params: RunParams,
    *,
    context: Mapping[str, object] | None = None,
    on_query: Callable[[int, int], None] | None = None,
) -> Run:
    """Run every judged query of ``dataset`` through ``searcher.search``.

    Args:
        searcher: the product's searcher over the dataset's index.
        dataset: queries and qrels of one split (only query texts are used here).
        params: mode and fusion parameters; ``None`` fields take the searcher's defaults.
        context: extra metadata for the run file (index state, profile name).
        on_query: called with (done, total) after each query.

    Raises:
        InvalidRequestError: a parameter is out of range, or a rerank mode without a reranker.
    """
    resolved = params.resolve(searcher)
    ranking: dict[str, list[tuple[str, float]]] = {}
    timings: dict[str, dict[str, float]] = {}
    total = len(dataset.queries)
    for i, (qid, text) in enumerate(dataset.queries.items(), start=1):
        response = search_once(searcher, text, resolved)
        ranking[qid] = [(d.doc_id, d.score) for d in response.documents or ()]
        timings[qid] = dict(response.timings_ms)
        if on_query is not None:
            on_query(i, total)
    _, rerank = split_mode(resolved.mode)
    model = searcher.embedder.info
    meta: dict[str, object] = {
        "dataset": dataset.name,
        "split": dataset.split,
        "mode": resolved.mode,
        "params": resolved.as_dict(),
        "label": resolved.label(),
        "embedding_model": {"id": model.model_id, "version": model.version},
        "reranker_model": searcher.reranker.model_id if rerank and searcher.reranker else None,
        "queries": total,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        **dict(context or {}),
    }
    meta["tag"] = run_tag(meta)
    return Run(ranking=ranking, timings=timings, meta=meta)


def run_tag(meta: Mapping[str, object]) -> str:
    """``braid.<dataset>.<split>.<mode>.<hash>``: the hash covers params, models and index."""
    keyed = {
        k: meta.get(k)
        for k in ("dataset", "split", "mode", "params", "embedding_model", "reranker_model")
    }
    index = meta.get("index")
    if isinstance(index, Mapping):
        keyed["corpus"] = index.get("corpus_sha256")
    digest = hashlib.sha256(json.dumps(keyed, sort_keys=True, default=str).encode()).hexdigest()
    return f"braid.{meta.get('dataset')}.{meta.get('split')}.{meta.get('mode')}.{digest[:8]}"


# -- TREC run files -------------------------------------------------------------------------


def write_trec(run: Run, path: Path) -> Path:
    """Write ``path`` (TREC run) and ``path.with_suffix('.json')`` (metadata); returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tag = str(run.meta.get("tag") or "braid")
    with path.open("w", encoding="utf-8") as handle:
        for qid, docs in run.ranking.items():
            for rank, (doc_id, _) in enumerate(docs, start=1):
                handle.write(f"{qid} Q0 {doc_id} {rank} {len(docs) + 1 - rank} {tag}\n")
    sidecar = {**run.meta, "timings_ms": run.timings}
    path.with_suffix(".json").write_text(json.dumps(sidecar, indent=1, default=str) + "\n")
    return path


def read_trec(path: Path) -> Run:
    """Read a TREC run (ordered by rank, then by score) and its sidecar when present."""
    rows: dict[str, list[tuple[int, float, str]]] = {}
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 6:
                raise ValueError(f"{path}:{number}: expected 'qid Q0 docid rank score tag'")
            qid, _, doc_id, rank, score, _ = parts
            rows.setdefault(qid, []).append((int(rank), -float(score), doc_id))
    ranking = {
        qid: [(doc, -neg) for _, neg, doc in sorted(entries)] for qid, entries in rows.items()
    }
    sidecar = path.with_suffix(".json")
    meta: dict[str, object] = {}
    timings: dict[str, dict[str, float]] = {}
    if sidecar.is_file():
        loaded = json.loads(sidecar.read_text())
        raw_timings = loaded.pop("timings_ms", {})
        timings = {q: {k: float(v) for k, v in t.items()} for q, t in raw_timings.items()}
        meta = loaded
    return Run(ranking=ranking, timings=timings, meta=meta)


def run_path(runs_dir: Path, run: Run) -> Path:
    tag = str(run.meta.get("tag", "braid.run"))
    return runs_dir / f"{tag.removeprefix('braid.')}.trec"
