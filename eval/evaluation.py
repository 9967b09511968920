"""Evaluate modes on one split: runs, metrics, significance against the best single retriever,
latency per stage, and the result document that ``braid eval run --json`` prints and
``braid eval report`` reads back.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from braid.engine.searcher import HybridSearcher
from braid.eval.anchors import GOALS, anchors_for, headline_anchor
from braid.eval.datasets import Dataset
from braid.eval.metrics import METRICS, PRIMARY, PerQuery, per_query, summarize
from braid.eval.runs import (
    PEER_MODES,
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
    return scored_result(params.mode, run, dataset, runs_dir)


def scored_result(mode: str, run: Run, dataset: Dataset, runs_dir: Path | None) -> ModeResult:
    """A finished run scored against the qrels (and saved under ``runs_dir`` when given)."""
    scores = per_query(run.as_scores(), dataset.qrels)
    path = write_trec(run, run_path(runs_dir, run)) if runs_dir is not None else None
    return ModeResult(
        mode=mode,
        run=run,
        scores=scores,
        means=summarize(scores),
        latency=latency_summary(run.timings),
        run_file=path,
    )


def best_single(results: Sequence[ModeResult], metric: str = PRIMARY) -> ModeResult | None:
    singles = [r for r in results if r.mode in SINGLE_MODES]
    return max(singles, key=lambda r: r.means[metric]) if singles else None


def peer_result(results: Sequence[ModeResult]) -> ModeResult | None:
    """The peer engine's run (``peer-qdrant``), when one was asked for."""
    return next((r for r in results if r.mode in PEER_MODES), None)


def significance(
    results: Sequence[ModeResult], metrics: Sequence[str] = SIGNIFICANCE_METRICS
) -> list[Comparison]:
    """Every other mode (the peer included) against the best single retriever (by nDCG@10);
    then, when a peer ran, every braid mode that fuses (not bm25 or dense alone) against the
    peer. Each family is Holm-corrected per metric on its own."""
    out: list[Comparison] = []
    families = []
    baseline = best_single(results)
    if baseline is not None:
        families.append((baseline, [r for r in results if r is not baseline]))
    peer = peer_result(results)
    if peer is not None:
        fused = [r for r in results if r is not peer and r.mode not in SINGLE_MODES]
        families.append((peer, fused))
    for base, systems in families:
        for metric in metrics:
            family = [
                compare(r.mode, base.mode, metric, r.scores[metric], base.scores[metric])
                for r in systems
            ]
            out.extend(with_holm(family))
    return out


@dataclass
class RunReport:
    """What ``braid eval run`` measured on one split; ``as_dict`` is its ``--json`` document,
    saved under the index's ``results/`` and read back by ``braid eval report``."""

    dataset: str
    split: str
    queries: int
    results: list[ModeResult]
    comparisons: list[Comparison]
    index_state: dict[str, object] = field(default_factory=dict)
    profile: str | None = None
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    result_file: Path | None = None  # set once saved

    @property
    def baseline(self) -> str | None:
        best = best_single(self.results)
        return best.mode if best else None

    @property
    def peer(self) -> str | None:
        """The peer's mode name, when the report has one (the second significance family)."""
        peer = peer_result(self.results)
        return peer.mode if peer else None

    def mode_entry(self, result: ModeResult) -> dict[str, object]:
        anchor = headline_anchor(self.dataset, result.mode)
        meta = result.run.meta
        return {
            "metrics": result.means,
            "params": meta.get("params"),
            "label": meta.get("label"),
            "tag": meta.get("tag"),
            "run_file": str(result.run_file) if result.run_file else None,
            "reranker_model": meta.get("reranker_model"),
            "latency_ms": result.latency,
            "anchor": anchor.as_dict() if anchor else None,
            "per_query": {m: result.scores[m] for m in (PRIMARY, "recall@100")},
        }

    def as_dict(self) -> dict[str, object]:
        """Everything a reader needs, JSON-ready: metrics under their usual names per mode."""
        first = self.results[0].run.meta if self.results else {}
        document: dict[str, object] = {
            "dataset": self.dataset,
            "split": self.split,
            "queries": self.queries,
            "profile": self.profile,
            "created": self.created,
            "embedding_model": first.get("embedding_model"),
            "index": dict(self.index_state),
            "metrics": list(METRICS),
            "modes": {r.mode: self.mode_entry(r) for r in self.results},
            "baseline": self.baseline,
            "significance": [c.as_dict() for c in self.comparisons],
            "anchors": [a.as_dict() for a in anchors_for(self.dataset)],
            "goals": GOALS.get(self.dataset, {}),
        }
        if self.peer is not None:  # absent when no peer ran: the default document is unchanged
            document["peer"] = self.peer
        if self.result_file is not None:
            document["result_file"] = str(self.result_file)
        return document

    def save(self, folder: Path, name: str) -> Path:
        """Write ``folder/name.json`` (the document as it was before saving) and remember it."""
        self.result_file = save_result(self.as_dict(), folder, name)
        return self.result_file


def limit_queries(dataset: Dataset, limit: int | None) -> Dataset:
    """The first ``limit`` judged queries (smoke runs); all of them when ``limit`` is None."""
    if not limit:
        return dataset
    queries = dict(list(dataset.queries.items())[:limit])
    return replace(dataset, queries=queries, qrels={q: dataset.qrels[q] for q in queries})


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
