"""The ``braid`` command: ingestion and search here; other packages add their groups.

Packages that must not be imported from here (``api``, ``eval``) register their commands
through the ``braid.commands`` entry point group (``register(app)``), so the dependency
arrows stay one-way.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table

from braid.engine.config import Settings
from braid.engine.errors import BraidError, IndexLockedError
from braid.engine.filters import FilterExpr, parse_filter
from braid.engine.locking import DataDirLock, read_owner
from braid.engine.models import Hit, SearchMode, SearchResponse
from braid.ingestion import pipeline as pipeline_module
from braid.ingestion.readers import read_inputs
from braid.ingestion.remote import RemoteIngest
from braid.ingestion.service import Workspace, open_workspace

T = TypeVar("T")

app = typer.Typer(
    name="braid",
    help="braid: hybrid BM25 + dense search with fusion and reranking.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)
out = Console()

DataDirOption = Annotated[
    Path | None,
    typer.Option("--data-dir", help="data directory (default ./braid-data, env BRAID_DATA_DIR)"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="print machine-readable JSON on stdout")]


def load_settings(data_dir: Path | None) -> Settings:
    """Settings from the environment, with ``--data-dir`` taking precedence."""
    return Settings(data_dir=data_dir) if data_dir is not None else Settings()


def fail(message: str, code: int = 1) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


def emit_json(payload: object) -> None:
    sys.stdout.write(json.dumps(payload, ensure_ascii=False) + "\n")


def hit_as_dict(hit: Hit, include_text: bool = True) -> dict[str, Any]:
    chunk = hit.chunk
    entry: dict[str, Any] = {
        "doc_id": hit.doc_id,
        "chunk_id": hit.chunk_id,
        "score": hit.score,
        "stages": {name: {"rank": s.rank, "score": s.score} for name, s in hit.stages.items()},
    }
    if chunk is not None:
        entry["title"] = chunk.title
        entry["metadata"] = dict(chunk.metadata)
        if include_text:
            entry["text"] = chunk.text
    return entry


def response_as_dict(response: SearchResponse) -> dict[str, Any]:
    model = response.embedding_model
    return {
        "hits": [hit_as_dict(h) for h in response.hits],
        "timings_ms": {k: round(v, 3) for k, v in response.timings_ms.items()},
        "mode": response.mode,
        "embedding_model": None
        if model is None
        else {"id": model.model_id, "version": model.version, "dim": model.dim},
        "reranker_model": response.reranker_model,
    }


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


@app.command()
def ingest(
    paths: Annotated[
        list[str],
        typer.Argument(help="JSONL files, BEIR folders, folders of .txt/.md/.html, or - for stdin"),
    ],
    data_dir: DataDirOption = None,
    batch_size: Annotated[
        int | None, typer.Option(help="embedding batch size", min=1, max=4096)
    ] = None,
    strict: Annotated[bool, typer.Option(help="stop at the first bad record")] = False,
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
    settings = load_settings(data_dir)
    if api is None:
        try:
            workspace = open_workspace(settings, role="braid ingest", batch_size=batch_size)
        except IndexLockedError as exc:
            owner = read_owner(settings.data_dir) or {}
            api = owner.get("api_url")
            if not api:
                raise fail(
                    f"{exc}. Wait for it to finish, or send the documents to a server with --api URL."
                ) from exc
            console.print(f"{settings.data_dir} is served by {api}: sending the documents there")
        except BraidError as exc:
            raise fail(str(exc)) from exc
    try:
        if api is not None:
            remote = RemoteIngest(
                api, api_key or os.environ.get("BRAID_API_KEY"), batch_size or 256
            )
            report = _run_ingest(remote, paths, strict, as_json)
        else:
            try:
                report = _run_ingest(workspace.pipeline, paths, strict, as_json)
            finally:
                workspace.close()
    except BraidError as exc:
        raise fail(str(exc)) from exc
    if as_json:
        emit_json(report.as_dict())
    else:
        _print_report(report)
    if report.errors:
        raise typer.Exit(1)


def _run_ingest(
    pipeline: pipeline_module.IngestPipeline | RemoteIngest,
    paths: list[str],
    strict: bool,
    quiet: bool,
) -> pipeline_module.IngestReport:
    total = _count_inputs(paths)
    records = read_inputs(paths)
    if quiet or not sys.stderr.isatty():
        return pipeline.run(records, strict=strict)
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
        task = bar.add_task("ingest", total=total, chunks=0, rate=0.0)
        started = bar.get_time()

        def update(p: pipeline_module.Progress) -> None:
            elapsed = max(bar.get_time() - started, 1e-6)
            bar.update(
                task,
                completed=p.documents + p.skipped + p.errors,
                chunks=p.chunks,
                rate=p.chunks / elapsed,
            )

        return pipeline.run(records, strict=strict, on_progress=update)


def _print_report(report: pipeline_module.IngestReport) -> None:
    table = Table(title="ingest summary", show_header=False)
    table.add_row("documents indexed", f"{report.documents:,}")
    table.add_row("chunks written", f"{report.chunks:,}")
    table.add_row("unchanged, skipped", f"{report.skipped_unchanged:,}")
    table.add_row("replaced (old chunks deleted)", f"{report.deleted:,}")
    table.add_row("errors", f"{len(report.errors):,}")
    table.add_row("seconds", f"{report.seconds:.1f}")
    if report.seconds > 0:
        table.add_row("chunks/s", f"{report.chunks / report.seconds:,.1f}")
    console.print(table)
    for error in report.errors[:50]:
        console.print(f"[red]{error}[/]")
    if len(report.errors) > 50:
        console.print(f"... and {len(report.errors) - 50} more errors")


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="the query text")],
    top_k: Annotated[int, typer.Option("--top-k", min=1, max=1000)] = 10,
    mode: Annotated[str, typer.Option(help="hybrid, dense or bm25")] = "hybrid",
    filter_json: Annotated[
        str | None,
        typer.Option("--filter", help='metadata filter, e.g. \'{"year": {"$gte": 2020}}\''),
    ] = None,
    no_rerank: Annotated[bool, typer.Option("--no-rerank", help="skip the cross-encoder")] = False,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile", help="a tuned profile from `braid eval sweep` (env BRAID_PROFILE)"
        ),
    ] = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Search the index: BM25, dense or hybrid, with filters and reranking."""

    if mode not in ("hybrid", "dense", "bm25"):
        raise fail("--mode must be hybrid, dense or bm25", 2)
    try:
        expr_json = json.loads(filter_json) if filter_json else None
        expr = parse_filter(expr_json)
    except json.JSONDecodeError as exc:
        raise fail(f"--filter is not valid JSON: {exc}", 2) from exc
    except BraidError as exc:
        raise fail(f"--filter: {exc}", 2) from exc
    settings = load_settings(data_dir)
    if profile is not None:
        settings = settings.model_copy(update={"profile": profile})
    # Edge and Tantivy are single-process: hold the data dir while searching it, or, when a
    # server holds it, ask the server.
    lock = DataDirLock(settings.data_dir, role="braid search")
    try:
        lock.acquire()
    except IndexLockedError as exc:
        api = (read_owner(settings.data_dir) or {}).get("api_url")
        if not api:
            raise fail(str(exc)) from exc
        result = _search_remote(str(api), query, top_k, mode, expr_json, no_rerank)
    else:
        result = _search_local(settings, lock, query, top_k, mode, expr, no_rerank)
    if as_json:
        emit_json(result)
    else:
        _print_hits(result)


def _search_local(
    settings: Settings,
    lock: DataDirLock,
    query: str,
    top_k: int,
    mode: str,
    expr: FilterExpr | None,
    no_rerank: bool,
) -> dict[str, Any]:
    from braid.engine.factory import build_engine

    try:
        engine = build_engine(settings, read_only=True)
    except BraidError as exc:
        lock.release()
        raise fail(str(exc)) from exc
    try:
        mode_value: SearchMode = mode  # type: ignore[assignment]
        response = engine.searcher.search(
            query, top_k=top_k, mode=mode_value, filter=expr, rerank=False if no_rerank else None
        )
    except BraidError as exc:
        raise fail(str(exc), 2) from exc
    finally:
        engine.close()
        lock.release()
    return response_as_dict(response)


def _search_remote(
    api: str, query: str, top_k: int, mode: str, expr_json: object, no_rerank: bool
) -> dict[str, Any]:
    import httpx

    body = {"query": query, "top_k": top_k, "mode": mode, "filter": expr_json, "explain": True}
    if no_rerank:
        body["rerank"] = False
    headers = {"X-API-Key": key} if (key := os.environ.get("BRAID_API_KEY")) else {}
    try:
        response = httpx.post(
            f"{api.rstrip('/')}/v1/search", json=body, headers=headers, timeout=60
        )
    except httpx.HTTPError as exc:
        raise fail(
            f"the braid server at {api} holds the data dir but did not answer: {exc}"
        ) from exc
    if response.status_code >= 400:
        raise fail(
            f"the braid server at {api} answered {response.status_code}: {response.text[:500]}", 2
        )
    result: dict[str, Any] = response.json()
    return result


def _print_hits(result: dict[str, Any]) -> None:
    table = Table(title=f"{result['mode']} search")
    for column in ("#", "doc_id", "score", "bm25", "dense", "rerank", "text"):
        table.add_column(column, overflow="fold" if column == "text" else "ellipsis")
    for rank, hit in enumerate(result["hits"], start=1):
        stages = hit.get("stages") or {}

        def stage(name: str, stages: dict[str, Any] = stages) -> str:
            return str(stages[name]["rank"]) if name in stages else "-"

        text = hit.get("text") or ""
        table.add_row(
            str(rank),
            hit["doc_id"],
            f"{hit['score']:.4f}",
            stage("bm25"),
            stage("dense"),
            stage("rerank"),
            text[:120],
        )
    out.print(table)
    timings = "  ".join(f"{k} {v:.1f} ms" for k, v in result["timings_ms"].items())
    out.print(f"[dim]{timings}[/]")


def _plugins() -> Iterator[Callable[[typer.Typer], None]]:
    for entry in entry_points(group="braid.commands"):
        yield entry.load()


def main() -> None:
    """Console entry point."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for register in _plugins():
        register(app)
    app()


def _open_for_write(data_dir: Path | None, role: str) -> Workspace:
    try:
        return open_workspace(load_settings(data_dir), role=role)
    except BraidError as exc:
        raise fail(str(exc)) from exc


def _in_workspace(data_dir: Path | None, role: str, action: Callable[[Workspace], T]) -> T:
    """Run ``action`` on the data dir as its owner; engine errors exit 1 with their message."""
    workspace = _open_for_write(data_dir, role)
    try:
        return action(workspace)
    except BraidError as exc:
        raise fail(str(exc)) from exc
    finally:
        workspace.close()


@app.command()
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
        raise fail("give document ids or --filter (one of them)", 2)
    try:
        expr = parse_filter(json.loads(filter_json)) if filter_json else None
    except json.JSONDecodeError as exc:
        raise fail(f"--filter is not valid JSON: {exc}", 2) from exc
    except BraidError as exc:
        raise fail(f"--filter: {exc}", 2) from exc

    def run(workspace: Workspace) -> list[str]:
        if expr is not None:
            found = workspace.pipeline.delete_by_filter(expr)
        else:
            found = workspace.pipeline.delete(doc_ids or [])
        workspace.pipeline.maybe_compact()
        return found

    deleted = _in_workspace(data_dir, "braid delete", run)
    missing = [] if expr is not None else sorted(set(doc_ids or []) - set(deleted))
    if as_json:
        emit_json({"deleted": deleted, "not_found": missing})
    else:
        console.print(
            f"deleted {len(deleted)} documents"
            + (f"; not found: {', '.join(missing)}" if missing else "")
        )


def _disk_usage(path: Path) -> int:
    # Blocks really used: Qdrant preallocates sparse files far larger than their content.
    return (
        sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file())
        if path.exists()
        else 0
    )


@app.command()
def stats(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Counts per store and in the ledger, the embedding model, disk use."""
    workspace = _open_for_write(data_dir, "braid stats")
    try:
        settings = workspace.settings
        model = workspace.engine.embedder.info
        report: dict[str, Any] = {
            "data_dir": str(settings.data_dir),
            "dense": {
                "backend": settings.qdrant.mode,
                "chunks": workspace.engine.dense.count(),
                "bytes": _disk_usage(settings.dense_dir),
            },
            "sparse": {
                "backend": settings.sparse_label,
                "chunks": workspace.engine.sparse.count(),
                "bytes": _disk_usage(settings.sparse_files) if settings.sparse_files else 0,
            },
            "ledger": workspace.ledger.totals()
            | {
                "models": [
                    {"id": m, "version": v, "documents": n} for m, v, n in workspace.ledger.models()
                ]
            },
            "embedding_model": {"id": model.model_id, "version": model.version, "dim": model.dim},
            "bytes": _disk_usage(settings.data_dir),
        }
    finally:
        workspace.close()
    if as_json:
        emit_json(report)
        return
    table = Table(title=f"braid stats: {report['data_dir']}", show_header=False)
    table.add_row(
        "ledger documents / chunks",
        f"{report['ledger']['documents']:,} / {report['ledger']['chunks']:,}",
    )
    table.add_row("dense chunks (Qdrant)", f"{report['dense']['chunks']:,}")
    table.add_row("sparse chunks (Tantivy)", f"{report['sparse']['chunks']:,}")
    table.add_row("pending documents", f"{report['ledger']['pending_documents']:,}")
    table.add_row("embedding model", f"{model.model_id} @ {model.version} (dim {model.dim})")
    table.add_row("disk", f"{report['bytes'] / 1e6:,.1f} MB")
    out.print(table)


@app.command()
def optimize(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Compact Tantivy (drop deleted documents from BM25 statistics) and build Qdrant's indexes."""

    def run(workspace: Workspace) -> dict[str, int]:
        workspace.pipeline.optimize()
        return {
            "dense_chunks": workspace.engine.dense.count(),
            "sparse_chunks": workspace.engine.sparse.count(),
        }

    result = _in_workspace(data_dir, "braid optimize", run)
    if as_json:
        emit_json(result)
    else:
        console.print(
            f"optimized: {result['dense_chunks']:,} dense and {result['sparse_chunks']:,} sparse chunks"
        )


@app.command()
def reindex(
    model: Annotated[str, typer.Option("--model", help="the new embedding model (name or folder)")],
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Embed the stored chunks with another model into its own collection (server/local Qdrant).

    Searches keep using the current model until `braid promote`; judge the two first with
    `braid eval compare`.
    """
    from braid.ingestion.versions import reindex as run_reindex

    result = _in_workspace(data_dir, "braid reindex", lambda ws: run_reindex(ws, model))
    if as_json:
        emit_json(result)
    else:
        console.print(
            f"{result['chunks']:,} chunks embedded into {result['collection']}; promote it with `braid promote {result['collection']}`"
        )


@app.command("move-sparse")
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
    result = _in_workspace(data_dir, "braid move-sparse", lambda ws: run_move(ws, backend))
    if as_json:
        emit_json(result)
    else:
        console.print(
            f"{result['chunks']:,} chunks moved from {result['from']} to {result['to']} in "
            f"{result['seconds']} s; now {result['next']}"
        )


@app.command()
def collections(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """The collections built per embedding model version, and which one searches use."""
    from braid.ingestion.versions import collections as list_collections

    found = _in_workspace(data_dir, "braid collections", list_collections)
    if as_json:
        emit_json({"collections": found})
        return
    table = Table(title="model collections")
    for column in ("collection", "model", "version", "points", "serving"):
        table.add_column(column)
    for c in found:
        table.add_row(
            c["collection"],
            str(c["model_id"]),
            str(c["model_version"]),
            f"{c['points']:,}",
            "yes" if c["serving"] else "",
        )
    out.print(table)


@app.command()
def promote(
    collection: Annotated[
        str, typer.Argument(help="the collection to serve (see `braid collections`)")
    ],
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Switch the search alias to another model's collection, atomically."""
    from braid.ingestion.versions import promote_collection

    result = _in_workspace(data_dir, "braid promote", lambda ws: promote_collection(ws, collection))
    if as_json:
        emit_json(result)
    else:
        console.print(
            f"serving {result['serving']}: set BRAID_EMBEDDER__MODEL={result['model_id']} for this data dir"
        )


@app.command()
def drop(
    names: Annotated[
        list[str], typer.Argument(help="collections to delete (never the one served)")
    ],
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete model collections that the alias no longer serves."""
    from braid.ingestion.versions import drop_collections

    dropped = _in_workspace(data_dir, "braid drop", lambda ws: drop_collections(ws, names))
    if as_json:
        emit_json({"dropped": dropped})
    else:
        console.print(f"dropped {len(dropped)} collections")


@app.command()
def worker(
    data_dir: DataDirOption = None,
    poll_s: Annotated[
        float,
        typer.Option(
            "--poll-s", min=0.05, max=60.0, help="how often the queue is read for new jobs"
        ),
    ] = 0.5,
    as_json: JsonOption = False,
) -> None:
    """Run the ingestion worker in the foreground: the data dir's one writer.

    It owns the data dir (its lock, the stores' writers) and runs, in submission order, the
    jobs that reader servers (BRAID_API__ROLE=reader, with a Qdrant server) queue in
    <data_dir>/jobs.sqlite. It logs a line per finished job. SIGTERM or Ctrl-C stops it
    cleanly: a running upsert is queued again, the stores are closed; a second signal
    stops it at once.
    """
    import logging
    import signal
    import threading

    from braid.ingestion.worker import Job
    from braid.ingestion.worker_process import run_worker

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    log = logging.getLogger("braid.worker")
    settings = load_settings(data_dir)
    stop = threading.Event()

    def on_signal(signum: int, _: object) -> None:
        log.info("%s: finishing up (send it again to stop at once)", signal.Signals(signum).name)
        stop.set()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)

    def on_finished(job: Job) -> None:
        outcome = json.dumps(job.result) if job.state == "done" else job.error
        log.info("job %s %s (%d items) %s: %s", job.id, job.kind, job.items, job.state, outcome)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    try:
        status = run_worker(
            settings,
            stop,
            poll_s=poll_s,
            on_started=lambda: log.info("ready (pid %d)", os.getpid()),
            on_finished=on_finished,
        )
    except BraidError as exc:
        raise fail(str(exc)) from exc
    log.info("stopped: %d jobs done, %d failed", status.jobs_done, status.jobs_failed)
    if as_json:
        emit_json(
            {
                "jobs_done": status.jobs_done,
                "jobs_failed": status.jobs_failed,
                "last_error": status.last_error,
            }
        )


if __name__ == "__main__":
    main()
