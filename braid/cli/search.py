"""``braid search``: here, or through the server that holds the data dir.

Both paths print the API's response model (``braid.api.schemas.SearchResponseOut``, with
text and per-stage ranks), so a script reads one shape whoever answered.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated

import typer

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
    profile: ProfileOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Search the index: BM25, dense or hybrid, with filters and reranking."""
    from braid.engine.errors import IndexLockedError
    from braid.engine.locking import DataDirLock, read_owner

    if mode not in MODES:
        raise fail("--mode must be hybrid, dense or bm25", ExitCode.USAGE)
    raw_filter, expr = parse_filter_option(filter_json)
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
        result = _search_remote(str(api), query, top_k, mode, raw_filter, no_rerank)
    else:
        result = _search_local(settings, lock, query, top_k, mode, expr, no_rerank)
    if as_json:
        emit_json(result.model_dump(mode="json"))
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
) -> SearchResponseOut:
    from braid.api.schemas import SearchResponseOut
    from braid.engine.factory import build_engine
    from braid.engine.models import SearchMode

    try:
        engine = build_engine(settings, read_only=True)
    except BraidError as exc:
        lock.release()
        raise fail(str(exc)) from exc
    try:
        mode_value: SearchMode = mode  # type: ignore[assignment]  # checked against MODES
        response = engine.searcher.search(
            query, top_k=top_k, mode=mode_value, filter=expr, rerank=False if no_rerank else None
        )
    except BraidError as exc:
        raise fail(str(exc), ExitCode.USAGE) from exc
    finally:
        engine.close()
        lock.release()
    return SearchResponseOut.from_engine(response, include_text=True, explain=True)


def _search_remote(
    api: str, query: str, top_k: int, mode: str, raw_filter: object, no_rerank: bool
) -> SearchResponseOut:
    import httpx

    from braid.api.schemas import SearchResponseOut

    body: dict[str, object] = {
        "query": query,
        "top_k": top_k,
        "mode": mode,
        "filter": raw_filter,
        "explain": True,
    }
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
    timings = "  ".join(f"{k} {v:.1f} ms" for k, v in result.timings_ms.items())
    out.print(f"[dim]{timings}[/]")
