"""The adaptive fusion rule: each query's BM25 and dense weights from the query's own results.

A convex (min-max) fusion whose BM25 share is a clipped linear function of one signal every
hybrid query has for free, the dense leg's top cosine:

    bm25 = clip(base + slope * (dense_top - center), low, high),   dense = 1 - bm25

A query whose best passage is very close to it in the embedding space (a high top cosine) is
one the dense model understands, so dense gets more say; a low top cosine (jargon, rare names,
terse keyword queries) hands the weight to BM25. Among the collections in ``shared/data`` the
mean top cosine is lowest on NFCorpus (where BM25 beats dense) and highest on agentset-msmarco
(where dense is far ahead), and within every one of them the best per-query BM25 share tends to
fall as the top cosine rises (weakly: correlations from -0.04 to -0.39).

The coefficients are not hand-set: they were fitted on SciFact's train split only (a grid
search of mean nDCG@10) and ship as ``rules/adaptive-v<N>.json``, with what they were fitted
on. Cosine scales differ between embedding models, so the rule applies only to the models it
was fitted for; with any other model the same fusion runs with the fixed fallback share
(``slope`` 0), which is plain convex fusion.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

RULE_FILE = "adaptive-v1.json"


@dataclass(frozen=True, slots=True)
class AdaptiveRule:
    """``bm25 = clip(base + slope * (dense_top - center), low, high)``; see the module docstring."""

    base: float
    slope: float
    center: float
    low: float = 0.05
    high: float = 0.95
    version: str = "static"
    models: tuple[str, ...] = ()

    def bm25_share(self, dense_top: float) -> float:
        """The BM25 weight for a query whose best dense hit scored ``dense_top``."""
        share = self.base + self.slope * (dense_top - self.center)
        return min(self.high, max(self.low, share))

    def fits(self, model_id: str) -> bool:
        """Whether the coefficients were fitted for this embedding model's scores."""
        return model_id in self.models

    def static(self, share: float) -> AdaptiveRule:
        """The fallback: the same fusion with a fixed BM25 share."""
        return AdaptiveRule(base=share, slope=0.0, center=0.0, low=share, high=share)

    def for_model(self, model_id: str, fallback_share: float = 0.5) -> AdaptiveRule:
        """This rule for the models it was fitted for, else the fixed-share fallback."""
        return self if self.fits(model_id) else self.static(fallback_share)


def rule_from_json(document: dict[str, Any]) -> tuple[AdaptiveRule, float]:
    """A rule and its fallback share from the artefact's JSON (``rules/adaptive-v*.json``)."""
    if document.get("feature") != "dense_top_score":
        raise ValueError(f"unknown adaptive-rule feature {document.get('feature')!r}")
    rule = AdaptiveRule(
        base=float(document["base"]),
        slope=float(document["slope"]),
        center=float(document["center"]),
        low=float(document["low"]),
        high=float(document["high"]),
        version=f"{document['name']}-v{document['version']}",
        models=tuple(document["models"]),
    )
    if not 0.0 <= rule.low <= rule.high <= 1.0:
        raise ValueError("adaptive rule: need 0 <= low <= high <= 1")
    return rule, float(document["fallback_bm25_share"])


@cache
def packaged_rule() -> tuple[AdaptiveRule, float]:
    """The rule shipped with braid, and its fallback BM25 share (read once per process)."""
    text = resources.files("braid.engine").joinpath("rules", RULE_FILE).read_text()
    return rule_from_json(json.loads(text))


def rule_for_model(model_id: str) -> AdaptiveRule:
    """The packaged rule when it was fitted for ``model_id``, else its fixed-share fallback."""
    rule, fallback = packaged_rule()
    return rule.for_model(model_id, fallback)
