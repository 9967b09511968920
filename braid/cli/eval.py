"""``braid eval ...``: run, suite, sweep, report, perturb, compare, tradeoffs.

Each command is a thin wrapper over ``braid.eval``: options -> ``load_settings`` -> read the
dataset (a bad one is a usage error, exit 2) -> one library call -> ``emit_json`` or a table.
The library (and with it torch and the models) is imported inside the commands, so that
``braid --help`` stays fast.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from braid.cli.common import (
    DataDirOption,
    ExitCode,
    JsonOption,
    ProfileOption,
    console,
    emit_json,
    exit_on_error,
    fail,
    load_settings,
    out,
    print_table,
    progress,
    show,
)
from braid.cli.eval_output import print_compare, print_perturb, print_run, print_sweep
from braid.engine.errors import BraidError

if TYPE_CHECKING:
    from collections.abc import Callable

    from braid.eval.datasets import Dataset

eval_app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)

DatasetArg = Annotated[
    str, typer.Argument(help="dataset folder (BEIR layout) or its name under --datasets")
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
RerankerOption = Annotated[
    str | None, typer.Option("--reranker", help="CrossEncoder name or folder for the +rerank modes")
]
LimitOption = Annotated[
    int | None, typer.Option("--limit", min=1, help="only the first N judged queries (smoke runs)")
]


def stage_progress(
    quiet: bool,
) -> Callable[[str], AbstractContextManager[Callable[[int, int], None]]]:
    """The library's ``StageProgress``: one rich bar per stage, none under ``--json``."""
    return lambda label: progress(label, quiet)


def read_split(dataset: str, datasets: Path | None, split: str) -> tuple[Path, Dataset]:
    """The dataset's folder and one split of it; exit 2 when either cannot be read."""
    from braid.eval.datasets import load_dataset, resolve_dataset

    with exit_on_error(ExitCode.USAGE):
        folder = resolve_dataset(dataset, datasets)
        return folder, load_dataset(folder, split)


# -- braid eval run -------------------------------------------------------------------------


@eval_app.command("run")
def run_command(
    dataset: DatasetArg,
    split: Annotated[str, typer.Option(help="qrels split to evaluate")] = "test",
    mode: Annotated[
        list[str] | None,
        typer.Option(
            "--mode",
            help="bm25, dense, hybrid, hybrid+rerank, bm25+rerank, or peer-qdrant (Qdrant "
            "Edge's own prefetch + RRF hybrid on the same index; opt-in) (repeatable)",
        ),
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
    from braid.engine.config import Settings
    from braid.eval.evaluation import limit_queries
    from braid.eval.experiments import choose_modes, result_name, run_evaluation, with_reranker

    settings = with_reranker(load_settings(data_dir, profile=profile), reranker)
    # the report names the profile in effect: --profile, else BRAID_PROFILE
    profile_name = profile or Settings(data_dir=settings.data_dir).profile
    folder, data = read_split(dataset, datasets, split)
    data = limit_queries(data, limit)
    with exit_on_error(ExitCode.USAGE):
        modes = choose_modes(mode or [], settings)
    if not mode and "hybrid+rerank" not in modes:
        console.print("[dim]hybrid+rerank skipped: no reranker configured (--reranker)[/]")
    with exit_on_error():
        report = run_evaluation(
            folder,
            data,
            settings,
            modes,
            depth=depth,
            candidates=candidates,
            index_dir=index_dir,
            profile=profile_name,
            save_as=result_name(data.split, profile_name, reranker, limit) if save else None,
            progress=stage_progress(as_json),
        )
    show(report, as_json, print_run)


# -- braid eval suite -----------------------------------------------------------------------


@eval_app.command("suite")
def suite_command(
    datasets_dir: Annotated[
        Path,
        typer.Argument(
            envvar="BRAID_EVAL_DATASETS",
            help="folder of dataset folders (BEIR layout), each run as `eval run` runs it",
        ),
    ],
    split: Annotated[
        str, typer.Option(help="qrels split (a collection without it is skipped)")
    ] = "test",
    names: Annotated[
        list[str] | None,
        typer.Option("--datasets", help="only these collections (repeatable; default all)"),
    ] = None,
    mode: Annotated[
        list[str] | None,
        typer.Option("--mode", help="modes (repeatable; default bm25 dense hybrid peer-qdrant)"),
    ] = None,
    profile: ProfileOption = None,
    limit: LimitOption = None,
    data_dir: DataDirOption = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out", help="folder for suite.md/.json/.png (default <data-dir>/eval/suite)"
        ),
    ] = None,
    save: Annotated[
        bool, typer.Option(help="save each collection's run files and result, as `eval run`")
    ] = True,
    as_json: JsonOption = False,
) -> None:
    """Every collection through the same modes: one table of nDCG@10 and R@100, and hybrid's
    paired tests against the best single retriever and the peer."""
    from braid.engine.config import Settings
    from braid.eval.experiments import choose_modes
    from braid.eval.suite import SUITE_MODES, plan_suite, run_suite, write_suite

    settings = load_settings(data_dir, profile=profile)
    profile_name = profile or Settings(data_dir=settings.data_dir).profile
    with exit_on_error(ExitCode.USAGE):
        plan = plan_suite(datasets_dir, split, names or (), limit)
        modes = choose_modes(mode or SUITE_MODES, settings)
    with exit_on_error():
        report = run_suite(
            plan,
            settings,
            modes,
            profile=profile_name,
            save=save,
            progress=stage_progress(as_json),
        )
    files = write_suite(report, out_dir or settings.data_dir / "eval" / "suite")
    if as_json:
        emit_json(report.as_dict())
        return
    print_table(f"suite {datasets_dir} ({split})", report.columns(), report.rows())
    for skipped in report.skipped:
        console.print(f"[dim]skipped {skipped.dataset}: {skipped.reason}[/]", highlight=False)
    console.print(f"[dim]wrote {', '.join(str(p) for p in files.values() if p)}[/]")


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
    from braid.eval.evaluation import limit_queries
    from braid.eval.tuning import SweepGrid, check_splits, tune_fusion

    with exit_on_error(ExitCode.USAGE):
        check_splits(train_split, test_split)
    settings = load_settings(data_dir)
    folder, train = read_split(dataset, datasets, train_split)
    with exit_on_error():
        report = tune_fusion(
            folder,
            limit_queries(train, limit),
            settings,
            test_split=test_split,
            profile_name=profile_name,
            grid=SweepGrid.quick() if quick else SweepGrid.full(),
            limit=limit,
            index_dir=index_dir,
            progress=stage_progress(as_json),
        )
    show(report, as_json, print_sweep)


# -- braid eval report ----------------------------------------------------------------------


@eval_app.command("report")
def report_command(
    dataset: Annotated[
        str, typer.Argument(help="dataset name (or folder) whose results to report")
    ],
    split: Annotated[str, typer.Option(help="split of the `eval run` result")] = "test",
    profile: Annotated[
        str | None, typer.Option("--profile", help="profile of the `eval run` result")
    ] = None,
    sweep_split: Annotated[str, typer.Option(help="train split of the sweep to include")] = "train",
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="folder for report.md and PNGs")
    ] = None,
    data_dir: DataDirOption = None,
    index_dir: IndexDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Markdown report with plots from saved `eval run` and `eval sweep` results."""
    from braid.eval.report import NothingToReportError, report_saved

    settings = load_settings(data_dir)
    try:
        written = report_saved(
            settings.data_dir,
            Path(dataset).name,
            split=split,
            profile=profile,
            sweep_split=sweep_split,
            index_dir=index_dir,
            out_dir=out_dir,
        )
    except NothingToReportError as exc:
        raise fail(str(exc)) from exc
    if as_json:
        emit_json(written.as_dict())
    else:
        out.print(f"wrote {written.report}")
        for f in written.files:
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
    from braid.eval.evaluation import limit_queries
    from braid.eval.experiments import PERTURB_MODES, perturb_queries, with_reranker

    settings = with_reranker(load_settings(data_dir, profile=profile), reranker)
    folder, data = read_split(dataset, datasets, split)
    try:
        report = perturb_queries(
            folder,
            limit_queries(data, limit),
            settings,
            mode or PERTURB_MODES,
            kind or None,
            seed,
            index_dir=index_dir,
            progress=stage_progress(as_json),
        )
    except (BraidError, ValueError) as exc:
        raise fail(str(exc)) from exc
    show(report, as_json, print_perturb)


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
    from braid.eval.evaluation import limit_queries
    from braid.eval.experiments import (
        COMPARE_MODES,
        compare_configs,
        shadow_sides,
        with_embedding_model,
        with_reranker,
    )

    folder, data = read_split(dataset, datasets, split)
    a, b = (
        with_reranker(with_embedding_model(load_settings(data_dir, profile=prof), model), rr)
        for prof, model, rr in ((profile_a, model_a, reranker_a), (profile_b, model_b, reranker_b))
    )
    with exit_on_error(ExitCode.USAGE):
        sides = shadow_sides(folder, a, b, index_a=index_a, index_b=index_b)
    with exit_on_error():
        report = compare_configs(
            folder,
            limit_queries(data, limit),
            sides,
            modes=mode or COMPARE_MODES,
            k=k,
            progress=stage_progress(as_json),
        )
    show(report, as_json, print_compare)


# -- braid eval tradeoffs -------------------------------------------------------------------


@eval_app.command("tradeoffs")
def tradeoffs_command(
    dataset: DatasetArg,
    split: Annotated[str, typer.Option(help="qrels split to evaluate")] = "test",
    dims: Annotated[
        str | None,
        typer.Option(
            "--dims",
            help="comma-separated dimensions to cut the vectors to (default 384,256,128,64 "
            "up to the model's; its full dimension is always the baseline)",
        ),
    ] = None,
    binary: Annotated[
        bool, typer.Option("--binary", help="also Qdrant's binary quantization")
    ] = False,
    pca: Annotated[
        bool,
        typer.Option(
            "--pca",
            help="also each cut after rotating the vectors onto the corpus's principal axes "
            "(label-free; what `braid train pca` deploys)",
        ),
    ] = False,
    hybrid: Annotated[
        bool, typer.Option(help="also hybrid: the index's BM25 with each truncated store")
    ] = True,
    model: Annotated[
        str | None,
        typer.Option("--model", help="embedding model (name or folder; default: configured)"),
    ] = None,
    search_threads: Annotated[
        int, typer.Option("--search-threads", min=1, help="search threads of every shard")
    ] = 1,
    depth: Annotated[
        int, typer.Option(help="chunks asked for per query (filled to 100 documents)")
    ] = 200,
    limit: LimitOption = None,
    data_dir: DataDirOption = None,
    index_dir: IndexDirOption = None,
    datasets: DatasetsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Matryoshka and quantization trade-offs: nDCG@10, memory and search latency per
    truncated dimension x float32 / int8 (/ binary) (/ PCA-rotated), with paired tests
    against full float32."""
    from braid.engine.errors import InvalidRequestError
    from braid.eval.evaluation import limit_queries
    from braid.eval.tradeoffs import measure_tradeoffs, parse_dims

    with exit_on_error(ExitCode.USAGE):
        wanted = parse_dims(dims) if dims is not None else None
    settings = load_settings(data_dir)
    folder, data = read_split(dataset, datasets, split)
    try:
        report = measure_tradeoffs(
            folder,
            limit_queries(data, limit),
            settings,
            dims=wanted,
            binary=binary,
            pca=pca,
            hybrid=hybrid,
            model=model,
            depth=depth,
            search_threads=search_threads,
            index_dir=index_dir,
            progress=stage_progress(as_json),
        )
    except InvalidRequestError as exc:  # a dimension above the model's
        raise fail(str(exc), ExitCode.USAGE) from exc
    except BraidError as exc:
        raise fail(str(exc)) from exc
    if as_json:
        emit_json(report.as_dict())
        return
    print_table(report.title(), report.columns(), report.table_rows())
    for note in report.notes:
        console.print(f"[dim]{note}[/]", highlight=False)
