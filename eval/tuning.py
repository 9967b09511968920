"""The sweep's train/test protocol (``braid eval sweep``): tune fusion on train, save the choice
as a profile, and only then read the test split, to report the chosen configuration on it.

``tune_fusion`` is given the train split only; the test qrels are loaded inside, after the
profile is written, so nothing seen on test can move the choice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from braid.engine.config import Settings
from braid.engine.errors import InvalidRequestError
from braid.engine.profiles import save_profile
from braid.eval.caching import caching_searcher
from braid.eval.datasets import Dataset, load_dataset
from braid.eval.evaluation import (
    ModeResult,
    evaluate_mode,
    limit_queries,
    save_result,
    significance,
    with_mode_name,
)
from braid.eval.indexes import open_with_progress
from braid.eval.progress import StageProgress, silent
from braid.eval.runs import RunParams
from braid.eval.stats import Comparison
from braid.eval.sweep import CANDIDATES, SweepPoint, best, first_stage_grid, profile_from, run_sweep


@dataclass(frozen=True)
class SweepGrid:
    """The first-stage points and the candidate depths tried at the best of each fusion."""

    first_stage: list[RunParams]
    depths: tuple[int, ...]

    @classmethod
    def full(cls) -> SweepGrid:
        return cls(first_stage_grid(), CANDIDATES)

    @classmethod
    def quick(cls) -> SweepGrid:
        """A small grid for smoke runs: 4 RRF points, one convex point, two depths."""
        return cls(
            first_stage_grid(ks=(10, 60), shares=(0.5, 0.6), alphas=(0.5,), candidates=100),
            (50, 100),
        )


@dataclass
class SweepReport:
    """What ``braid eval sweep`` found; ``as_dict`` is its ``--json`` document and the saved
    ``results/sweep-<train split>.json`` that ``braid eval report`` reads."""

    dataset: str
    train_split: str
    train_queries: int
    points: list[SweepPoint]
    profile: str
    profile_file: Path
    test_split: str | None
    test: list[ModeResult] = field(default_factory=list)  # after the choice, labelled
    test_significance: list[Comparison] = field(default_factory=list)
    result_file: Path | None = None

    @property
    def chosen(self) -> SweepPoint:
        return best(self.points)

    @property
    def best_rrf(self) -> SweepPoint:
        return best(self.points, fusion="rrf")

    @property
    def best_convex(self) -> SweepPoint | None:
        has_convex = any(p.params.fusion == "convex" for p in self.points)
        return best(self.points, fusion="convex") if has_convex else None

    def as_dict(self) -> dict[str, object]:
        convex = self.best_convex
        document: dict[str, object] = {
            "dataset": self.dataset,
            "train_split": self.train_split,
            "train_queries": self.train_queries,
            "points": [p.as_dict() for p in self.points],
            "chosen": self.chosen.as_dict(),
            "best_rrf": self.best_rrf.as_dict(),
            "best_convex": convex.as_dict() if convex else None,
            "profile": self.profile,
            "profile_file": str(self.profile_file),
            "test_split": self.test_split,
            "test": {r.mode: r.means for r in self.test},
        }
        if self.test_split:
            document["test_labels"] = {r.mode: r.run.meta.get("label") for r in self.test}
            document["test_significance"] = [c.as_dict() for c in self.test_significance]
        if self.result_file is not None:
            document["result_file"] = str(self.result_file)
        return document


def check_splits(train_split: str, test_split: str | None) -> None:
    """Raises:
    InvalidRequestError: the test split is the train split (never tune on test).
    """
    if test_split is not None and test_split == train_split:
        raise InvalidRequestError("--test-split must differ from --train-split: never tune on test")


def reported_configs(report: SweepReport) -> list[tuple[str, RunParams]]:
    """What is reported on test: each retriever alone, default hybrid, the tuned points."""
    configs = [
        ("bm25", RunParams(mode="bm25")),
        ("dense", RunParams(mode="dense")),
        ("hybrid (default)", RunParams(mode="hybrid")),
        ("hybrid (tuned rrf)", report.best_rrf.params),
    ]
    if (convex := report.best_convex) is not None:
        configs.append(("hybrid (tuned convex)", convex.params))
    return configs


def tune_fusion(
    folder: Path,
    train: Dataset,
    settings: Settings,
    *,
    test_split: str | None = "test",
    profile_name: str | None = None,
    grid: SweepGrid | None = None,
    limit: int | None = None,
    index_dir: Path | None = None,
    progress: StageProgress = silent,
) -> SweepReport:
    """Sweep fusion parameters on ``train``, save the best as a profile, report it on test.

    Args:
        folder: the dataset's folder (its index is opened, and built when needed).
        train: the split to tune on (already limited, for a smoke run).
        settings: where the profile is saved (``settings.data_dir``) and what the index uses.
        test_split: read after the choice, only to report it; ``None`` to skip.
        profile_name: default ``<dataset>-tuned``.
        grid: default ``SweepGrid.full()``.
        limit: the first N judged test queries.

    Raises:
        InvalidRequestError: ``test_split`` is the train split.
        BraidError: the index cannot be opened, a run fails, or the test split is unreadable.
    """
    check_splits(train.split, test_split)
    grid = grid or SweepGrid.full()
    name = profile_name or f"{train.name}-tuned"
    index = open_with_progress(folder, settings, index_dir, progress=progress)
    try:
        engine = index.workspace.engine
        # Every point asks the same queries: encode each once.
        cached = caching_searcher(engine)
        try:
            with progress("sweep") as tick:
                points = run_sweep(
                    cached,
                    train,
                    grid=grid.first_stage,
                    candidates=grid.depths,
                    on_point=lambda i, n, _p: tick(i, n),
                )
        finally:
            cached.close()
        model = engine.embedder.info
        profile = profile_from(
            best(points), train, embedding_model={"id": model.model_id, "version": model.version}
        )
        report = SweepReport(
            dataset=train.name,
            train_split=train.split,
            train_queries=len(train.queries),
            points=points,
            profile=name,
            profile_file=save_profile(settings.data_dir, name, profile),
            test_split=test_split,
        )
        # The test split is read only now, after the choice, and only to report it.
        if test_split:
            test = limit_queries(load_dataset(folder, test_split), limit)
            for label, params in reported_configs(report):
                with progress(f"test {label}") as tick:
                    result = evaluate_mode(engine.searcher, test, params, on_query=tick)
                report.test.append(with_mode_name(result, label))
            report.test_significance = significance(report.test)
        report.result_file = save_result(
            report.as_dict(), index.data_dir / "results", f"sweep-{train.split}"
        )
        return report
    finally:
        index.close()


def top_points(report: SweepReport, n: int = 15) -> Sequence[SweepPoint]:
    """The ``n`` best points by train nDCG@10 (the table ``braid eval sweep`` prints)."""
    return sorted(report.points, key=lambda p: -p.metrics["ndcg@10"])[:n]
