"""``braid bench ...``: figures printed (and as JSON), never asserted.

The benchmarks themselves live in ``braid.eval.bench``; each command here runs one and prints
its report, as JSON or as a table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from braid.cli.common import (
    ExitCode,
    JsonOption,
    console,
    emit_json,
    fail,
    load_settings,
    print_table,
)

bench_app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)
DEFAULT_CORPUS = Path("../shared/data/scifact")

Report = dict[str, Any]
Rows = list[Sequence[object]]


@bench_app.command("query")
def query(
    docs: Annotated[
        int, typer.Option("--docs", help="chunks in the benchmark index", min=100)
    ] = 100_000,
    queries: Annotated[int, typer.Option(help="queries per mode", min=10)] = 300,
    real_vectors: Annotated[
        int, typer.Option(help="passages embedded by the model; the rest get composed vectors")
    ] = 32_768,
    corpus: Annotated[
        Path, typer.Option(help="BEIR folder scaled up into the index")
    ] = DEFAULT_CORPUS,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="root for the cached benchmark index")
    ] = None,
    peer: Annotated[bool, typer.Option(help="also time Qdrant Edge's own fused RRF query")] = True,
    backends: Annotated[
        str | None,
        typer.Option(
            "--backends",
            help="query encoders timed side by side, comma-separated (torch, onnx, onnx-int8; "
            "'' for none); default: all three when onnxruntime is installed",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Per-stage latency (p50/p95) for bm25, dense, hybrid and hybrid+filter on N chunks,
    and the query encoder's backends side by side."""
    _require_corpus(corpus, data_dir)
    from braid.eval.bench.query import ENCODER_BACKENDS, run_query_bench

    chosen = None if backends is None else [b.strip() for b in backends.split(",") if b.strip()]
    unknown = sorted(set(chosen or ()) - set(ENCODER_BACKENDS))
    if unknown:
        raise typer.BadParameter(
            f"unknown backends {unknown}; choose from {', '.join(ENCODER_BACKENDS)}",
            param_hint="--backends",
        )
    base = load_settings(data_dir)
    settings = base.model_copy(update={"data_dir": base.data_dir / f"bench-query-{docs}"})
    console.print(f"benchmark index: {settings.data_dir} (built once, then reused)")
    report = run_query_bench(
        settings, corpus, docs, queries, real_vectors, with_peer=peer, encoder_backends=chosen
    )
    _emit(report, as_json, _query_table)
    if not as_json and report.get("encoders"):
        print_table(*_encoder_table(report))


@bench_app.command("ingest")
def ingest(
    corpus: Annotated[Path, typer.Option(help="BEIR folder to ingest")] = DEFAULT_CORPUS,
    limit: Annotated[int | None, typer.Option(help="only the first N documents")] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 64,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="root for the throw-away index")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Ingest throughput vs the bare passage encoder on the same chunks, in one run."""
    _require_corpus(corpus, data_dir)
    from braid.eval.bench.ingest import run_ingest_bench

    report = run_ingest_bench(load_settings(data_dir), corpus, limit, batch_size)
    _emit(report, as_json, _ingest_table)


@bench_app.command("api")
def api(
    clients: Annotated[
        str,
        typer.Option(
            help="concurrent client threads; several, comma-separated (1,8,32), run one "
            "after the other against the same server (1 to 64 each)"
        ),
    ] = "8",
    seconds: Annotated[float, typer.Option(min=1, max=600, help="how long the load runs")] = 20.0,
    upsert_share: Annotated[
        float, typer.Option(min=0, max=1, help="share of requests that upsert")
    ] = 0.1,
    preload: Annotated[int, typer.Option(min=1, help="documents indexed before the load")] = 1000,
    corpus: Annotated[
        Path, typer.Option(help="BEIR folder for documents and queries")
    ] = DEFAULT_CORPUS,
    as_json: JsonOption = False,
) -> None:
    """Loopback load test of a real `braid serve`: QPS, p50/p95/p99, errors, lost documents."""
    counts = _client_counts(clients)
    _require_corpus(corpus, None)
    from braid.eval.bench.api import run_api_bench

    report = run_api_bench(load_settings(), corpus, preload, counts, seconds, upsert_share)
    _emit(report, as_json, _api_table)
    if any(run["errors"] or run["lost_documents"] for run in report["runs"]):
        raise typer.Exit(ExitCode.FAILED)


@bench_app.command("rerank")
def rerank(
    pairs: Annotated[
        int, typer.Option(min=1, max=1000, help="passages reranked per call, for one query")
    ] = 100,
    calls: Annotated[int, typer.Option(min=3, help="timed calls per backend")] = 20,
    model: Annotated[
        str | None,
        typer.Option(
            help="cross-encoder folder; default: reranker.model, else the embedding model "
            "with a fresh head (what `braid train reranker` starts from: same cost per pair)"
        ),
    ] = None,
    backends: Annotated[
        str, typer.Option(help="torch (CUDA fp16 when present), onnx, onnx-int8; comma-separated")
    ] = "torch",
    corpus: Annotated[
        Path, typer.Option(help="BEIR folder for the query and passages")
    ] = DEFAULT_CORPUS,
    as_json: JsonOption = False,
) -> None:
    """Latency of reranking N pairs of one query (p50/p95, pairs/s) per backend."""
    from braid.eval.bench.rerank import RERANK_BACKENDS

    chosen = [b.strip() for b in backends.split(",") if b.strip()]
    unknown = sorted(set(chosen) - set(RERANK_BACKENDS))
    if unknown or not chosen:
        raise typer.BadParameter(
            f"unknown backends {unknown}; choose from {', '.join(RERANK_BACKENDS)}",
            param_hint="--backends",
        )
    _require_corpus(corpus, None)
    from braid.eval.bench.rerank import run_rerank_bench

    try:
        report = run_rerank_bench(load_settings(), corpus, pairs, calls, chosen, model)
    except ValueError as exc:
        raise fail(str(exc)) from exc
    _emit(report, as_json, _rerank_table)


def _require_corpus(corpus: Path, data_dir: Path | None) -> None:
    # Before any model loads or index folder is made: a mistyped path is said at once
    # (after the settings and the data dir, which answer first, as in every command).
    load_settings(data_dir)
    if not (corpus / "corpus.jsonl").is_file():
        raise fail(f"{corpus}: not a BEIR folder (no corpus.jsonl there)")


def _client_counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        counts = []
    if not counts or any(not 1 <= c <= 64 for c in counts):
        raise fail(
            f"--clients takes counts from 1 to 64, comma-separated, not {text!r}", ExitCode.USAGE
        )
    return counts


@bench_app.command("sparse")
def sparse(
    chunks: Annotated[
        int, typer.Option("--chunks", help="chunks in each BM25 index", min=100)
    ] = 1_000_000,
    queries: Annotated[
        int, typer.Option(help="queries, each unfiltered and filtered", min=10)
    ] = 300,
    corpus: Annotated[
        Path, typer.Option(help="BEIR folder scaled up into the index")
    ] = DEFAULT_CORPUS,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="root for the cached benchmark indexes")
    ] = None,
    rebuild: Annotated[bool, typer.Option(help="build the indexes again")] = False,
    as_json: JsonOption = False,
) -> None:
    """Tantivy vs Qdrant Edge sparse BM25 on N chunks: build rate, disk, memory, p50/p95/p99."""
    _require_corpus(corpus, data_dir)
    from braid.eval.bench.sparse import run_sparse_bench

    root = load_settings(data_dir).data_dir
    console.print(f"benchmark indexes under {root} (built once, then reused)")
    report = run_sparse_bench(root, corpus, chunks, queries, rebuild)
    _emit(report, as_json, _sparse_table)


Table = tuple[str, Sequence[str], Rows]


def _emit(report: Report, as_json: bool, table: Callable[[Report], Table]) -> None:
    if as_json:
        emit_json(report)
    else:
        title, columns, rows = table(report)
        print_table(title, columns, rows)


def _query_table(report: Report) -> Table:
    title = f"query latency, {report['chunks']:,} chunks, {report['queries']} queries (ms)"
    columns = ("mode", "embed p50", "dense p50", "sparse p50", "total p50", "total p95", "overhead")
    rows: Rows = []
    for name, stats in report["modes"].items():
        p50, p95 = stats["p50"], stats["p95"]
        rows.append(
            (
                name,
                f"{p50.get('embed', 0):.2f}",
                f"{p50.get('dense', 0):.2f}",
                f"{p50.get('sparse', 0):.2f}",
                f"{p50['total']:.2f}",
                f"{p95['total']:.2f}",
                f"{stats['overhead_ratio_p50']:.2f}x",
            )
        )
    if "peer_qdrant_edge_fused_rrf" in report:
        peer = report["peer_qdrant_edge_fused_rrf"]
        rows.append(
            (
                "peer: Edge fused RRF",
                f"{peer['p50']['embed']:.2f}",
                "",
                "",
                f"{peer['p50']['total']:.2f}",
                f"{peer['p95']['total']:.2f}",
                "",
            )
        )
    return title, columns, rows


def _encoder_table(report: Report) -> Table:
    threads = report.get("encoder_cpu_threads") or "default"
    title = f"query encoder backends, {report['queries']} queries, {threads} threads (ms)"
    columns = (
        "encoder",
        "encode p50",
        "encode p95",
        "hybrid p50",
        "hybrid p95",
        "overhead",
        "cosine to torch: mean (min)",
    )
    rows: Rows = []
    for name, entry in report["encoders"].items():
        hybrid = entry["hybrid"]
        cosine = entry.get("cosine_to_torch")
        rows.append(
            (
                f"encode {name}",
                f"{entry['encode_ms']['p50']:.2f}",
                f"{entry['encode_ms']['p95']:.2f}",
                f"{hybrid['p50']['total']:.2f}",
                f"{hybrid['p95']['total']:.2f}",
                f"{hybrid['overhead_ratio_p50']:.2f}x",
                f"{cosine['mean']:.4f} ({cosine['min']:.4f})" if cosine else "",
            )
        )
    return title, columns, rows


def _sparse_table(report: Report) -> Table:
    title = (
        f"BM25 stores, {report['chunks']:,} chunks, {report['queries']} queries, "
        f"depth {report['depth']} (ms)"
    )
    columns = (
        "store",
        "p50",
        "p95",
        "p50 filtered",
        "p95 filtered",
        "disk MiB",
        "store RSS MiB",
        "build chunks/s",
    )
    rows: Rows = []
    for name, entry in report["backends"].items():
        p50, p95 = entry["latency_ms"]["p50"], entry["latency_ms"]["p95"]
        build = entry.get("build", {})
        rows.append(
            (
                name,
                f"{p50['bm25']:.2f}",
                f"{p95['bm25']:.2f}",
                f"{p50['bm25+filter']:.2f}",
                f"{p95['bm25+filter']:.2f}",
                f"{entry['disk_mib']:.0f}",
                f"{entry['store_rss_mib']:.0f}",
                f"{build['chunks_per_s']:.0f}" if build else "cached",
            )
        )
    return title, columns, rows


def _api_table(report: Report) -> Table:
    title = f"API load: {report['seconds']} s per client count, one server"
    columns = ("clients", "requests", "count", "req/s", "p50 ms", "p95 ms", "p99 ms")
    rows: Rows = []
    for run in report["runs"]:
        search, upsert = run["search"], run["upsert"]
        rows += [
            (
                run["clients"],
                "search",
                search["count"],
                search["qps"],
                *search["latency_ms"].values(),
            ),
            ("", "upsert (accept)", upsert["count"], "", *upsert["latency_ms"].values()),
            (
                "",
                "shed (503 overloaded)",
                run["shed"]["count"],
                "",
                *run["shed"]["latency_ms"].values(),
            ),
            ("", "errors / lost documents", f"{run['errors']} / {run['lost_documents']}"),
            ("", "CPU ms per request: server / load", _cpu_cell(run["cpu_ms_per_request"])),
        ]
    return title, columns, rows


def _cpu_cell(cpu: dict[str, float | None]) -> str:
    server = "?" if cpu["server"] is None else f"{cpu['server']}"
    return f"{server} / {cpu['load_generator']}"


def _rerank_table(report: Report) -> Table:
    head = ", untrained head: latency only" if report["untrained_head"] else ""
    title = f"rerank {report['pairs']} pairs of one query, {report['calls']} calls ({report['model']}{head})"
    columns = ("backend", "device", "dtype", "p50 ms", "p95 ms", "pairs/s")
    rows: Rows = [
        (name, e["device_name"], e["dtype"], e["ms"]["p50"], e["ms"]["p95"], e["pairs_per_s"])
        for name, e in report["backends"].items()
    ]
    return title, columns, rows


def _ingest_table(report: Report) -> Table:
    title = (
        f"ingest throughput: {report['documents']:,} docs, {report['chunks']:,} chunks "
        f"({report['embedder_backend']} on {report['device']})"
    )
    rows: Rows = [
        (
            "braid ingest (read, chunk, embed, write)",
            f"{report['ingest']['docs_per_s']:.1f}",
            f"{report['ingest']['chunks_per_s']:.1f}",
        ),
        ("bare passage encoder, same chunks", "", f"{report['raw_encode']['chunks_per_s']:.1f}"),
        ("ratio ingest / raw", "", f"{report['ratio']:.3f}"),
    ]
    return title, ("what", "docs/s", "chunks/s"), rows
