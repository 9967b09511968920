"""``braid search``: here, or through the server that holds the data dir.

Both paths print the API's response model (``braid.api.schemas.SearchResponseOut``, with
text and per-stage ranks), so a script reads one shape whoever answered.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from braid.cli.common import (
    DataDirOption,
    ExitCode,
    JsonOption,
    ProfileOption,
    emit_json,
    fail,
    load_settings,
    out,
    parse_filter_option,
    print_table,
    require_index,
)
from braid.engine.errors import BraidError

if TYPE_CHECKING:
    from braid.api.schemas import SearchResponseOut
    from braid.engine.config import Settings
    from braid.engine.filters import FilterExpr
    from braid.engine.locking import DataDirLock

MODES = ("hybrid", "dense", "bm25")
GROUPINGS = ("document", "chunk")
STAGE_COLUMNS = ("bm25", "dense", "rerank")
REMOTE_TIMEOUT_S = 60


def search(
    query: Annotated[str, typer.Argument(help="the query text")],
    top_k: Annotated[int, typer.Option("--top-k", min=1, max=1000)] = 10,
    mode: Annotated[str, typer.Option(help="hybrid, dense or bm25")] = "hybrid",
    filter_json: Annotated[
        str | None,
        typer.Option("--filter", help='metadata filter, e.g. \'{"year": {"$gte": 2020}}\''),
    ] = None,
    no_rerank: Annotated[bool, typer.Option("--no-rerank", help="skip the cross-encoder")] = False,
    group_by: Annotated[
        str, typer.Option("--group-by", help="document (one result per document) or chunk")
    ] = "document",
    passages: Annotated[
        int, typer.Option("--passages", min=1, max=10, help="passages per document")
    ] = 3,
    offset: Annotated[int, typer.Option("--offset", min=0, help="results to skip (paging)")] = 0,
    cursor: Annotated[
        str | None, typer.Option("--cursor", help="the next_cursor of the previous page")
    ] = None,
    facets: Annotated[
        list[str] | None,
        typer.Option("--facet", help="count documents per value of this metadata field"),
    ] = None,
    min_score: Annotated[
        float | None,
        typer.Option("--min-score", help="drop results whose fused score (0-1) is below"),
    ] = None,
    profile: ProfileOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Search the index: BM25, dense or hybrid, with filters and reranking.

    Prints one result per document (its best passages, query terms marked), or per chunk
    with --group-by chunk; --json prints the REST API's response.
    """
    from braid.engine.errors import IndexLockedError
    from braid.engine.locking import DataDirLock, read_owner

    if mode not in MODES:
        raise fail("--mode must be hybrid, dense or bm25", ExitCode.USAGE)
    if group_by not in GROUPINGS:
        raise fail("--group-by must be document or chunk", ExitCode.USAGE)
    raw_filter, expr = parse_filter_option(filter_json)
    _check_before_loading(query, cursor, facets or [])
    page = Page(
        group_by=group_by,
        passages=passages,
        offset=offset,
        cursor=cursor,
        facets=list(facets or []),
        min_score=min_score,
    )
    settings = load_settings(data_dir, profile=profile)
    require_index(settings)
    # Edge and Tantivy are single-process: hold the data dir while searching it, or, when a
    # server holds it, ask the server.
    lock = DataDirLock(settings.data_dir, role="braid search")
    try:
        lock.acquire()
    except IndexLockedError as exc:
        api = (read_owner(settings.data_dir) or {}).get("api_url")
        if not api:
            raise fail(str(exc)) from exc
        result = _search_remote(str(api), query, top_k, mode, raw_filter, no_rerank, page)
    else:
        result = _search_local(settings, lock, query, top_k, mode, expr, no_rerank, page)
    if as_json:
        emit_json(result.model_dump(mode="json"))
    elif result.documents is not None:
        _print_documents(result)
    else:
        _print_hits(result)


def _check_before_loading(query: str, cursor: str | None, facets: list[str]) -> None:
    """What can be refused without the stores or the model (the searcher checks it again)."""
    from braid.engine.facets import check_facet_fields
    from braid.engine.paging import Cursor

    try:
        if not query.strip():
            raise fail("query is empty", ExitCode.USAGE)
        if cursor is not None:
            Cursor.decode(cursor)
        check_facet_fields(facets, known=None)
    except BraidError as exc:
        raise fail(str(exc), ExitCode.USAGE) from exc


def _search_local(
    settings: Settings,
    lock: DataDirLock,
    query: str,
    top_k: int,
    mode: str,
    expr: FilterExpr | None,
    no_rerank: bool,
    page: Page,
) -> SearchResponseOut:
    from braid.api.schemas import SearchResponseOut
    from braid.engine.factory import build_engine
    from braid.engine.models import SearchMode
    from braid.ingestion.ledger import LEDGER_FILE, Ledger

    try:
        engine = build_engine(settings, read_only=True)
    except BraidError as exc:
        lock.release()
        raise fail(str(exc)) from exc
    ledger = Ledger(settings.data_dir / LEDGER_FILE, read_only=True)
    # Cursors made by the server or by another `braid search` check the same version.
    engine.searcher.index_version = ledger.index_version
    try:
        mode_value: SearchMode = mode  # type: ignore[assignment]  # checked against MODES
        response = engine.searcher.search(
            query,
            top_k=top_k,
            mode=mode_value,
            filter=expr,
            rerank=False if no_rerank else None,
            group_by="chunk" if page.group_by == "chunk" else "document",
            passages=page.passages,
            offset=page.offset,
            cursor=page.cursor,
            facets=page.facets,
            highlight=True,
            min_score=page.min_score,
        )
    except BraidError as exc:
        raise fail(str(exc), ExitCode.USAGE) from exc
    finally:
        ledger.close()
        engine.close()
        lock.release()
    return SearchResponseOut.from_engine(response, include_text=True, explain=True)


def _search_remote(
    api: str,
    query: str,
    top_k: int,
    mode: str,
    raw_filter: object,
    no_rerank: bool,
    page: Page,
) -> SearchResponseOut:
    import httpx

    from braid.api.schemas import SearchResponseOut

    body: dict[str, object] = {
        "query": query,
        "top_k": top_k,
        "mode": mode,
        "filter": raw_filter,
        "explain": True,
        "group_by": page.group_by,
        "passages": page.passages,
        "offset": page.offset,
    }
    if page.cursor is not None:
        body["cursor"] = page.cursor
    if page.facets:
        body["facets"] = page.facets
    if page.min_score is not None:
        body["min_score"] = page.min_score
    if no_rerank:
        body["rerank"] = False
    headers = {"X-API-Key": key} if (key := os.environ.get("BRAID_API_KEY")) else {}
    try:
        response = httpx.post(
            f"{api.rstrip('/')}/v1/search", json=body, headers=headers, timeout=REMOTE_TIMEOUT_S
        )
    except httpx.HTTPError as exc:
        raise fail(
            f"the braid server at {api} holds the data dir but did not answer: {exc}"
        ) from exc
    if response.status_code >= 400:
        raise fail(
            f"the braid server at {api} answered {response.status_code}: {response.text[:500]}",
            ExitCode.USAGE,
        )
    try:
        return SearchResponseOut.model_validate(response.json())
    except ValueError as exc:  # not JSON, or not the response model (ValidationError)
        raise fail(f"the braid server at {api} answered an unexpected body: {exc}") from exc


@dataclass(frozen=True)
class Page:
    """What shapes the results beyond the query: grouping, paging, facets, threshold."""

    group_by: str
    passages: int
    offset: int
    cursor: str | None
    facets: list[str]
    min_score: float | None


def _print_documents(result: SearchResponseOut) -> None:
    rows: list[tuple[object, ...]] = []
    for document in result.documents or []:
        best = document.passages[0]
        stages = best.stages or {}
        ranks = (stages[name].rank if name in stages else None for name in STAGE_COLUMNS)
        text = _marked(best.snippet) if best.snippet is not None else (best.text or "")[:120]
        title = f"[bold]{escape(document.title)}[/] " if document.title else ""
        # Table cells are Rich markup: the text is escaped, the marks are markup.
        rows.append(
            (document.rank, escape(document.doc_id), f"{document.score:.4f}", *ranks, title + text)
        )
    print_table(
        f"{result.mode} search: documents",
        ("#", "doc_id", "score", *STAGE_COLUMNS, "best passage"),
        rows,
        fold="best passage",
    )
    _print_footer(result)


def _marked(snippet: str) -> str:
    # The snippet is HTML with <mark> tags: show the marks in bold, the rest as text.
    import html

    pieces = re.split(r"</?mark>", snippet)
    return "".join(
        f"[bold yellow]{escape(html.unescape(p))}[/]" if i % 2 else escape(html.unescape(p))
        for i, p in enumerate(pieces)
    )


def _print_footer(result: SearchResponseOut) -> None:
    for field, values in (result.facets or {}).items():
        counts = ", ".join(f"{v.value} ({v.count})" for v in values) or "none"
        out.print(f"[bold]{field}[/]: {counts}")
    if result.next_cursor:
        out.print(f"[dim]next page: --cursor {result.next_cursor}[/]")
    timings = "  ".join(f"{k} {v:.1f} ms" for k, v in result.timings_ms.items())
    out.print(f"[dim]{timings}[/]")


def _print_hits(result: SearchResponseOut) -> None:
    rows: list[tuple[object, ...]] = []
    for hit in result.hits:
        stages = hit.stages or {}
        ranks = (stages[name].rank if name in stages else None for name in STAGE_COLUMNS)
        rows.append((hit.rank, hit.doc_id, f"{hit.score:.4f}", *ranks, (hit.text or "")[:120]))
    print_table(
        f"{result.mode} search",
        ("#", "doc_id", "score", *STAGE_COLUMNS, "text"),
        rows,
        fold="text",
    )
    _print_footer(result)
