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

from engine.config import Settings
from engine.errors import BraidError

eval_app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)
train_app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)
console = Console(stderr=True)
out = Console()

DatasetArg = Annotated[str, typer.Argument(help="dataset folder (BEIR layout) or its name under --datasets")]
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
    typer.Option("--index-dir", help="the dataset's own data dir (default <data-dir>/eval/<dataset>)"),
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
    return Settings(data_dir=data_dir) if data_dir is not None else Settings()


def _fail(message: str, code: int = 1) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


def _emit(payload: object) -> None:
    sys.stdout.write(json.dumps(payload, ensure_ascii=False, default=str) + "\n")


@contextmanager
def _progress(label: str, quiet: bool) -> Iterator[Callable[[int, int], None]]:
    """A progress callback (done, total), drawn only on an interactive terminal."""
    if quiet or not sys.stderr.isatty():
        yield lambda done, total: None
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


def _open(
    folder: Path, settings: Settings, index_dir: Path | None, quiet: bool
) -> Any:
    from eval.indexes import open_index

    with _progress(f"ingest {folder.name}", quiet) as update:
        return open_index(
            folder,
            settings,
            index_dir,
            on_progress=lambda p: update(p.documents + p.skipped, 0),
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
    depth: Annotated[int, typer.Option(help="chunks asked for per query (filled to 100 documents)")] = 200,
    candidates: Annotated[int | None, typer.Option(help="hits per retriever (default: depth)")] = None,
    limit: LimitOption = None,
    data_dir: DataDirOption = None,
    index_dir: IndexDirOption = None,
    datasets: DatasetsOption = None,
    save: Annotated[bool, typer.Option(help="write run files and the result JSON")] = True,
    as_json: JsonOption = False,
) -> None:
    """Evaluate modes on one split: metrics, anchors, significance, latency per stage."""
    from eval.datasets import load_dataset, resolve_dataset
    from eval.evaluation import evaluate_mode, result_document, save_result, significance
    from eval.profiles import apply_profile, load_profile
    from eval.runs import DEFAULT_MODES, MODES, RunParams, split_mode

    settings = _settings(data_dir)
    try:
        if profile:
            settings = apply_profile(settings, load_profile(settings.data_dir, profile))
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
            name = f"{data.split}-{profile or 'default'}" + (f"-limit{limit}" if limit else "")
            document["result_file"] = str(
                save_result(document, index.data_dir / "results", name)
            )
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
    from eval.metrics import METRICS

    title = (
        f"{document['dataset']} {document['split']} ({document['queries']} queries)"
        + (f", profile {document['profile']}" if document.get("profile") else "")
    )
    table = Table(title=title)
    table.add_column("mode")
    for metric in METRICS:
        table.add_column(metric, justify="right")
    table.add_column("anchor nDCG@10", justify="right")
    table.add_column("anchor", overflow="fold")
    for name, entry in document["modes"].items():
        anchor = entry.get("anchor") or {}
        table.add_row(
            name,
            *(_fmt(entry["metrics"].get(m)) for m in METRICS),
            _fmt(anchor.get("ndcg@10")),
            anchor.get("system", ""),
        )
    out.print(table)

    if document.get("significance"):
        sig = Table(title=f"paired tests vs best single retriever ({document['baseline']})")
        for column in ("mode", "metric", "delta", "p (randomisation)", "p (t-test)", "p Holm", "W/L/T"):
            sig.add_column(column, justify="right" if column != "mode" else "left")
        for c in document["significance"]:
            star = " *" if c["significant"] else ""
            sig.add_row(
                c["system"], c["metric"], f"{c['delta']:+.4f}", _fmt(c["p_randomisation"]),
                _fmt(c["p_ttest"]), _fmt(c["p_holm"]) + star, f"{c['wins']}/{c['losses']}/{c['ties']}",
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
