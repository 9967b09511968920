"""Writing the index: ``braid ingest``, ``delete``, ``optimize``, ``move-sparse``, ``reindex``.

Only ``ingest`` loads the embedding model (it chunks with the model's tokenizer and embeds);
``reindex`` loads the new model itself. The others open the stores alone.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from braid.cli.common import (
    DataDirOption,
    ExitCode,
    JsonOption,
    console,
    emit_json,
    exit_on_error,
    fail,
    load_settings,
    owned_workspace,
    parse_filter_option,
    print_fields,
    show,
)
from braid.engine.errors import BraidError

if TYPE_CHECKING:
    from braid.ingestion.pipeline import IngestPipeline, IngestReport
    from braid.ingestion.remote import RemoteIngest

MAX_ERRORS_SHOWN = 50


def ingest(
    paths: Annotated[
        list[str],
        typer.Argument(help="JSONL files, BEIR folders, folders of .txt/.md/.html, or - for stdin"),
    ],
    data_dir: DataDirOption = None,
    batch_size: Annotated[
        int | None, typer.Option(help="embedding batch size", min=1, max=4096)
    ] = None,
    strict: Annotated[
        bool,
        typer.Option(
            help="stop at the first bad record (exit 1); the records read before it are "
            "kept (ingested and committed): re-run after fixing the file, unchanged "
            "documents are skipped"
        ),
    ] = False,
    api: Annotated[
        str | None,
        typer.Option(
            "--api",
            help="send to a running braid server (found in the data dir when it holds the stores)",
        ),
    ] = None,
    api_key: Annotated[
        str | None, typer.Option("--api-key", help="write key for --api (env BRAID_API_KEY)")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Chunk, embed and index documents into both stores (idempotent: unchanged ones are skipped)."""
    from braid.engine.errors import IndexLockedError
    from braid.engine.locking import read_owner
    from braid.ingestion.remote import RemoteIngest
    from braid.ingestion.service import open_workspace

    settings = load_settings(data_dir)
    # A mistyped path is refused before the model loads and the data dir is created.
    missing = [name for name in paths if name != "-" and not Path(name).exists()]
    if missing:
        raise fail(f"{', '.join(missing)}: no such file or directory (nothing ingested)")
    workspace = None
    if api is None:
        try:
            workspace = open_workspace(settings, role="braid ingest", batch_size=batch_size)
        except IndexLockedError as exc:
            # A running server owns the stores: hand the documents to it.
            api = (read_owner(settings.data_dir) or {}).get("api_url")
            if not api:
                raise fail(
                    f"{exc}. Wait for it to finish, or send the documents to a server with --api URL."
                ) from exc
            console.print(f"{settings.data_dir} is served by {api}: sending the documents there")
        except BraidError as exc:
            raise fail(str(exc)) from exc
    with exit_on_error():
        if workspace is None:
            key = api_key or os.environ.get("BRAID_API_KEY")
            report = _run_ingest(
                RemoteIngest(str(api), key, batch_size or 256), paths, strict, as_json
            )
        else:
            try:
                report = _run_ingest(workspace.pipeline, paths, strict, as_json)
            finally:
                workspace.close()
    show(report, as_json, _print_report)
    if report.errors:
        raise typer.Exit(ExitCode.FAILED)


def _count_inputs(paths: list[str]) -> int | None:
    """Records to expect, for the progress bar's ETA (None: unknown, e.g. stdin)."""
    total = 0
    for name in paths:
        path = Path(name)
        if name == "-":
            return None
        if path.is_dir():
            corpus = path / "corpus.jsonl"
            if not corpus.is_file():
                total += sum(1 for p in path.rglob("*") if p.is_file())
                continue
            path = corpus
        if path.is_file():
            with path.open("rb") as handle:
                total += sum(
                    chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b"")
                )
    return total


def _run_ingest(
    pipeline: IngestPipeline | RemoteIngest, paths: list[str], strict: bool, quiet: bool
) -> IngestReport:
    import sys

    from rich.progress import (
        BarColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    from braid.ingestion.pipeline import Progress as IngestProgress
    from braid.ingestion.readers import read_inputs

    records = read_inputs(paths)
    if quiet or not sys.stderr.isatty():
        return pipeline.run(records, strict=strict)
    # Richer than common.progress: documents, chunks and chunks/s as they are written.
    columns = (
        TextColumn("[bold]ingest"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn(
            "{task.completed:,.0f} docs · {task.fields[chunks]:,} chunks · {task.fields[rate]:,.0f} chunks/s"
        ),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("ingest", total=_count_inputs(paths), chunks=0, rate=0.0)
        started = bar.get_time()

        def update(p: IngestProgress) -> None:
            elapsed = max(bar.get_time() - started, 1e-6)
            bar.update(
                task,
                completed=p.documents + p.skipped + p.errors,
                chunks=p.chunks,
                rate=p.chunks / elapsed,
            )

        return pipeline.run(records, strict=strict, on_progress=update)


def _print_report(report: IngestReport) -> None:
    fields: list[tuple[str, object]] = [
        ("documents indexed", f"{report.documents:,}"),
        ("chunks written", f"{report.chunks:,}"),
        ("unchanged, skipped", f"{report.skipped_unchanged:,}"),
        ("replaced (old chunks deleted)", f"{report.deleted:,}"),
        ("errors", f"{len(report.errors):,}"),
        ("seconds", f"{report.seconds:.1f}"),
    ]
    if report.seconds > 0:
        fields.append(("chunks/s", f"{report.chunks / report.seconds:,.1f}"))
    print_fields("ingest summary", fields)
    for error in report.errors[:MAX_ERRORS_SHOWN]:
        console.print(f"[red]{error}[/]", highlight=False)
    if len(report.errors) > MAX_ERRORS_SHOWN:
        console.print(f"... and {len(report.errors) - MAX_ERRORS_SHOWN} more errors")


def delete(
    doc_ids: Annotated[list[str] | None, typer.Argument(help="document ids to delete")] = None,
    filter_json: Annotated[
        str | None, typer.Option("--filter", help="delete every document matching this filter")
    ] = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete documents from both stores and the ledger, by id or by filter."""
    if bool(doc_ids) == bool(filter_json):
        raise fail("give document ids or --filter (one of them)", ExitCode.USAGE)
    _, expr = parse_filter_option(filter_json)
    with owned_workspace(load_settings(data_dir), "braid delete", models=False) as workspace:
        if expr is not None:
            deleted = workspace.pipeline.delete_by_filter(expr)
        else:
            deleted = workspace.pipeline.delete(doc_ids or [])
        workspace.pipeline.maybe_compact()
    missing = [] if expr is not None else sorted(set(doc_ids or []) - set(deleted))
    if as_json:
        emit_json({"deleted": deleted, "not_found": missing})
    else:
        console.print(
            f"deleted {len(deleted)} documents"
            + (f"; not found: {', '.join(missing)}" if missing else "")
        )


def optimize(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Compact Tantivy (drop deleted documents from BM25 statistics) and build Qdrant's indexes."""
    with owned_workspace(load_settings(data_dir), "braid optimize", models=False) as workspace:
        workspace.pipeline.optimize()
        result = {
            "dense_chunks": workspace.engine.dense.count(),
            "sparse_chunks": workspace.engine.sparse.count(),
        }
    if as_json:
        emit_json(result)
    else:
        console.print(
            f"optimized: {result['dense_chunks']:,} dense and {result['sparse_chunks']:,} sparse chunks"
        )


def reindex(
    model: Annotated[str, typer.Option("--model", help="the new embedding model (name or folder)")],
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Embed the stored chunks with another model into its own collection (or Edge shard).

    Searches keep using the current model until `braid promote`. Re-run it to finish an
    interrupted run.
    """
    from braid.ingestion.versions import reindex as run_reindex

    # The current model is not needed: the chunks come from the stores, the new model is
    # loaded by reindex itself.
    with owned_workspace(load_settings(data_dir), "braid reindex", models=False) as workspace:
        result = run_reindex(workspace, model)
    if as_json:
        emit_json(result)
    else:
        console.print(
            f"{result['chunks']:,} chunks embedded into {result['collection']}; "
            f"promote it with `braid promote {result['collection']}`"
        )


def move_sparse(
    to: Annotated[str, typer.Option("--to", help="the BM25 backend to move to: tantivy or qdrant")],
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Move BM25 to the other backend (Tantivy <-> Qdrant sparse vectors), without embedding.

    Run it with the data dir's current BRAID_SPARSE__BACKEND; afterwards set the new one for
    every process. The old store's files are kept until you delete them.
    """
    from braid.ingestion.versions import move_sparse as run_move

    if to not in ("tantivy", "qdrant"):
        raise typer.BadParameter("--to must be tantivy or qdrant", param_hint="--to")
    backend: Literal["tantivy", "qdrant"] = "tantivy" if to == "tantivy" else "qdrant"
    with owned_workspace(load_settings(data_dir), "braid move-sparse", models=False) as workspace:
        result = run_move(workspace, backend)
    if as_json:
        emit_json(result)
    else:
        console.print(
            f"{result['chunks']:,} chunks moved from {result['from']} to {result['to']} in "
            f"{result['seconds']} s; now {result['next']}"
        )
