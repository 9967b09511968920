"""The tables of ``braid eval``: the human form of each command's report (``--json`` is the
other), drawn with the shared renderer."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from braid.cli.common import console, out, print_table

if TYPE_CHECKING:
    from braid.eval.evaluation import RunReport
    from braid.eval.experiments import CompareReport, PerturbReport
    from braid.eval.tuning import SweepReport


def fmt(value: object, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def print_run(report: RunReport) -> None:
    from braid.eval.anchors import anchors_for, headline_anchor
    from braid.eval.metrics import METRICS

    title = f"{report.dataset} {report.split} ({report.queries} queries)" + (
        f", profile {report.profile}" if report.profile else ""
    )
    rows = []
    for r in report.results:
        anchor = headline_anchor(report.dataset, r.mode)
        rows.append(
            [r.mode, *(fmt(r.means.get(m)) for m in METRICS), fmt(anchor and anchor.ndcg10)]
        )
    print_table(title, ["mode", *METRICS, "anchor nDCG@10"], rows)
    for baseline, title in (
        (report.baseline, f"paired tests vs best single retriever ({report.baseline})"),
        (report.peer, f"paired tests vs Qdrant Edge's own hybrid ({report.peer})"),
    ):
        family = [c for c in report.comparisons if baseline and c.baseline == baseline]
        if not family:
            continue
        print_table(
            title,
            ["mode", "metric", "delta", "p (randomisation)", "p (t-test)", "p Holm", "W/L/T"],
            [
                [
                    c.system,
                    c.metric,
                    f"{c.delta:+.4f}",
                    fmt(c.p_randomisation),
                    fmt(c.p_ttest),
                    fmt(c.p_holm) + (" *" if c.significant else ""),
                    f"{c.wins}/{c.losses}/{c.ties}",
                ]
                for c in family
            ],
        )
    if peer := next((r for r in report.results if r.mode == report.peer), None):
        console.print(f"[dim]{peer.run.meta.get('label')}[/]")  # names the peer's fusion
    stages: tuple[str, ...] = ("embed", "dense", "sparse", "fuse", "rerank", "fetch", "total")
    if report.peer:  # the peer's one engine call (prefetches, fusion, payloads): "query"
        stages = (*stages[:-1], "query", "total")
    print_table(
        "latency per query, ms (p50 / p95)",
        ["mode", *stages],
        [
            [
                r.mode,
                *(
                    f"{s['p50']:.2f} / {s['p95']:.2f}" if (s := r.latency.get(stage)) else "-"
                    for stage in stages
                ),
            ]
            for r in report.results
        ],
    )
    if anchors := anchors_for(report.dataset):
        print_table(
            "reference numbers (shared/data/README.md)",
            ["system", "vs mode", "nDCG@10", "R@100", "source"],
            [[a.system, a.mode, fmt(a.ndcg10), fmt(a.recall100), a.source] for a in anchors],
            fold="source",
        )
    if report.result_file:
        console.print(f"[dim]saved {report.result_file}[/]")


def print_sweep(report: SweepReport) -> None:
    from braid.eval.tuning import top_points

    top = top_points(report)
    print_table(
        f"sweep on {report.dataset} {report.train_split} (top {len(top)} of {len(report.points)})",
        ["configuration", "nDCG@10", "R@100", "MRR@10", "p50 ms"],
        [
            [
                p.params.label(),
                fmt(p.metrics["ndcg@10"]),
                fmt(p.metrics["recall@100"]),
                fmt(p.metrics["mrr@10"]),
                f"{p.latency_p50_ms:.1f}",
            ]
            for p in top
        ],
    )
    out.print(
        f"chosen on {report.train_split}: [bold]{report.chosen.params.label()}[/] "
        f"-> profile {report.profile} ({report.profile_file})"
    )
    if report.test:
        print_table(
            f"on {report.test_split} (reported after choosing)",
            ["configuration", "params", "nDCG@10", "R@100", "MRR@10"],
            [
                [
                    r.mode,
                    r.run.meta.get("label", ""),
                    fmt(r.means["ndcg@10"]),
                    fmt(r.means["recall@100"]),
                    fmt(r.means["mrr@10"]),
                ]
                for r in report.test
            ],
        )


def print_perturb(report: PerturbReport) -> None:
    print_table(
        f"rank stability under query edits: {report.dataset} {report.split}",
        ["mode", "edit", "changed", "overlap@10", "RBO p=0.9", "nDCG@10", "edited nDCG@10"],
        [
            [
                r["mode"],
                r["edit"],
                r["changed"],
                fmt(r["overlap@10"]),
                fmt(r["rbo"]),
                fmt(r["ndcg@10"]),
                fmt(r["edited_ndcg@10"]),
            ]
            for r in report.rows
        ],
    )


def print_compare(report: CompareReport) -> None:
    k = report.k
    rows = []
    for r in report.rows:
        # compare_sides: each side's metric means
        a, b = cast("dict[str, float]", r["a"]), cast("dict[str, float]", r["b"])
        rows.append(
            [
                r["mode"],
                fmt(r["overlap"]),
                fmt(r["rbo"]),
                fmt(a["ndcg@10"]),
                fmt(b["ndcg@10"]),
                f"{r['delta_ndcg@10']:+.4f}",
                fmt(r["p_holm"]),
                fmt(a["recall@100"]),
                fmt(b["recall@100"]),
            ]
        )
    print_table(
        f"A vs B on {report.dataset} {report.split}",
        ["mode", f"overlap@{k}", "RBO", "nDCG@10 A", "nDCG@10 B", "delta", "p Holm"]
        + ["R@100 A", "R@100 B"],
        rows,
    )
    for side in report.sides:
        out.print(
            f"[dim]{side['label']}: {side['index_dir']} · {side['embedding_model']} · "
            f"reranker {side['reranker']}[/]"
        )
