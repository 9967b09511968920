"""Tune fusion on a train split: a grid over RRF k, weights, score fusion and candidate depth.

Only the train split is ever seen here: ``run_sweep`` takes one ``Dataset`` (the train split),
and the command that calls it loads the test split only after the choice is made, to report it.
Every point runs every train query through ``HybridSearcher.search`` (the product's path) with
that point's parameters; a ``CachingEmbedder`` spares re-encoding the same queries per point.

The grid, in two stages (a full product of all four axes is 4x slower and moves nothing):

1. at the default depth: RRF with ``k`` in ``RRF_KS`` x the BM25 share of the weights in
   ``BM25_SHARES`` (dense gets the rest; RRF is scale-free in the weights, so shares suffice), and
   convex fusion of min-max normalised scores (Bruch et al. 2023) with ``alpha_bm25`` in
   ``ALPHAS``;
2. at the best RRF and the best convex point: candidate depth in ``CANDIDATES``.

The chosen point is the best train nDCG@10; ties go to the earlier point (smaller depth first).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from braid.engine.fusion import FusionMethod
from braid.engine.searcher import HybridSearcher
from braid.eval.datasets import Dataset
from braid.eval.metrics import PRIMARY, per_query, summarize
from braid.eval.runs import RunParams, execute_run
from braid.eval.stats import latency_summary

RRF_KS: tuple[float, ...] = (1, 5, 10, 20, 40, 60, 100)
BM25_SHARES: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6, 0.7)
ALPHAS: tuple[float, ...] = (0.2, 0.3, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7, 0.8)
CANDIDATES: tuple[int, ...] = (50, 100, 200, 400)
DEFAULT_CANDIDATES = 200


@dataclass(frozen=True)
class SweepPoint:
    params: RunParams
    metrics: dict[str, float]
    latency_p50_ms: float

    def as_dict(self) -> dict[str, object]:
        return {
            "params": self.params.as_dict(),
            "label": self.params.label(),
            "metrics": self.metrics,
            "latency_p50_ms": self.latency_p50_ms,
        }


def _weights(bm25_share: float) -> dict[str, float]:
    return {"bm25": round(bm25_share, 4), "dense": round(1.0 - bm25_share, 4)}


def fusion_params(
    fusion: FusionMethod, candidates: int, *, rrf_k: float | None = None, bm25_share: float = 0.5
) -> RunParams:
    """A hybrid point whose top 10 is exactly what the API returns with these values."""
    return RunParams(
        mode="hybrid",
        depth=candidates,
        candidates=candidates,
        weights=_weights(bm25_share),
        rrf_k=rrf_k if fusion == "rrf" else None,
        fusion=fusion,
    )


def first_stage_grid(
    ks: Sequence[float] = RRF_KS,
    shares: Sequence[float] = BM25_SHARES,
    alphas: Sequence[float] = ALPHAS,
    candidates: int = DEFAULT_CANDIDATES,
) -> list[RunParams]:
    grid = [fusion_params("rrf", candidates, rrf_k=k, bm25_share=w) for k in ks for w in shares]
    grid += [fusion_params("convex", candidates, bm25_share=a) for a in alphas]
    return grid


def evaluate_point(searcher: HybridSearcher, train: Dataset, params: RunParams) -> SweepPoint:
    run = execute_run(searcher, train, params)
    means = summarize(per_query(run.as_scores(), train.qrels))
    latency = latency_summary(run.timings).get("total", {}).get("p50", 0.0)
    return SweepPoint(params=params.resolve(searcher), metrics=means, latency_p50_ms=latency)


def best(
    points: Sequence[SweepPoint], metric: str = PRIMARY, fusion: str | None = None
) -> SweepPoint:
    pool = [p for p in points if fusion is None or p.params.fusion == fusion]
    if not pool:
        raise ValueError("no sweep points to choose from")
    top = pool[0]
    for point in pool[1:]:
        if point.metrics[metric] > top.metrics[metric] + 1e-12:
            top = point
    return top


def run_sweep(
    searcher: HybridSearcher,
    train: Dataset,
    *,
    grid: Sequence[RunParams] | None = None,
    candidates: Sequence[int] = CANDIDATES,
    metric: str = PRIMARY,
    on_point: Callable[[int, int, SweepPoint], None] | None = None,
) -> list[SweepPoint]:
    """Score every grid point on ``train`` (the only split this function is given).

    Returns:
        Every point evaluated, the first stage in grid order, then the depth variations.
    """
    first = list(grid if grid is not None else first_stage_grid())
    depth_points = len(candidates) * 2
    total = len(first) + depth_points
    points: list[SweepPoint] = []
    for params in first:
        points.append(evaluate_point(searcher, train, params))
        if on_point is not None:
            on_point(len(points), total, points[-1])
    seen = {(p.params.fusion, p.params.label()) for p in points}
    for fusion in ("rrf", "convex"):
        if not any(p.params.fusion == fusion for p in points):
            continue
        anchor = best(points, metric, fusion).params
        for depth in candidates:
            params = replace(anchor, depth=depth, candidates=depth)
            if (params.fusion, params.label()) in seen:
                continue
            seen.add((params.fusion, params.label()))
            points.append(evaluate_point(searcher, train, params))
            if on_point is not None:
                on_point(len(points), total, points[-1])
    return points


def profile_from(
    point: SweepPoint,
    train: Dataset,
    *,
    metric: str = PRIMARY,
    rerank_depth: int | None = None,
    reranker_model: str | None = None,
    embedding_model: dict[str, object] | None = None,
) -> dict[str, object]:
    """The profile JSON for a chosen point (see ``engine.profiles``)."""
    p = point.params
    return {
        "fusion": p.fusion,
        "weights": dict(p.weights or {}),
        "rrf_k": p.rrf_k if p.fusion == "rrf" else None,
        "candidates": p.candidates,
        "rerank_depth": rerank_depth,
        "reranker_model": reranker_model,
        "tuned_on": {
            "dataset": train.name,
            "split": train.split,
            "queries": len(train.queries),
            "metric": metric,
            "score": point.metrics[metric],
            "embedding_model": embedding_model,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    }
