"""Paired significance tests over per-query scores, with correction for multiple comparisons,
and latency percentiles.

Two systems on the same queries are compared by a two-sided paired randomisation test
(sign flips of the per-query differences; Smucker, Allan & Carterette 2007 recommend it for IR)
and by scipy's paired t-test; the p-values of a family of comparisons are adjusted by Holm's
step-down method (controls the family-wise error rate, never less powerful than Bonferroni).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

RANDOMISATION_TRIALS = 10_000
SEED = 20240917  # fixed: the same runs always give the same p-values


@dataclass(frozen=True)
class Comparison:
    system: str
    baseline: str
    metric: str
    mean_system: float
    mean_baseline: float
    delta: float
    p_randomisation: float
    p_ttest: float
    p_holm: float = 1.0  # randomisation p, Holm-adjusted within its family
    wins: int = 0
    losses: int = 0
    ties: int = 0

    @property
    def significant(self) -> bool:
        return self.p_holm < 0.05

    def as_dict(self) -> dict[str, object]:
        return {
            "system": self.system,
            "baseline": self.baseline,
            "metric": self.metric,
            "mean": self.mean_system,
            "baseline_mean": self.mean_baseline,
            "delta": self.delta,
            "p_randomisation": self.p_randomisation,
            "p_ttest": self.p_ttest,
            "p_holm": self.p_holm,
            "significant": self.significant,
            "wins": self.wins,
            "losses": self.losses,
            "ties": self.ties,
        }


def paired_arrays(a: Mapping[str, float], b: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """Scores of the queries both systems were evaluated on, aligned by query id."""
    shared = sorted(set(a) & set(b))
    return (
        np.array([a[q] for q in shared], dtype=np.float64),
        np.array([b[q] for q in shared], dtype=np.float64),
    )


def randomisation_test(
    a: np.ndarray, b: np.ndarray, trials: int = RANDOMISATION_TRIALS, seed: int = SEED
) -> float:
    """Two-sided p of the mean difference under random sign flips (exchangeability under H0)."""
    diff = a - b
    if diff.size == 0 or not np.any(diff):
        return 1.0
    observed = abs(diff.mean())
    rng = np.random.default_rng(seed)
    signs = rng.choice(np.array([-1.0, 1.0]), size=(trials, diff.size))
    permuted = np.abs((signs * diff).mean(axis=1))
    # +1 in both: the observed labelling is one of the permutations (never p = 0)
    return float((np.count_nonzero(permuted >= observed - 1e-12) + 1) / (trials + 1))


def paired_ttest(a: np.ndarray, b: np.ndarray) -> float:
    from scipy import stats  # type: ignore[import-untyped]

    diff = a - b
    if diff.size < 2 or not np.any(diff):
        return 1.0
    if np.allclose(diff, diff[0]):
        return 0.0  # a constant non-zero difference: t is infinite
    result = stats.ttest_rel(a, b)
    return float(result.pvalue)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def compare(
    system: str,
    baseline: str,
    metric: str,
    scores_system: Mapping[str, float],
    scores_baseline: Mapping[str, float],
) -> Comparison:
    a, b = paired_arrays(scores_system, scores_baseline)
    diff = a - b
    return Comparison(
        system=system,
        baseline=baseline,
        metric=metric,
        mean_system=float(a.mean()) if a.size else 0.0,
        mean_baseline=float(b.mean()) if b.size else 0.0,
        delta=float(diff.mean()) if diff.size else 0.0,
        p_randomisation=randomisation_test(a, b),
        p_ttest=paired_ttest(a, b),
        wins=int(np.count_nonzero(diff > 1e-12)),
        losses=int(np.count_nonzero(diff < -1e-12)),
        ties=int(np.count_nonzero(np.abs(diff) <= 1e-12)),
    )


def with_holm(comparisons: Sequence[Comparison]) -> list[Comparison]:
    """The same comparisons with ``p_holm`` set, adjusting their randomisation p-values."""
    from dataclasses import replace

    adjusted = holm([c.p_randomisation for c in comparisons])
    return [replace(c, p_holm=p) for c, p in zip(comparisons, adjusted, strict=True)]


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else 0.0


def latency_summary(timings: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """Per stage: p50 and p95 in milliseconds over queries (stages a run never used are absent)."""
    by_stage: dict[str, list[float]] = {}
    for per_query in timings.values():
        for stage, ms in per_query.items():
            by_stage.setdefault(stage, []).append(ms)
    return {
        stage: {"p50": percentile(values, 50), "p95": percentile(values, 95), "n": len(values)}
        for stage, values in by_stage.items()
    }
