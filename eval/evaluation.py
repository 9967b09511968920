"""Evaluate modes on one split: runs, metrics, significance against the best single retriever,
latency per stage, and the result document that ``braid eval run --json`` prints and
``braid eval report`` reads back.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from braid.engine.searcher import HybridSearcher
from braid.eval.anchors import GOALS, anchors_for, headline_anchor
from braid.eval.datasets import Dataset
from braid.eval.metrics import METRICS, PRIMARY, PerQuery, per_query, summarize
from braid.eval.runs import (
    SINGLE_MODES,
    Run,
    RunParams,
    execute_run,
    run_path,
    search_once,
    write_trec,
)
from braid.eval.stats import Comparison, compare, latency_summary, with_holm

SIGNIFICANCE_METRICS = ("ndcg@10", "recall@100")


@dataclass
class ModeResult:
    mode: str
    run: Run
    scores: PerQuery
    means: dict[str, float]
    latency: dict[str, dict[str, float]]
    run_file: Path | None = None


def evaluate_mode(
    searcher: HybridSearcher,
    dataset: Dataset,
    params: RunParams,
    *,
    context: Mapping[str, object] | None = None,
    runs_dir: Path | None = None,
    warmup: int = 3,
    on_query: Callable[[int, int], None] | None = None,
) -> ModeResult:
    """One mode over every judged query; the run is saved under ``runs_dir`` when given."""
    for text in list(dataset.queries.values())[:warmup]:  # load lazy state, fill caches
        search_once(searcher, text, params.resolve(searcher))
    run = execute_run(searcher, dataset, params, context=context, on_query=on_query)
    scores = per_query(run.as_scores(), dataset.qrels)
    path = write_trec(run, run_path(runs_dir, run)) if runs_dir is not None else None
    return ModeResult(
        mode=params.mode,
        run=run,
        scores=scores,
        means=summarize(scores),
        latency=latency_summary(run.timings),
        run_file=path,
    )


def best_single(results: Sequence[ModeResult], metric: str = PRIMARY) -> ModeResult | None:
    singles = [r for r in results if r.mode in SINGLE_MODES]
    return max(singles, key=lambda r: r.means[metric]) if singles else None


def significance(
    results: Sequence[ModeResult], metrics: Sequence[str] = SIGNIFICANCE_METRICS
) -> list[Comparison]:
    """Every other mode against the best single retriever (by nDCG@10), Holm-corrected per metric
    over that family of comparisons."""
    baseline = best_single(results)
    if baseline is None:
        return []
    out: list[Comparison] = []
    for metric in metrics:
        family = [
            compare(r.mode, baseline.mode, metric, r.scores[metric], baseline.scores[metric])
            for r in results
            if r is not baseline
        ]
        out.extend(with_holm(family))
    return out


def result_document(
    dataset: Dataset,
    results: Sequence[ModeResult],
    comparisons: Sequence[Comparison],
    *,
    index_state: Mapping[str, object] | None = None,
    profile: str | None = None,
) -> dict[str, object]:
    """Everything a reader needs, JSON-ready: metrics under their usual names per mode."""
    modes: dict[str, object] = {}
    for r in results:
        anchor = headline_anchor(dataset.name, r.mode)
        modes[r.mode] = {
            "metrics": r.means,
            "params": r.run.meta.get("params"),
            "label": r.run.meta.get("label"),
            "tag": r.run.meta.get("tag"),
            "run_file": str(r.run_file) if r.run_file else None,
            "reranker_model": r.run.meta.get("reranker_model"),
            "latency_ms": r.latency,
            "anchor": anchor.as_dict() if anchor else None,
            "per_query": {m: r.scores[m] for m in (PRIMARY, "recall@100")},
        }
    first = results[0].run.meta if results else {}
    return {
        "dataset": dataset.name,
        "split": dataset.split,
        "queries": len(dataset.queries),
        "profile": profile,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "embedding_model": first.get("embedding_model"),
        "index": dict(index_state or {}),
        "metrics": list(METRICS),
        "modes": modes,
        "baseline": (b.mode if (b := best_single(results)) else None),
        "significance": [c.as_dict() for c in comparisons],
        "anchors": [a.as_dict() for a in anchors_for(dataset.name)],
        "goals": GOALS.get(dataset.name, {}),
    }


def save_result(document: Mapping[str, object], folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(document, indent=1, default=str) + "\n")
    return path


def load_result(path: Path) -> dict[str, object]:
    loaded = json.loads(path.read_text())
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: not a result document")
    return loaded


def with_mode_name(result: ModeResult, name: str) -> ModeResult:
    """The same result under another name (``hybrid`` tuned -> ``hybrid (tuned)``)."""
    return replace(result, mode=name)
