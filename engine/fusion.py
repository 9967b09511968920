"""Fusion of ranked lists: weighted RRF, three score fusions (min-max, DBSF, z-score), and
adaptive fusion (min-max with per-query weights, ``engine/adaptive.py``).

Every method takes each retriever's hits best first (``{name: [ScoredPoint, ...]}``) and
per-retriever weights (missing: 1.0), and returns fused hits best first. Each hit keeps
every retriever's rank and raw score under the retriever's name and its fused rank and score
under the method's name (``"rrf"``, ``"convex"``, ``"dbsf"``, ``"zscore"``, ``"adaptive"``). Ties go to the
hit with the better best rank, then to the smaller point id, so the order is deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Literal, get_args

from braid.engine.adaptive import AdaptiveRule, rule_for_model
from braid.engine.models import DEFAULT_MODEL, Hit, ScoredPoint, StageScore

RRF_K = 60  # Cormack, Clarke & Buettcher 2009; ranks are 1-based, so rank 1 adds w / 61.
DBSF_SIGMAS = 3.0  # Qdrant's distribution-based score fusion: mean +- 3 sample sd is [0, 1].

FusionMethod = Literal["adaptive", "rrf", "convex", "dbsf", "zscore"]
FUSION_METHODS: tuple[FusionMethod, ...] = get_args(FusionMethod)

# One leg's raw scores (best first, at least one) -> their normalised values, and the value
# a hit absent from that leg gets from it.
_Normalise = Callable[[Sequence[float]], list[float]]
_Missing = Callable[[Sequence[float]], float]


def fuse(
    method: FusionMethod,
    rankings: Mapping[str, Sequence[ScoredPoint]],
    weights: Mapping[str, float] | None = None,
    k: float = RRF_K,
    rule: AdaptiveRule | None = None,
) -> list[Hit]:
    """Fuse with the named method: the one dispatch the searcher, settings and API share.

    Args:
        method: ``adaptive``, ``rrf``, ``convex`` (min-max), ``dbsf`` or ``zscore``.
        rankings: each retriever's hits, best first.
        weights: per-retriever weight (missing: 1.0).
        k: the RRF constant (used by ``rrf`` only).
        rule: the per-query weighting of ``adaptive`` (default: the packaged rule for
            braid's default embedding model).

    Returns:
        Fused hits, best first, with the explanation described in the module docstring.

    Raises:
        ValueError: ``method`` is not one of ``FUSION_METHODS``.
    """
    if method == "adaptive":
        return adaptive_fusion(rankings, weights, rule)
    return _fixed(method, rankings, weights, k)


def fuse_explained(
    method: FusionMethod,
    rankings: Mapping[str, Sequence[ScoredPoint]],
    weights: Mapping[str, float] | None = None,
    k: float = RRF_K,
    rule: AdaptiveRule | None = None,
) -> tuple[list[Hit], dict[str, float]]:
    """``fuse``, and the per-retriever weights it used (adaptive: this query's own)."""
    if method == "adaptive":
        effective = adaptive_weights(rankings, weights, rule)
        return _score_fusion(rankings, effective, _min_max, _zero, "adaptive"), effective
    given = weights or {}
    used = {name: float(given.get(name, 1.0)) for name in ("bm25", "dense")}
    return _fixed(method, rankings, weights, k), used


def _fixed(
    method: FusionMethod,
    rankings: Mapping[str, Sequence[ScoredPoint]],
    weights: Mapping[str, float] | None,
    k: float,
) -> list[Hit]:
    if method == "rrf":
        return weighted_rrf(rankings, weights, k)
    if method == "convex":
        return convex_fusion(rankings, weights)
    if method == "dbsf":
        return dbsf_fusion(rankings, weights)
    if method == "zscore":
        return zscore_fusion(rankings, weights)
    raise ValueError(f"fusion method must be one of {FUSION_METHODS}, got {method!r}")


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
    best_rank: dict[str, int] = {}
    for name, ranking in rankings.items():
        weight = float(weights.get(name, 1.0))
        for rank, point in enumerate(ranking, start=1):
            point_id = point.point_id
            hit = hits.get(point_id)
            if hit is None:
                hit = hits[point_id] = Hit(point_id, 0.0)
                best_rank[point_id] = rank
            else:
                best_rank[point_id] = min(rank, best_rank[point_id])
            hit.score += weight / (k + rank)
            hit.stages[name] = StageScore(rank, point.score)
    return _ranked(hits.values(), "rrf", best_rank)


def convex_fusion(
    rankings: Mapping[str, Sequence[ScoredPoint]],
    weights: Mapping[str, float] | None = None,
) -> list[Hit]:
    """Fuse by ``sum_i w_i * (s_i - min_i) / (max_i - min_i)`` (Bruch et al. 2023).

    A hit missing from a retriever's list gets 0 from it (the bottom of its range). A list
    whose scores are all equal (one hit included) normalises every hit to 1: the list found
    them and says nothing more. An empty list contributes nothing. Fused rank and score go
    under ``"convex"``.

    Args:
        rankings: each retriever's hits, best first.
        weights: per-retriever weight (missing: 1.0).

    Returns:
        Fused hits, best first.
    """
    return _score_fusion(rankings, weights, _min_max, _zero, "convex")


def dbsf_fusion(
    rankings: Mapping[str, Sequence[ScoredPoint]],
    weights: Mapping[str, float] | None = None,
) -> list[Hit]:
    """Qdrant's distribution-based score fusion, weighted: ``sum_i w_i * n_i``.

    ``n_i = (s - (m - 3 sd)) / (6 sd)`` with ``m`` the mean and ``sd`` the sample standard
    deviation (``n - 1``) of the list's scores, as in Qdrant's ``distr_norm``
    (``lib/segment/src/common/score_fusion.rs``) and qdrant-client's local mode. Like
    Qdrant, the result is not clipped: a score beyond 3 sd (possible from 11 hits on) maps
    outside [0, 1]. A list with one hit, or whose scores are all equal, gives each hit 0.5;
    a hit missing from a list gets 0 from it; an empty list contributes nothing. Fused rank
    and score go under ``"dbsf"``.

    Args:
        rankings: each retriever's hits, best first (larger scores better).
        weights: per-retriever weight (missing: 1.0), multiplying the normalised score.

    Returns:
        Fused hits, best first.
    """
    return _score_fusion(rankings, weights, _distribution, _zero, "dbsf")


def zscore_fusion(
    rankings: Mapping[str, Sequence[ScoredPoint]],
    weights: Mapping[str, float] | None = None,
) -> list[Hit]:
    """Fuse by ``sum_i w_i * (s_i - m_i) / sd_i``, ``sd_i`` the population sd (as ranx's zmuv).

    A hit missing from a list gets that list's minimum z, not 0: the list did not rank it
    above its last hit, so its z is at most the last one's, and 0 (the list's mean) would
    put an absent hit above every present hit in the list's lower half. The minimum is the
    highest value consistent with that. A list with one hit, or whose scores are all equal,
    gives every hit (and every absent one) z = 0, so it cannot separate them; an empty list
    contributes nothing. Fused rank and score go under ``"zscore"``.

    Args:
        rankings: each retriever's hits, best first.
        weights: per-retriever weight (missing: 1.0).

    Returns:
        Fused hits, best first.
    """
    return _score_fusion(rankings, weights, _standardise, _min_of_standardised, "zscore")


def adaptive_weights(
    rankings: Mapping[str, Sequence[ScoredPoint]],
    weights: Mapping[str, float] | None = None,
    rule: AdaptiveRule | None = None,
) -> dict[str, float]:
    """This query's weights under ``rule``: its BM25 share times ``weights["bm25"]`` and the
    rest times ``weights["dense"]`` (missing: 1.0), the share from the dense list's top score.

    The rule weighs two lists against each other, so it steps aside when there is nothing to
    weigh: when one list is empty, or one weight is 0 (that retriever is switched off), the
    given weights are used as they are.
    """
    chosen = rule if rule is not None else rule_for_model(DEFAULT_MODEL)
    weights = weights or {}
    given = {name: float(weights.get(name, 1.0)) for name in ("bm25", "dense")}
    dense, bm25 = rankings.get("dense") or (), rankings.get("bm25") or ()
    if not dense or not bm25 or 0.0 in given.values():
        return given
    share = chosen.bm25_share(dense[0].score)
    return {"bm25": given["bm25"] * share, "dense": given["dense"] * (1.0 - share)}


def adaptive_fusion(
    rankings: Mapping[str, Sequence[ScoredPoint]],
    weights: Mapping[str, float] | None = None,
    rule: AdaptiveRule | None = None,
) -> list[Hit]:
    """Convex (min-max) fusion with this query's weights from ``adaptive_weights``.

    With weights of at most 1 (the default is 1:1) the two shares sum to at most 1, so the
    fused score, a weighted sum of values in [0, 1], lies in [0, 1] too. Fused rank and score
    go under ``"adaptive"``.

    Args:
        rankings: ``bm25`` and ``dense`` hits, best first.
        weights: multiply the rule's shares (missing: 1.0); ``{"bm25": 0}`` leaves dense alone.
        rule: the per-query weighting (default: the packaged rule for the default model).

    Returns:
        Fused hits, best first.
    """
    return fuse_explained("adaptive", rankings, weights, rule=rule)[0]


def blend_rerank(
    first_stage: Sequence[float], reranked: Sequence[float], share: float
) -> list[float]:
    """Each reranked hit's final score: ``share`` of its min-max normalised cross-encoder
    score plus ``1 - share`` of its min-max normalised first-stage score, both over the
    reranked head, so the result lies in [0, 1] whatever the two scales.

    ``share = 1`` orders by the cross-encoder alone. Interpolating a reranker with the
    retrieval score it reranks is the usual remedy when the first stage carries signal the
    cross-encoder lacks (Anserini's and Pyserini's reranking interpolation).
    """
    if len(first_stage) != len(reranked):
        raise ValueError("first_stage and reranked must score the same hits")
    if not reranked:
        return []
    cross = _min_max(reranked)
    first = _min_max(first_stage)
    return [share * c + (1.0 - share) * f for c, f in zip(cross, first, strict=True)]


def single(ranking: Sequence[ScoredPoint], name: str) -> list[Hit]:
    """Hits of one retriever, in its order, with its rank and score as the explanation."""
    return [
        Hit(point_id=p.point_id, score=p.score, stages={name: StageScore(rank=r, score=p.score)})
        for r, p in enumerate(ranking, start=1)
    ]


def _score_fusion(
    rankings: Mapping[str, Sequence[ScoredPoint]],
    weights: Mapping[str, float] | None,
    normalise: _Normalise,
    missing: _Missing,
    stage: str,
) -> list[Hit]:
    weights = weights or {}
    hits: dict[str, Hit] = {}
    best_rank: dict[str, int] = {}  # each hit's best rank in any list: the first tie-break
    legs: list[tuple[float, dict[str, float], float]] = []
    for name, ranking in rankings.items():
        if not ranking:
            continue
        values = normalise([p.score for p in ranking])
        by_id: dict[str, float] = {}
        for rank, (point, value) in enumerate(zip(ranking, values, strict=True), start=1):
            point_id = point.point_id
            by_id[point_id] = value
            hit = hits.get(point_id)
            if hit is None:
                hits[point_id] = Hit(point_id, 0.0, {name: StageScore(rank, point.score)})
                best_rank[point_id] = rank
            else:
                hit.stages[name] = StageScore(rank, point.score)
                best_rank[point_id] = min(rank, best_rank[point_id])
        legs.append((float(weights.get(name, 1.0)), by_id, missing(values)))
    for point_id, hit in hits.items():
        # Summed in the rankings' order for every hit, so equal inputs give equal floats.
        score = 0.0
        for weight, by_id, absent in legs:
            score += weight * by_id.get(point_id, absent)
        hit.score = score
    return _ranked(hits.values(), stage, best_rank)


def _mean_sd(scores: Sequence[float], ddof: int) -> tuple[float, float]:
    mean = math.fsum(scores) / len(scores)
    variance = math.fsum((s - mean) ** 2 for s in scores) / (len(scores) - ddof)
    return mean, math.sqrt(variance)


def _min_max(scores: Sequence[float]) -> list[float]:
    low, high = min(scores), max(scores)
    if high == low:
        return [1.0] * len(scores)
    return [(s - low) / (high - low) for s in scores]


def _distribution(scores: Sequence[float]) -> list[float]:
    # All equal (one hit included): Qdrant's guard against a zero range gives 0.5. Tested on
    # the scores themselves, since a float mean of equal values need not equal them exactly.
    if max(scores) == min(scores):
        return [0.5] * len(scores)
    mean, sd = _mean_sd(scores, ddof=1)
    low, high = mean - DBSF_SIGMAS * sd, mean + DBSF_SIGMAS * sd
    return [(s - low) / (high - low) for s in scores]


def _standardise(scores: Sequence[float]) -> list[float]:
    if max(scores) == min(scores):
        return [0.0] * len(scores)
    mean, sd = _mean_sd(scores, ddof=0)
    return [(s - mean) / sd for s in scores]


def _zero(values: Sequence[float]) -> float:  # noqa: ARG001  # the _Missing signature
    return 0.0


def _min_of_standardised(values: Sequence[float]) -> float:
    return min(values)


def _ranked(
    hits: Collection[Hit], stage: str, best_rank: Mapping[str, int] | None = None
) -> list[Hit]:
    """Hits by fused score, then best rank in any list, then point id; ranked under ``stage``.

    ``best_rank`` (each hit's best rank, when the caller has it) saves looking it up again.
    """
    if best_rank is None:
        best_rank = {h.point_id: min(s.rank for s in h.stages.values()) for h in hits}
    ranks = best_rank
    ordered = sorted(hits, key=lambda h: (-h.score, ranks[h.point_id], h.point_id))
    for rank, hit in enumerate(ordered, start=1):
        hit.stages[stage] = StageScore(rank, hit.score)
    return ordered
