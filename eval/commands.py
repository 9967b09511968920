"""``braid eval ...`` and ``braid train ...``: thin typer commands over the ``eval`` modules.

Every command takes ``--json`` and prints machine-readable output on stdout; tables and progress
bars go to the terminal only.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from braid.engine.config import Settings
from braid.engine.errors import BraidError

eval_app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)
train_app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)
console = Console(stderr=True)
out = Console()

DatasetArg = Annotated[
    str, typer.Argument(help="dataset folder (BEIR layout) or its name under --datasets")
]
DataDirOption = Annotated[
    Path | None,
    typer.Option("--data-dir", help="data directory (default ./braid-data, env BRAID_DATA_DIR)"),
]
DatasetsOption = Annotated[
    Path | None,
    typer.Option("--datasets", envvar="BRAID_EVAL_DATASETS", help="folder holding dataset folders"),
]
IndexDirOption = Annotated[
    Path | None,
    typer.Option(
        "--index-dir", help="the dataset's own data dir (default <data-dir>/eval/<dataset>)"
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="print machine-readable JSON on stdout")]
ProfileOption = Annotated[
    str | None, typer.Option("--profile", help="apply <data-dir>/profiles/NAME.json (from a sweep)")
]
RerankerOption = Annotated[
    str | None, typer.Option("--reranker", help="CrossEncoder name or folder for the +rerank modes")
]
LimitOption = Annotated[
    int | None, typer.Option("--limit", min=1, help="only the first N judged queries (smoke runs)")
]


def _settings(data_dir: Path | None) -> Settings:
    """Settings from the environment; ``BRAID_PROFILE`` is applied later, against this data dir
    (``eval.indexes.index_settings``), and ``--profile`` on top of it."""
    return Settings(data_dir=data_dir) if data_dir is not None else Settings()


def _apply_named(settings: Settings, name: str) -> Settings:
    """``--profile NAME`` on top of any ``BRAID_PROFILE``, both from the main data dir."""
    from braid.engine.profiles import apply_profile, load_profile, with_profile

    named = apply_profile(with_profile(settings), load_profile(settings.data_dir, name))
    return named.model_copy(update={"profile": None})


def _fail(message: str, code: int = 1) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


def _emit(payload: object) -> None:
    sys.stdout.write(json.dumps(payload, ensure_ascii=False, default=str) + "\n")


def _no_progress(done: int, total: int) -> None:
    del done, total


@contextmanager
def _progress(label: str, quiet: bool) -> Iterator[Callable[[int, int], None]]:
    """A progress callback (done, total), drawn only on an interactive terminal."""
    if quiet or not sys.stderr.isatty():
        yield _no_progress
        return
    columns = (
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def _with_reranker(settings: Settings, reranker: str | None) -> Settings:
    if not reranker:
        return settings
    section = settings.reranker.model_copy(update={"model": reranker, "enabled": True})
    return settings.model_copy(update={"reranker": section})


def _open(folder: Path, settings: Settings, index_dir: Path | None, quiet: bool) -> Any:
    from braid.eval.datasets import count_corpus
    from braid.eval.indexes import open_index

    total = count_corpus(folder)
    with _progress(f"ingest {folder.name}", quiet) as update:
        return open_index(
            folder,
            settings,
            index_dir,
            on_progress=lambda p: update(p.documents + p.skipped + p.errors, total),
        )


def _fmt(value: object, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


# -- braid eval run -------------------------------------------------------------------------


@eval_app.command("run")
def run_command(
    dataset: DatasetArg,
    split: Annotated[str, typer.Option(help="qrels split to evaluate")] = "test",
    mode: Annotated[
        list[str] | None,
        typer.Option("--mode", help="bm25, dense, hybrid, hybrid+rerank, bm25+rerank (repeatable)"),
    ] = None,
    profile: ProfileOption = None,
    reranker: RerankerOption = None,
    depth: Annotated[
        int, typer.Option(help="chunks asked for per query (filled to 100 documents)")
    ] = 200,
    candidates: Annotated[
        int | None, typer.Option(help="hits per retriever (default: depth)")
    ] = None,
    limit: LimitOption = None,
    data_dir: DataDirOption = None,
    index_dir: IndexDirOption = None,
    datasets: DatasetsOption = None,
    save: Annotated[bool, typer.Option(help="write run files and the result JSON")] = True,
    as_json: JsonOption = False,
) -> None:
    """Evaluate modes on one split: metrics, anchors, significance, latency per stage."""
    from braid.eval.datasets import load_dataset, resolve_dataset
    from braid.eval.evaluation import evaluate_mode, result_document, save_result, significance
    from braid.eval.runs import DEFAULT_MODES, MODES, RunParams, split_mode

    settings = _settings(data_dir)
    profile = profile or settings.profile  # --profile, else BRAID_PROFILE
    try:
        if profile:
            settings = _apply_named(settings.model_copy(update={"profile": None}), profile)
        settings = _with_reranker(settings, reranker)
        folder = resolve_dataset(dataset, datasets)
        data = load_dataset(folder, split)
    except BraidError as exc:
        raise _fail(str(exc), 2) from exc
    if limit:
        data = _limited(data, limit)
    asked = list(mode or [])
    for m in asked:
        if m not in MODES:
            raise _fail(f"unknown mode {m!r}; choose from {', '.join(MODES)}", 2)
    has_reranker = bool(settings.reranker.enabled and settings.reranker.model)
    modes = asked or [m for m in DEFAULT_MODES if has_reranker or not split_mode(m)[1]]
    if not has_reranker and any(split_mode(m)[1] for m in modes):
        raise _fail("a +rerank mode needs a reranker: --reranker MODEL or a profile naming one", 2)
    if not asked and not has_reranker:
        console.print("[dim]hybrid+rerank skipped: no reranker configured (--reranker)[/]")

    try:
        index = _open(folder, settings, index_dir, as_json)
    except BraidError as exc:
        raise _fail(str(exc)) from exc
    try:
        searcher = index.workspace.engine.searcher
        context = {"index": index.state, "profile": profile}
        runs_dir = index.data_dir / "runs" if save else None
        results = []
        for m in modes:
            params = RunParams(mode=m, depth=depth, candidates=candidates)
            with _progress(m, as_json) as update:
                results.append(
                    evaluate_mode(
                        searcher, data, params, context=context, runs_dir=runs_dir, on_query=update
                    )
                )
        comparisons = significance(results)
        document = result_document(
            data, results, comparisons, index_state=index.state, profile=profile
        )
        if save:
            name = (
                f"{data.split}-{profile or 'default'}"
                + (f"-reranker-{Path(reranker).name}" if reranker else "")
                + (f"-limit{limit}" if limit else "")
            )
            document["result_file"] = str(save_result(document, index.data_dir / "results", name))
    except BraidError as exc:
        raise _fail(str(exc)) from exc
    finally:
        index.close()
    if as_json:
        _emit(document)
    else:
        print_result(document)


def _limited(data: Any, limit: int) -> Any:
    from dataclasses import replace

    queries = dict(list(data.queries.items())[:limit])
    return replace(data, queries=queries, qrels={q: data.qrels[q] for q in queries})


def print_result(document: dict[str, Any]) -> None:
    from braid.eval.metrics import METRICS

    title = f"{document['dataset']} {document['split']} ({document['queries']} queries)" + (
        f", profile {document['profile']}" if document.get("profile") else ""
    )
    table = Table(title=title)
    table.add_column("mode")
    for metric in METRICS:
        table.add_column(metric, justify="right")
    table.add_column("anchor nDCG@10", justify="right")
    for name, entry in document["modes"].items():
        anchor = entry.get("anchor") or {}
        table.add_row(
            name,
            *(_fmt(entry["metrics"].get(m)) for m in METRICS),
            _fmt(anchor.get("ndcg@10")),
        )
    out.print(table)

    if document.get("significance"):
        sig = Table(title=f"paired tests vs best single retriever ({document['baseline']})")
        for column in (
            "mode",
            "metric",
            "delta",
            "p (randomisation)",
            "p (t-test)",
            "p Holm",
            "W/L/T",
        ):
            sig.add_column(column, justify="right" if column != "mode" else "left")
        for c in document["significance"]:
            star = " *" if c["significant"] else ""
            sig.add_row(
                c["system"],
                c["metric"],
                f"{c['delta']:+.4f}",
                _fmt(c["p_randomisation"]),
                _fmt(c["p_ttest"]),
                _fmt(c["p_holm"]) + star,
                f"{c['wins']}/{c['losses']}/{c['ties']}",
            )
        out.print(sig)

    lat = Table(title="latency per query, ms (p50 / p95)")
    stages = ("embed", "dense", "sparse", "fuse", "rerank", "fetch", "total")
    lat.add_column("mode")
    for stage in stages:
        lat.add_column(stage, justify="right")
    for name, entry in document["modes"].items():
        cells = []
        for stage in stages:
            s = entry["latency_ms"].get(stage)
            cells.append(f"{s['p50']:.2f} / {s['p95']:.2f}" if s else "-")
        lat.add_row(name, *cells)
    out.print(lat)

    if document.get("anchors"):
        anchors = Table(title="reference numbers (shared/data/README.md)")
        for column in ("system", "vs mode", "nDCG@10", "R@100", "source"):
            anchors.add_column(column, overflow="fold")
        for a in document["anchors"]:
            anchors.add_row(
                a["system"], a["mode"], _fmt(a["ndcg@10"]), _fmt(a["recall@100"]), a["source"]
            )
        out.print(anchors)
    if document.get("result_file"):
        console.print(f"[dim]saved {document['result_file']}[/]")


# -- braid eval sweep -----------------------------------------------------------------------


@eval_app.command("sweep")
def sweep_command(
    dataset: DatasetArg,
    train_split: Annotated[str, typer.Option("--train-split", help="split to tune on")] = "train",
    test_split: Annotated[
        str | None,
        typer.Option("--test-split", help="split to report the chosen config on (after choosing)"),
    ] = "test",
    profile_name: Annotated[
        str | None, typer.Option("--save-profile", help="profile name (default <dataset>-tuned)")
    ] = None,
    quick: Annotated[bool, typer.Option(help="a small grid (smoke runs)")] = False,
    limit: LimitOption = None,
    data_dir: DataDirOption = None,
    index_dir: IndexDirOption = None,
    datasets: DatasetsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Tune RRF k, weights, convex alpha and depth on the train split; report once on test."""
    from braid.engine.profiles import save_profile
    from braid.engine.searcher import HybridSearcher
    from braid.eval.caching import CachingEmbedder
    from braid.eval.datasets import load_dataset, resolve_dataset
    from braid.eval.evaluation import (
        evaluate_mode,
        save_result,
        significance,
        with_mode_name,
    )
    from braid.eval.runs import RunParams
    from braid.eval.sweep import CANDIDATES, best, first_stage_grid, profile_from, run_sweep

    if test_split is not None and test_split == train_split:
        raise _fail("--test-split must differ from --train-split: never tune on test", 2)
    settings = _settings(data_dir)
    try:
        folder = resolve_dataset(dataset, datasets)
        train = load_dataset(folder, train_split)
    except BraidError as exc:
        raise _fail(str(exc), 2) from exc
    if limit:
        train = _limited(train, limit)
    name = profile_name or f"{train.name}-tuned"
    grid = (
        first_stage_grid(ks=(10, 60), shares=(0.5, 0.6), alphas=(0.5,), candidates=100)
        if quick
        else first_stage_grid()
    )
    depths: tuple[int, ...] = (50, 100) if quick else CANDIDATES
    try:
        index = _open(folder, settings, index_dir, as_json)
    except BraidError as exc:
        raise _fail(str(exc)) from exc
    try:
        engine = index.workspace.engine
        cached = HybridSearcher(
            CachingEmbedder(engine.embedder),
            engine.dense,
            engine.sparse,
            None,
            engine.searcher.defaults,
        )
        try:
            with _progress("sweep", as_json) as update:
                points = run_sweep(
                    cached,
                    train,
                    grid=grid,
                    candidates=depths,
                    on_point=lambda i, n, _p: update(i, n),
                )
        finally:
            cached.close()
        chosen = best(points)
        model = engine.embedder.info
        profile = profile_from(
            chosen, train, embedding_model={"id": model.model_id, "version": model.version}
        )
        profile_file = save_profile(settings.data_dir, name, profile)
        document: dict[str, Any] = {
            "dataset": train.name,
            "train_split": train.split,
            "train_queries": len(train.queries),
            "points": [p.as_dict() for p in points],
            "chosen": chosen.as_dict(),
            "best_rrf": best(points, fusion="rrf").as_dict(),
            "best_convex": best(points, fusion="convex").as_dict()
            if any(p.params.fusion == "convex" for p in points)
            else None,
            "profile": name,
            "profile_file": str(profile_file),
            "test_split": test_split,
            "test": {},
        }
        # The test split is read only now, after the choice, and only to report it.
        if test_split:
            test = load_dataset(folder, test_split)
            if limit:
                test = _limited(test, limit)
            configs: list[tuple[str, RunParams]] = [
                ("bm25", RunParams(mode="bm25")),
                ("dense", RunParams(mode="dense")),
                ("hybrid (default)", RunParams(mode="hybrid")),
                ("hybrid (tuned rrf)", best(points, fusion="rrf").params),
            ]
            if document["best_convex"]:
                configs.append(("hybrid (tuned convex)", best(points, fusion="convex").params))
            results = []
            for label, params in configs:
                with _progress(f"test {label}", as_json) as update:
                    result = evaluate_mode(engine.searcher, test, params, on_query=update)
                results.append(with_mode_name(result, label))
            document["test"] = {r.mode: r.means for r in results}
            document["test_labels"] = {r.mode: r.run.meta.get("label") for r in results}
            document["test_significance"] = [c.as_dict() for c in significance(results)]
        document["result_file"] = str(
            save_result(document, index.data_dir / "results", f"sweep-{train.split}")
        )
    except BraidError as exc:
        raise _fail(str(exc)) from exc
    finally:
        index.close()
    if as_json:
        _emit(document)
        return
    _print_sweep(document)


def _print_sweep(document: dict[str, Any]) -> None:
    points = sorted(document["points"], key=lambda p: -p["metrics"]["ndcg@10"])
    table = Table(
        title=f"sweep on {document['dataset']} {document['train_split']} (top 15 of {len(points)})"
    )
    for column in ("configuration", "nDCG@10", "R@100", "MRR@10", "p50 ms"):
        table.add_column(column, justify="left" if column == "configuration" else "right")
    for p in points[:15]:
        m = p["metrics"]
        table.add_row(
            p["label"],
            _fmt(m["ndcg@10"]),
            _fmt(m["recall@100"]),
            _fmt(m["mrr@10"]),
            f"{p['latency_p50_ms']:.1f}",
        )
    out.print(table)
    out.print(
        f"chosen on {document['train_split']}: [bold]{document['chosen']['label']}[/] "
        f"-> profile {document['profile']} ({document['profile_file']})"
    )
    if document.get("test"):
        test = Table(title=f"on {document['test_split']} (reported after choosing)")
        for column in ("configuration", "params", "nDCG@10", "R@100", "MRR@10"):
            test.add_column(column)
        for label, means in document["test"].items():
            test.add_row(
                label,
                document["test_labels"].get(label, ""),
                _fmt(means["ndcg@10"]),
                _fmt(means["recall@100"]),
                _fmt(means["mrr@10"]),
            )
        out.print(test)


# -- braid eval report ----------------------------------------------------------------------


@eval_app.command("report")
def report_command(
    dataset: Annotated[
        str, typer.Argument(help="dataset name (or folder) whose results to report")
    ],
    split: Annotated[str, typer.Option(help="split of the `eval run` result")] = "test",
    profile: ProfileOption = None,
    sweep_split: Annotated[str, typer.Option(help="train split of the sweep to include")] = "train",
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="folder for report.md and PNGs")
    ] = None,
    data_dir: DataDirOption = None,
    index_dir: IndexDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Markdown report with plots from saved `eval run` and `eval sweep` results."""
    from braid.eval.evaluation import load_result
    from braid.eval.indexes import default_index_dir
    from braid.eval.report import write_report

    settings = _settings(data_dir)
    folder = index_dir or default_index_dir(settings.data_dir, Path(dataset).name)
    results = folder / "results"
    result_path = results / f"{split}-{profile or 'default'}.json"
    sweep_path = results / f"sweep-{sweep_split}.json"
    result = load_result(result_path) if result_path.is_file() else None
    sweep = load_result(sweep_path) if sweep_path.is_file() else None
    if result is None and sweep is None:
        raise _fail(
            f"nothing to report in {results}: run `braid eval run` or `braid eval sweep` first"
        )
    target = out_dir or folder / "report"
    path = write_report(target, result, sweep)
    files = sorted(str(p) for p in target.iterdir())
    if as_json:
        _emit({"report": str(path), "files": files})
    else:
        out.print(f"wrote {path}")
        for f in files:
            out.print(f"  {f}")


# -- braid eval perturb ---------------------------------------------------------------------


@eval_app.command("perturb")
def perturb_command(
    dataset: DatasetArg,
    split: Annotated[str, typer.Option(help="qrels split whose queries are edited")] = "test",
    mode: Annotated[list[str] | None, typer.Option("--mode", help="modes (repeatable)")] = None,
    kind: Annotated[
        list[str] | None, typer.Option("--kind", help="typo, stopwords, reorder (repeatable)")
    ] = None,
    seed: Annotated[int, typer.Option(help="seed of the edits")] = 0,
    profile: ProfileOption = None,
    reranker: RerankerOption = None,
    limit: LimitOption = None,
    data_dir: DataDirOption = None,
    index_dir: IndexDirOption = None,
    datasets: DatasetsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Rank stability under small query edits: overlap@10 and RBO per mode, and nDCG@10 change."""
    from braid.eval.robustness import perturbation_study

    settings = _settings(data_dir)
    data, folder, settings = _load_for_study(
        dataset, split, profile, reranker, limit, datasets, settings
    )
    modes = mode or ["bm25", "dense", "hybrid"]
    try:
        index = _open(folder, settings, index_dir, as_json)
    except BraidError as exc:
        raise _fail(str(exc)) from exc
    try:
        with _progress("perturb", as_json) as update:
            rows = perturbation_study(
                index.workspace.engine.searcher, data, modes, kind or None, seed, on_step=update
            )
    except (BraidError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    finally:
        index.close()
    document = {
        "dataset": data.name,
        "split": data.split,
        "queries": len(data.queries),
        "seed": seed,
        "rows": rows,
    }
    if as_json:
        _emit(document)
        return
    table = Table(title=f"rank stability under query edits: {data.name} {data.split}")
    for column in (
        "mode",
        "edit",
        "changed",
        "overlap@10",
        "RBO p=0.9",
        "nDCG@10",
        "edited nDCG@10",
    ):
        table.add_column(column, justify="left" if column in ("mode", "edit") else "right")
    for r in rows:
        table.add_row(
            str(r["mode"]),
            str(r["edit"]),
            str(r["changed"]),
            _fmt(r["overlap@10"]),
            _fmt(r["rbo"]),
            _fmt(r["ndcg@10"]),
            _fmt(r["edited_ndcg@10"]),
        )
    out.print(table)


def _load_for_study(
    dataset: str,
    split: str,
    profile: str | None,
    reranker: str | None,
    limit: int | None,
    datasets: Path | None,
    settings: Settings,
) -> tuple[Any, Path, Settings]:
    from braid.eval.datasets import load_dataset, resolve_dataset

    try:
        if profile:
            settings = _apply_named(settings, profile)
        settings = _with_reranker(settings, reranker)
        folder = resolve_dataset(dataset, datasets)
        data = load_dataset(folder, split)
    except BraidError as exc:
        raise _fail(str(exc), 2) from exc
    return (_limited(data, limit) if limit else data), folder, settings


# -- braid eval compare ---------------------------------------------------------------------


@eval_app.command("compare")
def compare_command(
    dataset: DatasetArg,
    split: Annotated[str, typer.Option(help="qrels split to run")] = "test",
    mode: Annotated[list[str] | None, typer.Option("--mode", help="modes (repeatable)")] = None,
    index_a: Annotated[
        Path | None, typer.Option("--index-a", help="data dir A (default: the dataset's index)")
    ] = None,
    index_b: Annotated[
        Path | None, typer.Option("--index-b", help="data dir B (default: same as A)")
    ] = None,
    model_a: Annotated[str | None, typer.Option("--model-a", help="embedding model of A")] = None,
    model_b: Annotated[str | None, typer.Option("--model-b", help="embedding model of B")] = None,
    reranker_a: Annotated[str | None, typer.Option("--reranker-a", help="reranker of A")] = None,
    reranker_b: Annotated[str | None, typer.Option("--reranker-b", help="reranker of B")] = None,
    profile_a: Annotated[str | None, typer.Option("--profile-a", help="profile of A")] = None,
    profile_b: Annotated[str | None, typer.Option("--profile-b", help="profile of B")] = None,
    k: Annotated[int, typer.Option("--k", min=1, help="depth of overlap@k")] = 10,
    limit: LimitOption = None,
    data_dir: DataDirOption = None,
    datasets: DatasetsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Shadow comparison: one query set on two indexes, models, rerankers or profiles."""
    from braid.eval.indexes import default_index_dir
    from braid.eval.robustness import Side, compare_sides

    base = _settings(data_dir)
    data, folder, _ = _load_for_study(dataset, split, None, None, limit, datasets, base)
    default_dir = default_index_dir(base.data_dir, folder.resolve().name)
    sides = []
    for label, idx, model, rr, prof in (
        ("A", index_a, model_a, reranker_a, profile_a),
        ("B", index_b or index_a, model_b, reranker_b, profile_b),
    ):
        settings = base
        if model:
            settings = settings.model_copy(
                update={"embedder": settings.embedder.model_copy(update={"model": model})}
            )
        try:
            if prof:
                settings = _apply_named(settings, prof)
        except BraidError as exc:
            raise _fail(str(exc), 2) from exc
        settings = _with_reranker(settings, rr)
        sides.append(Side(label, settings, idx or default_dir))
    if sides[0].settings == sides[1].settings and sides[0].index_dir == sides[1].index_dir:
        raise _fail(
            "A and B are the same: give --index-b, --model-b, --reranker-b or --profile-b", 2
        )
    modes = mode or ["hybrid"]
    try:
        with _progress("compare", as_json) as update:
            document: dict[str, Any] = compare_sides(folder, data, sides, modes, k, on_step=update)
    except BraidError as exc:
        raise _fail(str(exc)) from exc
    if as_json:
        _emit(document)
        return
    table = Table(title=f"A vs B on {data.name} {data.split} ({len(data.queries)} queries)")
    for column in (
        "mode",
        f"overlap@{k}",
        "RBO",
        "nDCG@10 A",
        "nDCG@10 B",
        "delta",
        "p Holm",
        "R@100 A",
        "R@100 B",
    ):
        table.add_column(column, justify="left" if column == "mode" else "right")
    for r in document["rows"]:
        table.add_row(
            r["mode"],
            _fmt(r["overlap"]),
            _fmt(r["rbo"]),
            _fmt(r["a"]["ndcg@10"]),
            _fmt(r["b"]["ndcg@10"]),
            f"{r['delta_ndcg@10']:+.4f}",
            _fmt(r["p_holm"]),
            _fmt(r["a"]["recall@100"]),
            _fmt(r["b"]["recall@100"]),
        )
    out.print(table)
    for side in document["sides"]:
        out.print(
            f"[dim]{side['label']}: {side['index_dir']} · {side['embedding_model']} · reranker {side['reranker']}[/]"
        )


# -- braid train reranker -------------------------------------------------------------------


@train_app.command("reranker")
def train_reranker_command(
    dataset: Annotated[str, typer.Option("--dataset", help="dataset folder (BEIR layout) or name")],
    split: Annotated[str, typer.Option(help="split with the training labels")] = "train",
    base: Annotated[
        str, typer.Option(help="starting weights (default: the bundled MiniLM)")
    ] = "sentence-transformers/all-MiniLM-L6-v2",
    negatives: Annotated[int, typer.Option(min=1, help="hard negatives per positive")] = 4,
    self_supervised: Annotated[
        int, typer.Option(min=0, help="title -> abstract groups from the corpus")
    ] = 2000,
    epochs: Annotated[float, typer.Option(min=0.01)] = 1.0,
    batch_groups: Annotated[int, typer.Option(min=1, help="groups per optimiser step")] = 4,
    lr: Annotated[float, typer.Option(help="peak learning rate")] = 5e-5,
    head_lr_scale: Annotated[
        float, typer.Option(help="learning-rate multiplier of the new classification head")
    ] = 20.0,
    max_length: Annotated[int, typer.Option(min=16, help="tokens per (query, passage) pair")] = 256,
    max_steps: Annotated[int | None, typer.Option(min=1, help="stop after N steps")] = None,
    save_every: Annotated[int, typer.Option(min=1, help="checkpoint every N steps")] = 50,
    dev_fraction: Annotated[float, typer.Option(help="train queries held out for the gate")] = 0.1,
    gate_depth: Annotated[int, typer.Option(min=1, help="rerank depth of the gate")] = 30,
    gate_p: Annotated[
        float,
        typer.Option(help="the gain on dev must be significant at this level (randomisation)"),
    ] = 0.05,
    seed: Annotated[int, typer.Option()] = 13,
    data_dir: DataDirOption = None,
    index_dir: IndexDirOption = None,
    datasets: DatasetsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Fine-tune a CrossEncoder with hard negatives from our own index; gate it on held-out dev."""
    from braid.engine.devices import resolve_device
    from braid.engine.profiles import save_profile
    from braid.engine.reranker import CrossEncoderReranker
    from braid.engine.searcher import HybridSearcher
    from braid.eval.datasets import iter_corpus, load_dataset, resolve_dataset
    from braid.eval.evaluation import evaluate_mode
    from braid.eval.runs import RunParams
    from braid.eval.stats import compare
    from braid.eval.training import (
        STATE_FILE,
        TrainConfig,
        created_now,
        find_unfinished,
        load_groups,
        mine_labelled,
        mine_titles,
        next_version_dir,
        save_groups,
        split_dev,
        train_cross_encoder,
        write_card,
    )

    settings = _settings(data_dir)
    try:
        folder = resolve_dataset(dataset, datasets)
        labelled = load_dataset(folder, split)
        device = resolve_device(settings.reranker.device)
    except BraidError as exc:
        raise _fail(str(exc), 2) from exc
    train, dev = split_dev(labelled, dev_fraction)
    if not dev.queries:
        raise _fail("the dev split is empty: raise --dev-fraction", 2)
    config = TrainConfig(
        base=base,
        dataset=labelled.name,
        split=split,
        negatives=negatives,
        self_supervised=self_supervised,
        dev_fraction=dev_fraction,
        epochs=epochs,
        batch_groups=batch_groups,
        lr=lr,
        max_length=max_length,
        seed=seed,
        max_steps=max_steps,
        save_every=save_every,
        gate_rerank_depth=gate_depth,
        head_lr_scale=head_lr_scale,
    )
    resumed = find_unfinished(settings.data_dir, config)
    out_dir = resumed or next_version_dir(settings.data_dir, labelled.name)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        index = _open(folder, settings, index_dir, as_json)
    except BraidError as exc:
        raise _fail(str(exc)) from exc
    try:
        engine = index.workspace.engine
        groups_file = out_dir / "groups.jsonl"
        if groups_file.is_file():
            groups = load_groups(groups_file)
        else:
            corpus = {d.doc_id: d for d in iter_corpus(folder)}
            with _progress("mine negatives", as_json) as update:
                update(0, 2)
                groups = mine_labelled(engine.searcher, train, corpus, negatives, 20)
                update(1, 2)
                groups += mine_titles(engine.searcher, corpus, self_supervised, negatives, 20, seed)
                update(2, 2)
            save_groups(groups_file, groups)
        record: dict[str, Any] = {
            "config": config.__dict__,
            "config_key": config.key(),
            "created": created_now(),
            "device": device,
            "index": index.state,
            "data": {
                "labelled": sum(g.source == "labelled" for g in groups),
                "title": sum(g.source == "title" for g in groups),
                "train_queries": len(train.queries),
                "dev_queries": len(dev.queries),
            },
        }
        with _progress("train", as_json) as update:
            state = train_cross_encoder(
                groups,
                config,
                out_dir,
                device=device,
                on_step=lambda step, total, _loss: update(step, total),
                record=record,
            )
        record["state"] = state.__dict__
        # The gate: first-stage hybrid vs hybrid + this model on the held-out dev queries.
        reranker = CrossEncoderReranker(
            str(out_dir),
            device=device,
            cpu_threads=settings.embedder.cpu_threads,
            max_length=max_length,
            batch_size=settings.reranker.batch_size,
        )
        searcher = HybridSearcher(
            engine.embedder, engine.dense, engine.sparse, reranker, engine.searcher.defaults
        )
        try:
            with _progress("gate", as_json) as update:
                first = evaluate_mode(searcher, dev, RunParams(mode="hybrid"), on_query=update)
                reranked = evaluate_mode(
                    searcher,
                    dev,
                    RunParams(mode="hybrid+rerank", rerank_depth=gate_depth),
                    on_query=update,
                )
        finally:
            searcher.close()
        test = compare(
            "hybrid+rerank",
            "hybrid",
            "ndcg@10",
            reranked.scores["ndcg@10"],
            first.scores["ndcg@10"],
        )
        # "Beats the first stage" means a gain the paired test does not put down to chance.
        passed = test.delta > 0 and test.p_randomisation < gate_p
        record["gate"] = {
            "queries": len(dev.queries),
            "rerank_depth": gate_depth,
            "first_stage": first.means["ndcg@10"],
            "reranked": reranked.means["ndcg@10"],
            "delta": test.delta,
            "p_randomisation": test.p_randomisation,
            "required_p": gate_p,
            "passed": passed,
        }
        if passed:
            profile = {
                "reranker_model": str(out_dir.resolve()),
                "rerank_depth": gate_depth,
                "tuned_on": {"dataset": labelled.name, "split": dev.split, "gate": record["gate"]},
            }
            record["profile"] = f"{labelled.name}-rerank"
            save_profile(settings.data_dir, record["profile"], profile)
        (out_dir / STATE_FILE).write_text(json.dumps(record, indent=1, default=str) + "\n")
        write_card(out_dir, record)
    except BraidError as exc:
        raise _fail(str(exc)) from exc
    finally:
        index.close()
    summary = {
        "model": str(out_dir),
        "resumed": resumed is not None,
        "steps": record["state"]["step"],
        "data": record["data"],
        "gate": record["gate"],
        "profile": record.get("profile"),
    }
    if as_json:
        _emit(summary)
        return
    gate = record["gate"]
    out.print(f"model: {out_dir}" + (" (resumed)" if resumed else ""))
    out.print(
        f"gate on {gate['queries']} dev queries, nDCG@10: first stage {gate['first_stage']:.4f}, "
        f"reranked {gate['reranked']:.4f} (p={gate['p_randomisation']:.3f})"
    )
    if gate["passed"]:
        out.print(f"[green]passed[/]: enable it with --profile {record['profile']}")
    else:
        out.print("[yellow]not recommended[/]: it does not beat the first stage on dev")
