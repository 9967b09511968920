"""Robustness and shadow comparisons: query edits (``braid eval perturb``) and one query set
on two configurations (``braid eval compare``), both through ``HybridSearcher.search``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from braid.engine.config import Settings
from braid.engine.searcher import HybridSearcher
from braid.eval.datasets import Dataset
from braid.eval.evaluation import ModeResult, evaluate_mode
from braid.eval.metrics import mean
from braid.eval.perturb import PERTURBATIONS, overlap_at_k, perturb, rbo
from braid.eval.runs import RunParams
from braid.eval.stats import compare, with_holm


def perturbation_study(
    searcher: HybridSearcher,
    dataset: Dataset,
    modes: Sequence[str],
    kinds: Sequence[str] | None = None,
    seed: int = 0,
    *,
    on_step: Callable[[int, int], None] | None = None,
) -> list[dict[str, object]]:
    """Per mode and edit: mean overlap@10 and RBO between the original and edited query's
    top 10, over the queries the edit changed, and nDCG@10 before and after."""
    kinds = list(kinds or PERTURBATIONS)
    for kind in kinds:
        perturb("x", kind, seed)  # unknown kinds fail before any search
    rows: list[dict[str, object]] = []
    total = len(modes) * (1 + len(kinds))
    step = 0
    for mode in modes:
        original = evaluate_mode(searcher, dataset, RunParams(mode=mode), warmup=0)
        step += 1
        if on_step:
            on_step(step, total)
        for kind in kinds:
            edited_queries = {q: perturb(t, kind, seed) for q, t in dataset.queries.items()}
            changed = [q for q, t in edited_queries.items() if t != dataset.queries[q]]
            edited = evaluate_mode(
                searcher, replace(dataset, queries=edited_queries), RunParams(mode=mode), warmup=0
            )
            step += 1
            if on_step:
                on_step(step, total)
            overlaps = [
                overlap_at_k(original.run.doc_ids(q), edited.run.doc_ids(q), 10) for q in changed
            ]
            rbos = [rbo(original.run.doc_ids(q, 10), edited.run.doc_ids(q, 10)) for q in changed]
            rows.append(
                {
                    "mode": mode,
                    "edit": kind,
                    "changed": len(changed),
                    "overlap@10": sum(overlaps) / len(overlaps) if overlaps else 1.0,
                    "rbo": sum(rbos) / len(rbos) if rbos else 1.0,
                    "ndcg@10": mean({q: original.scores["ndcg@10"][q] for q in changed}),
                    "edited_ndcg@10": mean({q: edited.scores["ndcg@10"][q] for q in changed}),
                    "examples": [
                        {"query": dataset.queries[q], "edited": edited_queries[q]}
                        for q in changed[:3]
                    ],
                }
            )
    return rows


@dataclass(frozen=True)
class Side:
    label: str
    settings: Settings
    index_dir: Path


def compare_sides(
    folder: Path,
    dataset: Dataset,
    sides: Sequence[Side],
    modes: Sequence[str],
    k: int = 10,
    *,
    on_step: Callable[[int, int], None] | None = None,
) -> dict[str, object]:
    """Run ``modes`` on both sides (opened one after the other: each holds its data dir's
    lock), then overlap@k, RBO and metric deltas with paired tests (Holm over modes)."""
    from braid.eval.indexes import open_index

    results: list[dict[str, ModeResult]] = []
    described: list[dict[str, object]] = []
    step, total = 0, len(sides) * len(modes)
    for side in sides:
        index = open_index(folder, side.settings, side.index_dir, role="braid eval compare")
        try:
            searcher = index.workspace.engine.searcher
            per_mode: dict[str, ModeResult] = {}
            for mode in modes:
                per_mode[mode] = evaluate_mode(searcher, dataset, RunParams(mode=mode))
                step += 1
                if on_step:
                    on_step(step, total)
            results.append(per_mode)
            info = searcher.embedder.info
            described.append(
                {
                    "label": side.label,
                    "index_dir": str(side.index_dir),
                    "embedding_model": f"{info.model_id}@{info.version}",
                    "reranker": searcher.reranker.model_id if searcher.reranker else None,
                    "index": index.state,
                }
            )
        finally:
            index.close()
    a, b = results
    tests = with_holm(
        [
            compare(mode, mode, "ndcg@10", b[mode].scores["ndcg@10"], a[mode].scores["ndcg@10"])
            for mode in modes
        ]
    )
    rows: list[dict[str, object]] = []
    for mode, test in zip(modes, tests, strict=True):
        queries = list(dataset.queries)
        rows.append(
            {
                "mode": mode,
                "overlap": sum(
                    overlap_at_k(a[mode].run.doc_ids(q), b[mode].run.doc_ids(q), k) for q in queries
                )
                / len(queries),
                "rbo": sum(
                    rbo(a[mode].run.doc_ids(q, k), b[mode].run.doc_ids(q, k)) for q in queries
                )
                / len(queries),
                "a": a[mode].means,
                "b": b[mode].means,
                "delta_ndcg@10": b[mode].means["ndcg@10"] - a[mode].means["ndcg@10"],
                "p_randomisation": test.p_randomisation,
                "p_holm": test.p_holm,
                "wins_b": test.wins,
                "losses_b": test.losses,
            }
        )
    return {
        "dataset": dataset.name,
        "split": dataset.split,
        "k": k,
        "sides": described,
        "rows": rows,
    }
