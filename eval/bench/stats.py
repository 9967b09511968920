"""Small statistics for benchmark reports: percentiles per stage."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np


def percentiles(
    samples: Iterable[Mapping[str, float]], qs: tuple[int, ...] = (50, 95)
) -> dict[str, dict[str, float]]:
    """``{"p50": {stage: ms}, "p95": {...}}`` over per-query timing dicts."""
    by_stage: dict[str, list[float]] = {}
    for sample in samples:
        for stage, value in sample.items():
            by_stage.setdefault(stage, []).append(value)
    return {
        f"p{q}": {
            stage: round(float(np.percentile(values, q)), 3) for stage, values in by_stage.items()
        }
        for q in qs
    }
