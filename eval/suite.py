"""``braid eval suite``: every collection of a folder through the same modes, in one table.

A suite is ``run_evaluation`` once per collection (each in its own index, as ``braid eval run``
builds it) and a summary of the reports: per collection the nDCG@10 and Recall@100 of every
mode, and the paired tests of braid's hybrid against the best single retriever and against
the peer (Qdrant's own hybrid), taken from the report's significance families as they are,
Holm-corrected within each family. Nothing is re-measured here.

``plan_suite`` reads every collection's split first (a collection without the split is skipped
with a note; any other bad file is an error before anything is run); ``run_suite`` evaluates
them; ``write_suite`` writes ``suite.md``, ``suite.json`` and ``suite.png`` (grouped bars of
nDCG@10 per collection and mode).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from braid.engine.config import Settings
from braid.eval.datasets import Dataset, DatasetError, load_dataset, resolve_dataset, splits
from braid.eval.evaluation import RunReport, limit_queries
from braid.eval.experiments import result_name, run_evaluation
from braid.eval.metrics import PRIMARY
from braid.eval.progress import StageProgress, Tick, silent
from braid.eval.report import cell, markdown_table, pyplot
from braid.eval.runs import PEER_MODE
from braid.eval.stats import Comparison

SUITE_MODES: tuple[str, ...] = ("bm25", "dense", "hybrid", PEER_MODE)
SUITE_METRICS: tuple[str, ...] = (PRIMARY, "recall@100")
SYSTEM = "hybrid"  # the mode whose paired tests the suite shows
FILES = {"markdown": "suite.md", "json": "suite.json", "plot": "suite.png"}


@dataclass(frozen=True)
class Skipped:
    """A collection the suite did not run, and why (a note in every output, not an error)."""

    dataset: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"dataset": self.dataset, "reason": self.reason}


@dataclass(frozen=True)
class SuitePlan:
    """The collections to run (their split read, ``limit`` applied) and those skipped."""

    root: Path
    split: str
    collections: list[Dataset]
    skipped: list[Skipped]
    limit: int | None = None


def collection_folders(root: Path, names: Sequence[str] = ()) -> list[Path]:
    """The collections under ``root``: the named ones in the order given, else every
    subfolder holding a ``corpus.jsonl``, by name.

    Raises:
        DatasetError: ``root`` is not a folder, holds no collection, or lacks a named one.
    """
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder of dataset folders")
    if names:
        return [resolve_dataset(name, root) for name in dict.fromkeys(names)]
    found = sorted(p for p in root.iterdir() if (p / "corpus.jsonl").is_file())
    if not found:
        raise DatasetError(f"{root}: no dataset folder (a subfolder with a corpus.jsonl)")
    return found


def plan_suite(
    root: Path, split: str, names: Sequence[str] = (), limit: int | None = None
) -> SuitePlan:
    """Read ``split`` of every collection before anything runs.

    Raises:
        DatasetError: see ``collection_folders``; or a collection's files are malformed.
    """
    collections: list[Dataset] = []
    skipped: list[Skipped] = []
    for folder in collection_folders(root, names):
        available = splits(folder)
        if split not in available:
            reason = f"no qrels for split {split!r} (available: {', '.join(available) or 'none'})"
            skipped.append(Skipped(folder.resolve().name, reason))
            continue
        collections.append(limit_queries(load_dataset(folder, split), limit))
    return SuitePlan(root, split, collections, skipped, limit)


@dataclass
class SuiteReport:
    """What ``braid eval suite`` measured: one ``RunReport`` per collection that ran.

    ``as_dict`` is the ``--json`` document and ``suite.json``; ``files`` is set by
    ``write_suite``.
    """

    root: Path
    split: str
    modes: list[str]
    reports: list[RunReport]
    skipped: list[Skipped]
    limit: int | None = None
    profile: str | None = None
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    files: dict[str, Path | None] = field(default_factory=dict)

    def columns(self) -> list[str]:
        """The summary table's header (Markdown and the terminal share it)."""
        return [
            "collection",
            "queries",
            *(f"{mode} nDCG@10 / R@100" for mode in self.modes),
            f"{SYSTEM} vs best single",
            f"{SYSTEM} vs {PEER_MODE}",
        ]

    def rows(self) -> list[list[str]]:
        """One row per collection that ran: metrics per mode, then the two paired tests on
        nDCG@10 (delta, Holm-adjusted p, ``*`` when significant at 0.05)."""
        rows = []
        for report in self.reports:
            means = {r.mode: r.means for r in report.results}
            rows.append(
                [
                    report.dataset,
                    str(report.queries),
                    *(
                        f"{cell(means[m].get(PRIMARY))} / {cell(means[m].get('recall@100'))}"
                        if m in means
                        else "–"
                        for m in self.modes
                    ),
                    versus_cell(versus(report, report.baseline).get(PRIMARY)),
                    versus_cell(versus(report, report.peer).get(PRIMARY)),
                ]
            )
        return rows

    def as_dict(self) -> dict[str, object]:
        return {
            "datasets_dir": str(self.root),
            "split": self.split,
            "modes": list(self.modes),
            "limit": self.limit,
            "profile": self.profile,
            "created": self.created,
            "system": SYSTEM,
            "metrics": list(SUITE_METRICS),
            "collections": [collection_entry(r) for r in self.reports],
            "skipped": [s.as_dict() for s in self.skipped],
            "files": {k: str(p) if p else None for k, p in self.files.items()},
        }


def versus(report: RunReport, baseline: str | None) -> dict[str, Comparison]:
    """``SYSTEM`` against ``baseline`` per metric, from the report's own tests (empty when
    either did not run)."""
    if baseline is None:
        return {}
    return {
        c.metric: c
        for c in report.comparisons
        if c.system == SYSTEM and c.baseline == baseline and c.metric in SUITE_METRICS
    }


def versus_cell(comparison: Comparison | None) -> str:
    """``+0.0268 vs bm25, p 0.0012 *``: delta, Holm-adjusted p, marker when significant."""
    if comparison is None:
        return "–"
    marker = " *" if comparison.significant else ""
    return f"{comparison.delta:+.4f} vs {comparison.baseline}, p {cell(comparison.p_holm)}{marker}"


def collection_entry(report: RunReport) -> dict[str, object]:
    """A collection's part of the suite document (its full result is ``result_file``)."""
    return {
        "dataset": report.dataset,
        "queries": report.queries,
        "modes": {r.mode: {m: r.means[m] for m in SUITE_METRICS} for r in report.results},
        "baseline": report.baseline,
        "peer": report.peer,
        "versus_best_single": {m: c.as_dict() for m, c in versus(report, report.baseline).items()}
        or None,
        "versus_peer": {m: c.as_dict() for m, c in versus(report, report.peer).items()} or None,
        "result_file": str(report.result_file) if report.result_file else None,
    }


def prefixed(progress: StageProgress, name: str) -> StageProgress:
    """Stage labels that name the collection (``scifact: hybrid``)."""

    def stage(label: str) -> AbstractContextManager[Tick]:
        return progress(label if name in label else f"{name}: {label}")

    return stage


def run_suite(
    plan: SuitePlan,
    settings: Settings,
    modes: Sequence[str] = SUITE_MODES,
    *,
    profile: str | None = None,
    save: bool = True,
    progress: StageProgress = silent,
) -> SuiteReport:
    """``run_evaluation`` on every planned collection, in its own index (default
    ``<data-dir>/eval/<name>``), each saved as ``braid eval run`` saves it when ``save``.

    Raises:
        BraidError: an index cannot be opened or a run fails (the suite stops there).
    """
    reports = []
    for data in plan.collections:
        name = result_name(data.split, profile, limit=plan.limit) if save else None
        reports.append(
            run_evaluation(
                data.folder,
                data,
                settings,
                modes,
                profile=profile,
                save_as=name,
                progress=prefixed(progress, data.name),
            )
        )
    return SuiteReport(
        root=plan.root,
        split=plan.split,
        modes=list(modes),
        reports=reports,
        skipped=list(plan.skipped),
        limit=plan.limit,
        profile=profile,
    )


def plot_suite(report: SuiteReport, path: Path) -> Path | None:
    """Grouped bars: nDCG@10 per collection (groups) and mode (bars); None with no run."""
    if not report.reports:
        return None
    plt = pyplot()
    names = [r.dataset for r in report.reports]
    width = 0.8 / len(report.modes)
    fig, ax = plt.subplots(figsize=(max(6.0, 2.0 + 0.5 * len(names) * len(report.modes)), 4.5))
    for i, mode in enumerate(report.modes):
        heights = [
            next((r.means[PRIMARY] for r in rep.results if r.mode == mode), 0.0)
            for rep in report.reports
        ]
        xs = [g + (i - (len(report.modes) - 1) / 2) * width for g in range(len(names))]
        bars = ax.bar(xs, heights, width, label=mode)
        ax.bar_label(bars, fmt="%.3f", fontsize=6, padding=1)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel(f"nDCG@10 ({report.split})")
    ax.set_ylim(0, 1.05)
    ax.set_title("nDCG@10 per collection and mode")
    ax.legend(fontsize=8, ncol=len(report.modes), loc="upper center", bbox_to_anchor=(0.5, -0.1))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def markdown_lines(report: SuiteReport) -> Iterator[str]:
    """``suite.md``: the table, what its test columns mean, skipped collections, the plot."""
    yield f"# braid evaluation suite: {report.root}"
    yield ""
    yield (
        f"Split `{report.split}`, profile `{report.profile or 'default'}`"
        + (f", first {report.limit} queries per collection" if report.limit else "")
        + f", created {report.created}. nDCG@10 / Recall@100 per mode."
    )
    yield ""
    yield from markdown_table(report.columns(), report.rows())
    yield ""
    yield (
        f"Test columns: {SYSTEM}'s nDCG@10 minus the best single retriever's (by nDCG@10) "
        f"and minus the peer's ({PEER_MODE}: Qdrant's own hybrid), paired randomisation test "
        "(10,000 sign flips), p Holm-corrected within each family of its collection's report; "
        "`*`: p < 0.05."
    )
    if report.skipped:
        yield ""
        yield "Skipped:"
        yield ""
        for s in report.skipped:
            yield f"- {s.dataset}: {s.reason}"
    if report.files.get("plot"):
        yield ""
        yield f"![nDCG@10 per collection and mode]({FILES['plot']})"


def write_suite(report: SuiteReport, out_dir: Path) -> dict[str, Path | None]:
    """Write ``suite.md``, ``suite.png`` and ``suite.json`` (the document, which lists these
    files) into ``out_dir``; returns the paths (the plot's is None when nothing ran)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    plot = plot_suite(report, out_dir / FILES["plot"])
    report.files = {
        "markdown": out_dir / FILES["markdown"],
        "json": out_dir / FILES["json"],
        "plot": plot,
    }
    (out_dir / FILES["markdown"]).write_text("\n".join(markdown_lines(report)) + "\n")
    (out_dir / FILES["json"]).write_text(json.dumps(report.as_dict(), indent=1) + "\n")
    return report.files
