"""``braid eval run``, ``perturb`` and ``compare`` as library calls.

Each takes a loaded ``Dataset`` (the caller resolves and reads it, so a bad dataset is a usage
error before anything is opened) and ``Settings`` with profiles already applied, opens the
dataset's own index, runs its queries through ``HybridSearcher.search`` and returns a typed
report whose ``as_dict`` is the command's ``--json`` document.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from braid.engine.config import Settings
from braid.engine.errors import InvalidRequestError
from braid.eval.datasets import Dataset
from braid.eval.evaluation import RunReport, evaluate_mode, significance
from braid.eval.indexes import default_index_dir, open_with_progress
from braid.eval.peer import PeerShard, evaluate_peer, open_peer
from braid.eval.progress import StageProgress, silent
from braid.eval.robustness import Side, compare_sides, perturbation_study
from braid.eval.runs import DEFAULT_DEPTH, DEFAULT_MODES, PEER_MODES, RunParams, split_mode

PERTURB_MODES: tuple[str, ...] = ("bm25", "dense", "hybrid")
COMPARE_MODES: tuple[str, ...] = ("hybrid",)


def with_reranker(settings: Settings, model: str | None) -> Settings:
    """``settings`` reranking with ``model`` (a CrossEncoder name or folder), when given."""
    if not model:
        return settings
    section = settings.reranker.model_copy(update={"model": model, "enabled": True})
    return settings.model_copy(update={"reranker": section})


def with_embedding_model(settings: Settings, model: str | None) -> Settings:
    """``settings`` embedding with ``model``, when given."""
    if not model:
        return settings
    section = settings.embedder.model_copy(update={"model": model})
    return settings.model_copy(update={"embedder": section})


def has_reranker(settings: Settings) -> bool:
    return bool(settings.reranker.enabled and settings.reranker.model)


def choose_modes(asked: Sequence[str], settings: Settings) -> list[str]:
    """The modes to run: those asked for, else the defaults (the +rerank ones only when a
    reranker is configured).

    Raises:
        InvalidRequestError: an unknown mode, or a +rerank mode without a reranker.
    """
    for mode in asked:
        if mode in PEER_MODES:
            continue
        try:
            split_mode(mode)
        except ValueError as exc:
            raise InvalidRequestError(f"{exc}, or the peer {', '.join(PEER_MODES)}") from exc
    reranking = has_reranker(settings)
    modes = list(asked) or [m for m in DEFAULT_MODES if reranking or not split_mode(m)[1]]
    if not reranking and any(m not in PEER_MODES and split_mode(m)[1] for m in modes):
        raise InvalidRequestError(
            "a +rerank mode needs a reranker: --reranker MODEL or a profile naming one"
        )
    return modes


def result_name(
    split: str, profile: str | None, reranker: str | None = None, limit: int | None = None
) -> str:
    """The saved result's name, ``<split>-<profile or default>[-reranker-X][-limitN]``, which
    ``braid eval report`` looks up by split and profile."""
    return (
        f"{split}-{profile or 'default'}"
        + (f"-reranker-{Path(reranker).name}" if reranker else "")
        + (f"-limit{limit}" if limit else "")
    )


def run_evaluation(
    folder: Path,
    data: Dataset,
    settings: Settings,
    modes: Sequence[str],
    *,
    depth: int = DEFAULT_DEPTH,
    candidates: int | None = None,
    index_dir: Path | None = None,
    profile: str | None = None,
    save_as: str | None = None,
    progress: StageProgress = silent,
) -> RunReport:
    """Evaluate ``modes`` on ``data``: metrics, anchors, significance against the best single
    retriever (and against the peer, when ``peer-qdrant`` is among the modes), latency per stage.

    Args:
        folder: the dataset's folder (its corpus is ingested into the index when needed).
        data: the split to evaluate (``limit_queries`` for a smoke run).
        settings: settings with any profile applied; ``profile`` only names it in the report.
        modes: from ``choose_modes``. ``peer-qdrant`` runs Qdrant Edge's own hybrid query
            over the same vectors (``eval.peer``; its shard is built once, in the index's
            data dir, and rebuilt when the index changes).
        save_as: when given, run files go to the index's ``runs/`` and the report to its
            ``results/<save_as>.json``.

    Raises:
        BraidError: the index cannot be opened (locked, another model) or a run fails.
    """
    index = open_with_progress(folder, settings, index_dir, progress=progress)
    try:
        searcher = index.workspace.engine.searcher
        context = {"index": index.state, "profile": profile}
        runs_dir = index.data_dir / "runs" if save_as is not None else None
        results = []
        with ExitStack() as stack:
            peer: PeerShard | None = None
            for mode in modes:
                params = RunParams(mode=mode, depth=depth, candidates=candidates)
                if mode in PEER_MODES:
                    if peer is None:  # built (or found) once, on the first peer mode
                        with progress("peer shard") as tick:
                            peer = stack.enter_context(open_peer(index))
                            tick(1, 1)
                    with progress(mode) as tick:
                        result = evaluate_peer(
                            peer,
                            searcher,
                            data,
                            params,
                            context=context,
                            runs_dir=runs_dir,
                            on_query=tick,
                        )
                else:
                    with progress(mode) as tick:
                        result = evaluate_mode(
                            searcher,
                            data,
                            params,
                            context=context,
                            runs_dir=runs_dir,
                            on_query=tick,
                        )
                results.append(result)
        report = RunReport(
            dataset=data.name,
            split=data.split,
            queries=len(data.queries),
            results=results,
            comparisons=significance(results),
            index_state=index.state,
            profile=profile,
        )
        if save_as is not None:
            report.save(index.data_dir / "results", save_as)
        return report
    finally:
        index.close()


@dataclass
class PerturbReport:
    """Rank stability under query edits (``braid eval perturb --json``)."""

    dataset: str
    split: str
    queries: int
    seed: int
    rows: list[dict[str, object]] = field(default_factory=list)  # robustness.perturbation_study

    def as_dict(self) -> dict[str, object]:
        return {
            "dataset": self.dataset,
            "split": self.split,
            "queries": self.queries,
            "seed": self.seed,
            "rows": self.rows,
        }


def perturb_queries(
    folder: Path,
    data: Dataset,
    settings: Settings,
    modes: Sequence[str] = PERTURB_MODES,
    kinds: Sequence[str] | None = None,
    seed: int = 0,
    *,
    index_dir: Path | None = None,
    progress: StageProgress = silent,
) -> PerturbReport:
    """Per mode and edit kind: overlap@10, RBO and nDCG@10 before and after the edit.

    Raises:
        ValueError: an unknown edit kind (before any search).
        BraidError: the index cannot be opened or a run fails.
    """
    index = open_with_progress(folder, settings, index_dir, progress=progress)
    try:
        with progress("perturb") as tick:
            rows = perturbation_study(
                index.workspace.engine.searcher, data, modes, kinds or None, seed, on_step=tick
            )
    finally:
        index.close()
    return PerturbReport(data.name, data.split, len(data.queries), seed, rows)


@dataclass
class CompareReport:
    """One query set on two configurations (``braid eval compare --json``)."""

    dataset: str
    split: str
    k: int
    sides: list[dict[str, object]]
    rows: list[dict[str, object]]

    def as_dict(self) -> dict[str, object]:
        return {
            "dataset": self.dataset,
            "split": self.split,
            "k": self.k,
            "sides": self.sides,
            "rows": self.rows,
        }


def model_slug(settings: Settings) -> str:
    """A folder-name-safe tag of the embedding model: its last path part and a short hash."""
    import hashlib
    import re

    name = settings.embedder.model
    tail = re.sub(r"[^A-Za-z0-9._-]+", "-", name.rstrip("/").rsplit("/", 1)[-1])[:40]
    return f"{tail}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def shadow_sides(
    folder: Path,
    a: Settings,
    b: Settings,
    *,
    index_a: Path | None = None,
    index_b: Path | None = None,
) -> tuple[Side, Side]:
    """Sides A and B of a shadow comparison. ``index_a`` defaults to the dataset's index
    under A's data dir; ``index_b`` to A's index, or, when B embeds with another model, to
    that model's own evaluation index beside it (built on first use: an index answers only
    for the model that built it).

    Raises:
        InvalidRequestError: A and B are the same settings on the same index.
    """
    default_dir = default_index_dir(a.data_dir, folder.resolve().name)
    first = Side("A", a, index_a or default_dir)
    if index_b is None and b.embedder.model != a.embedder.model:
        index_b = first.index_dir.with_name(f"{first.index_dir.name}-{model_slug(b)}")
    second = Side("B", b, index_b or index_a or default_dir)
    if first.settings == second.settings and first.index_dir == second.index_dir:
        raise InvalidRequestError(
            "A and B are the same: give --index-b, --model-b, --reranker-b or --profile-b"
        )
    return first, second


def compare_configs(
    folder: Path,
    data: Dataset,
    sides: tuple[Side, Side],
    *,
    modes: Sequence[str] = COMPARE_MODES,
    k: int = 10,
    progress: StageProgress = silent,
) -> CompareReport:
    """Shadow comparison: ``modes`` on both sides (opened one after the other: each holds its
    data dir's lock), then overlap@k, RBO and nDCG@10 deltas with paired tests.

    Raises:
        BraidError: an index cannot be opened or a run fails.
    """
    with progress("compare") as tick:
        document = compare_sides(folder, data, list(sides), modes, k, on_step=tick)
    described, rows = document["sides"], document["rows"]
    if not isinstance(described, list) or not isinstance(rows, list):
        raise TypeError("compare_sides returned an unexpected document")
    return CompareReport(data.name, data.split, k, described, rows)
