"""``braid eval report``: a Markdown report with PNG plots, from saved results.

Reads what ``braid eval run`` and ``braid eval sweep`` saved in the dataset's index
(``results/<split>-<profile>.json``, ``results/sweep-<split>.json``); opens no index and loads no
model. Plots (matplotlib, Agg backend):

- ``grid.png``: train nDCG@10 over RRF k x BM25 weight share, and over the convex alpha;
- ``quality_latency.png``: nDCG@10 against p50 query latency, per mode and per sweep point;
- ``wins_losses.png``: per-query nDCG@10 difference of hybrid against each single retriever.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from braid.engine.errors import BraidError
from braid.eval.evaluation import load_result
from braid.eval.indexes import default_index_dir
from braid.eval.metrics import METRICS


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (files only, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_grid(
    points: Sequence[Mapping[str, Any]], path: Path, metric: str = "ndcg@10"
) -> Path | None:
    rrf = [p for p in points if p["params"].get("fusion") == "rrf"]
    convex = [p for p in points if p["params"].get("fusion") == "convex"]
    if not rrf and not convex:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    if rrf:
        depth = max(
            {p["params"]["candidates"] for p in rrf},
            key=lambda c: sum(q["params"]["candidates"] == c for q in rrf),
        )
        shown = [p for p in rrf if p["params"]["candidates"] == depth]
        ks = sorted({float(p["params"]["rrf_k"]) for p in shown})
        shares = sorted({float(p["params"]["weights"]["bm25"]) for p in shown})
        for share in shares:
            series = sorted(
                (float(p["params"]["rrf_k"]), p["metrics"][metric])
                for p in shown
                if float(p["params"]["weights"]["bm25"]) == share
            )
            axes[0].plot(
                [x for x, _ in series],
                [y for _, y in series],
                marker="o",
                label=f"w_bm25={share:g}",
            )
        axes[0].set_xscale("log")
        axes[0].set_xticks(ks, [f"{k:g}" for k in ks])
        axes[0].set_xlabel("RRF k (log scale)")
        axes[0].set_ylabel(f"{metric} (train)")
        axes[0].set_title(f"RRF, candidates={depth}")
        axes[0].legend(fontsize=8)
        axes[0].grid(alpha=0.3)
    if convex:
        depth = max(
            {p["params"]["candidates"] for p in convex},
            key=lambda c: sum(q["params"]["candidates"] == c for q in convex),
        )
        series = sorted(
            (float(p["params"]["weights"]["bm25"]), p["metrics"][metric])
            for p in convex
            if p["params"]["candidates"] == depth
        )
        axes[1].plot([x for x, _ in series], [y for _, y in series], marker="o", color="C3")
        axes[1].set_xlabel("alpha (BM25 weight; dense 1 - alpha)")
        axes[1].set_ylabel(f"{metric} (train)")
        axes[1].set_title(f"convex min-max fusion, candidates={depth}")
        axes[1].grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_quality_latency(
    result: Mapping[str, Any] | None,
    points: Sequence[Mapping[str, Any]],
    path: Path,
    metric: str = "ndcg@10",
) -> Path | None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 5))
    drawn = False
    if points:
        ax.scatter(
            [p["latency_p50_ms"] for p in points],
            [p["metrics"][metric] for p in points],
            s=14,
            alpha=0.5,
            color="grey",
            label="sweep points (train; query vectors cached)",
        )
        drawn = True
    if result:
        for name, entry in result["modes"].items():
            total = entry["latency_ms"].get("total")
            if not total:
                continue
            ax.scatter(
                [total["p50"]],
                [entry["metrics"][metric]],
                s=50,
                label=f"{name} ({result['split']})",
            )
            ax.annotate(
                name,
                (total["p50"], entry["metrics"][metric]),
                fontsize=8,
                xytext=(4, 4),
                textcoords="offset points",
            )
            drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xscale("log")
    ax.set_xlabel("p50 latency per query, ms (log scale)")
    ax.set_ylabel(metric)
    ax.set_title("quality vs latency")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def wins_losses(
    result: Mapping[str, Any], system: str = "hybrid", metric: str = "ndcg@10"
) -> dict[str, dict[str, int]]:
    """Per single retriever: queries where ``system`` scores higher / lower / the same."""
    modes = result["modes"]
    out: dict[str, dict[str, int]] = {}
    if system not in modes:
        return out
    mine = modes[system]["per_query"][metric]
    for other in ("bm25", "dense"):
        if other not in modes:
            continue
        theirs = modes[other]["per_query"][metric]
        diffs = [mine[q] - theirs.get(q, 0.0) for q in mine]
        out[other] = {
            "wins": sum(d > 1e-12 for d in diffs),
            "losses": sum(d < -1e-12 for d in diffs),
            "ties": sum(abs(d) <= 1e-12 for d in diffs),
        }
    return out


def plot_wins_losses(
    result: Mapping[str, Any], path: Path, system: str = "hybrid", metric: str = "ndcg@10"
) -> Path | None:
    modes = result["modes"]
    others = [m for m in ("bm25", "dense") if m in modes]
    if system not in modes or not others:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, len(others), figsize=(5.5 * len(others), 3.8), squeeze=False)
    mine = modes[system]["per_query"][metric]
    for ax, other in zip(axes[0], others, strict=True):
        theirs = modes[other]["per_query"][metric]
        diffs = sorted((mine[q] - theirs.get(q, 0.0) for q in mine), reverse=True)
        colours = ["C2" if d > 0 else "C3" if d < 0 else "grey" for d in diffs]
        ax.bar(range(len(diffs)), diffs, color=colours, width=1.0)
        wins = sum(d > 1e-12 for d in diffs)
        losses = sum(d < -1e-12 for d in diffs)
        ax.set_title(
            f"{system} - {other}: {wins} wins, {losses} losses, {len(diffs) - wins - losses} ties"
        )
        ax.set_xlabel("queries, sorted by difference")
        ax.set_ylabel(f"delta {metric}")
        ax.axhline(0, color="black", linewidth=0.6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table's lines."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def cell(value: Any, digits: int = 4) -> str:
    """A table cell: floats to ``digits`` places, None as a dash."""
    return (
        "–" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)
    )


TESTS = "randomisation test (10,000 sign flips), Holm-corrected per metric"


def significance_families(
    result: Mapping[str, Any],
) -> list[tuple[str, list[Mapping[str, Any]]]]:
    """The result's paired tests grouped by baseline, each under its heading: against the best
    single retriever (``result["baseline"]``), against the peer (``result["peer"]``: braid's
    fusing modes only), then any other baseline, in the order the tests were saved."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for c in result.get("significance") or []:
        groups.setdefault(c["baseline"], []).append(c)
    best, peer = result.get("baseline"), result.get("peer")
    order = [b for b in (best, peer) if b in groups] + [b for b in groups if b not in (best, peer)]
    families = []
    for baseline in order:
        if baseline == best:
            heading = f"Paired tests against the best single retriever (`{best}`), {TESTS}:"
        elif baseline == peer:
            heading = (
                f"Paired tests against Qdrant's own hybrid (`{peer}`), braid's fusing modes "
                f"only, {TESTS}:"
            )
        else:
            heading = f"Paired tests against `{baseline}`, {TESTS}:"
        families.append((heading, groups[baseline]))
    return families


def write_report(
    out_dir: Path,
    result: Mapping[str, Any] | None,
    sweep: Mapping[str, Any] | None,
) -> Path:
    """Write ``report.md`` and its plots into ``out_dir``; returns the Markdown path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    points: list[Mapping[str, Any]] = list(sweep["points"]) if sweep else []
    lines: list[str] = []
    name = (result or sweep or {}).get("dataset", "dataset")
    lines.append(f"# braid evaluation report: {name}")
    lines.append("")
    if result:
        lines.append(
            f"Split `{result['split']}`, {result['queries']} queries, profile "
            f"`{result.get('profile') or 'default'}`, embedding model "
            f"`{(result.get('embedding_model') or {}).get('id')}`, created {result['created']}."
        )
        lines.append("")
        rows = []
        for mode, entry in result["modes"].items():
            anchor = entry.get("anchor") or {}
            rows.append(
                [
                    mode,
                    *(cell(entry["metrics"].get(m)) for m in METRICS),
                    cell(anchor.get("ndcg@10")),
                    anchor.get("system", ""),
                ]
            )
        lines += markdown_table(["mode", *METRICS, "anchor nDCG@10", "anchor"], rows)
        lines.append("")
        for heading, family in significance_families(result):
            lines += [heading, ""]
            rows = [
                [
                    c["system"],
                    c["metric"],
                    f"{c['delta']:+.4f}",
                    cell(c["p_randomisation"]),
                    cell(c["p_ttest"]),
                    cell(c["p_holm"]) + (" *" if c["significant"] else ""),
                    f"{c['wins']}/{c['losses']}/{c['ties']}",
                ]
                for c in family
            ]
            lines += markdown_table(
                ["mode", "metric", "delta", "p rand.", "p t-test", "p Holm", "W/L/T"], rows
            )
            lines.append("")
        stages: tuple[str, ...] = ("embed", "dense", "sparse", "fuse", "rerank", "fetch", "total")
        if result.get("peer"):  # the peer's one engine call (prefetches, fusion, payloads)
            stages = (*stages[:-1], "query", "total")
        rows = []
        for mode, entry in result["modes"].items():
            cells = []
            for stage in stages:
                s = entry["latency_ms"].get(stage)
                cells.append(f"{s['p50']:.2f} / {s['p95']:.2f}" if s else "–")
            rows.append([mode, *cells])
        lines.append("Latency per query in ms, p50 / p95:")
        lines.append("")
        lines += markdown_table(["mode", *stages], rows)
        lines.append("")
        for other, counts in wins_losses(result).items():
            lines.append(
                f"- hybrid vs {other}: {counts['wins']} queries better, {counts['losses']} worse, "
                f"{counts['ties']} equal (nDCG@10)."
            )
        if (plot := plot_wins_losses(result, out_dir / "wins_losses.png")) is not None:
            lines += ["", f"![per-query wins and losses]({plot.name})", ""]
    if sweep:
        chosen = sweep.get("chosen", {})
        lines.append(f"## Sweep on `{sweep['train_split']}` ({len(points)} points)")
        lines.append("")
        lines.append(
            f"Chosen: `{chosen.get('label')}` with train nDCG@10 "
            f"{cell(chosen.get('metrics', {}).get('ndcg@10'))}; saved as profile "
            f"`{sweep.get('profile')}`."
        )
        lines.append("")
        if sweep.get("test"):
            rows = [
                [n, cell(v.get("ndcg@10")), cell(v.get("recall@100"))]
                for n, v in sweep["test"].items()
            ]
            lines.append(f"On `{sweep.get('test_split')}` (chosen on train, reported once):")
            lines.append("")
            lines += markdown_table(["configuration", "nDCG@10", "R@100"], rows)
            lines.append("")
        if (plot := plot_grid(points, out_dir / "grid.png")) is not None:
            lines += [f"![nDCG@10 across the grid]({plot.name})", ""]
    if (plot := plot_quality_latency(result, points, out_dir / "quality_latency.png")) is not None:
        lines += [f"![quality vs latency]({plot.name})", ""]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


class NothingToReportError(BraidError):
    """Neither an ``eval run`` result nor an ``eval sweep`` result is saved for the dataset."""


@dataclass(frozen=True)
class ReportFiles:
    """What ``report_saved`` wrote (``braid eval report --json``)."""

    report: Path
    files: list[Path]

    def as_dict(self) -> dict[str, object]:
        return {"report": str(self.report), "files": [str(f) for f in self.files]}


def report_saved(
    data_dir: Path,
    dataset: str,
    *,
    split: str = "test",
    profile: str | None = None,
    sweep_split: str = "train",
    index_dir: Path | None = None,
    out_dir: Path | None = None,
) -> ReportFiles:
    """The report of a dataset's saved ``results/<split>-<profile>.json`` and
    ``results/sweep-<sweep_split>.json`` (either may be missing), in ``out_dir`` (default the
    index's ``report/``).

    Raises:
        NothingToReportError: neither result is saved.
    """
    folder = index_dir or default_index_dir(data_dir, dataset)
    results = folder / "results"
    result_path = results / f"{split}-{profile or 'default'}.json"
    sweep_path = results / f"sweep-{sweep_split}.json"
    result = load_result(result_path) if result_path.is_file() else None
    sweep = load_result(sweep_path) if sweep_path.is_file() else None
    if result is None and sweep is None:
        raise NothingToReportError(
            f"nothing to report in {results}: run `braid eval run` or `braid eval sweep` first"
        )
    target = out_dir or folder / "report"
    path = write_report(target, result, sweep)
    return ReportFiles(report=path, files=sorted(target.iterdir(), key=str))
