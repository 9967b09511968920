"""Rank fusion: weighted reciprocal rank fusion, and a score-based convex combination."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from braid.engine.models import Hit, ScoredPoint, StageScore

RRF_K = 60  # Cormack, Clarke & Buettcher 2009; ranks are 1-based, so rank 1 adds w / 61.


def weighted_rrf(
    rankings: Mapping[str, Sequence[ScoredPoint]],
    weights: Mapping[str, float] | None = None,
    k: float = RRF_K,
) -> list[Hit]:
    """Fuse ranked lists with ``score = sum_i w_i / (k + rank_i)``, ranks 1-based.

    Args:
        rankings: each retriever's hits, best first.
        weights: per-retriever weight (missing: 1.0). A weight of 0 keeps the retriever's
            ranks in the explanation but gives it no say.
        k: the RRF constant; smaller k favours the top of each list.

    Returns:
        Fused hits, best first. Ties go to the hit with the better best rank, then to the
        smaller point id, so the order is deterministic. Each hit carries every retriever's
        rank and score under the retriever's name and its fused rank/score under ``"rrf"``.
    """
    weights = weights or {}
    hits: dict[str, Hit] = {}
    for name, ranking in rankings.items():
        weight = float(weights.get(name, 1.0))
        for rank, point in enumerate(ranking, start=1):
            hit = hits.get(point.point_id)
            if hit is None:
                hit = hits[point.point_id] = Hit(point_id=point.point_id, score=0.0)
            hit.score += weight / (k + rank)
            hit.stages[name] = StageScore(rank=rank, score=point.score)
    return _ranked(hits.values(), "rrf")


def convex_fusion(
    rankings: Mapping[str, Sequence[ScoredPoint]],
    weights: Mapping[str, float] | None = None,
) -> list[Hit]:
    """Fuse by a weighted sum of min-max normalised scores (Bruch et al. 2023).

    A hit missing from a retriever's list gets 0 from it (the bottom of its range).
    Fused rank and score go under ``"convex"``.
    """
    weights = weights or {}
    hits: dict[str, Hit] = {}
    for name, ranking in rankings.items():
        if not ranking:
            continue
        weight = float(weights.get(name, 1.0))
        scores = [p.score for p in ranking]
        low, high = min(scores), max(scores)
        span = high - low
        for rank, point in enumerate(ranking, start=1):
            normalised = (point.score - low) / span if span > 0 else 1.0
            hit = hits.get(point.point_id)
            if hit is None:
                hit = hits[point.point_id] = Hit(point_id=point.point_id, score=0.0)
            hit.score += weight * normalised
            hit.stages[name] = StageScore(rank=rank, score=point.score)
    return _ranked(hits.values(), "convex")


def single(ranking: Sequence[ScoredPoint], name: str) -> list[Hit]:
    """Hits of one retriever, in its order, with its rank and score as the explanation."""
    return [
        Hit(point_id=p.point_id, score=p.score, stages={name: StageScore(rank=r, score=p.score)})
        for r, p in enumerate(ranking, start=1)
    ]


def _ranked(hits: Iterable[Hit], stage: str) -> list[Hit]:
    def key(hit: Hit) -> tuple[float, int, str]:
        return (-hit.score, min(s.rank for s in hit.stages.values()), hit.point_id)

    ordered = sorted(hits, key=key)
    for rank, hit in enumerate(ordered, start=1):
        hit.stages[stage] = StageScore(rank=rank, score=hit.score)
    return ordered
