"""The app factory: ``create_app(settings)`` builds a FastAPI app over one data dir.

In embedded mode (Qdrant Edge, the default) one process owns the stores: the lifespan
takes the data dir's lock with the role ``braid serve`` and the server's URL, so that
``braid ingest`` finds the server and sends its documents over HTTP instead. With
``api.role=reader`` (and a Qdrant server) the app takes no lock and opens the stores
read-only; a separate ``braid worker`` runs the jobs it queues (see ``api/runtime.py``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from braid.api.deps import KeyRing, search_limits
from braid.api.errors import install_error_handlers
from braid.api.metrics import MetricsMiddleware
from braid.api.middleware import BodySizeLimit, Cors, SearchAdmission
from braid.api.routes import documents, embed, jobs, search, service
from braid.api.runtime import Runtime, open_reader_engine
from braid.engine.config import Settings
from braid.engine.factory import Engine

STATIC_DIR = Path(__file__).parent / "static"
_log = logging.getLogger("braid.api")

DESCRIPTION = """
Hybrid search over one braid index: BM25 (Tantivy) and dense retrieval (Qdrant) fused by
weighted reciprocal rank fusion, optionally reranked by a cross-encoder.

* **Errors** have one shape everywhere: `{"error": {"code", "message", "path"?}}`;
  `path` is a JSON path into the request body (`$.filter.year.$gte`).
* **Bodies** are JSON sent with `Content-Type: application/json` (another type answers
  415), nested at most 64 levels (deeper answers 400 `malformed_json`). Numbers and
  booleans are strict: `"5"`, `5.0` or `true` for an integer, `"yes"` or `1` for a boolean
  answer 422.
* **Auth**: `Authorization: Bearer KEY` or `X-API-Key: KEY`. Keys from `BRAID_API__KEYS`
  may read and write, keys from `BRAID_API__READ_KEYS` only read. Without read keys,
  reads are open; without any key, everything is open.
* **Writes** are durable jobs run by one ingestion worker in submission order; follow them
  at `/v1/jobs/{id}` or pass `wait=true`.
* In embedded mode one process owns the stores: run one server per data dir. With a Qdrant
  server, reader servers (`BRAID_API__ROLE=reader`, any number) queue writes for one
  separate `braid worker`.
"""


def _version() -> str:
    try:
        return version("braid-search")
    except PackageNotFoundError:
        return "0.0.0"


def create_app(
    settings: Settings,
    *,
    micro_batch: bool | None = None,
    preflight: bool = True,
    open_engine: Callable[[Settings], Engine] = open_reader_engine,
) -> FastAPI:
    """Build the app; the stores are opened by its lifespan, not here.

    Args:
        settings: the process's settings (``api`` section: role, keys, limits, CORS).
        micro_batch: embed concurrent queries together (one model thread for queries);
            ``None``: ``api.micro_batch`` (auto: only where queries are encoded on a GPU).
        preflight: fail an owner's start at once when another process holds the data dir.
        open_engine: how a reader opens its engine (tests share an in-process Qdrant).
    """
    runtime = Runtime(settings, micro_batch=micro_batch, open_engine=open_engine)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if preflight:
            await run_in_threadpool(runtime.preflight)
        runtime.start_loading()
        try:
            yield
        finally:
            await run_in_threadpool(runtime.close)

    app = FastAPI(
        title="braid",
        version=_version(),
        summary="Hybrid search API: BM25 + dense, fused, reranked",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.metrics = runtime.metrics
    app.state.keyring = KeyRing(settings.api.keys, settings.api.read_keys)
    install_error_handlers(app)
    for module in (search, documents, jobs, embed, service):
        app.include_router(module.router)
    _add_page(app)
    # Last added runs first: CORS wraps everything (a 413 still gets its CORS headers),
    # then the metrics see every response (shed searches too), then searches past the
    # concurrency limit are shed, then the body limit guards the rest.
    app.add_middleware(BodySizeLimit, max_bytes=settings.api.max_body_bytes)
    app.add_middleware(SearchAdmission, limit=settings.api.max_concurrent_searches)
    app.add_middleware(MetricsMiddleware, metrics=runtime.metrics)
    # Also without any origin configured: a preflight is then refused in the error shape
    # (a request without an Origin header passes through untouched).
    app.add_middleware(
        Cors,
        allow_origins=settings.api.cors_origins,
        allow_methods=["GET", "POST", "DELETE"],
        allow_headers=["Authorization", "X-API-Key", "Content-Type"],
        max_age=600,
    )
    app.openapi = _openapi_with_limits(app, settings)  # type: ignore[method-assign]
    if not app.state.keyring.configured and settings.api.host not in (
        "127.0.0.1",
        "localhost",
        "::1",
    ):
        _log.warning(
            "no API keys configured and listening on %s: anyone may write", settings.api.host
        )
    return app


def _add_page(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")


def _openapi_with_limits(app: FastAPI, settings: Settings) -> Callable[[], dict[str, Any]]:
    """The OpenAPI document with this server's configured limits written into the schemas,
    and the key schemes marked optional on the operations this server leaves open."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            description=app.description,
            routes=app.routes,
        )
        limits = settings.api
        search = search_limits(settings)
        components = schema.get("components", {}).get("schemas", {})
        _set(components, "SearchRequest", "query", maxLength=search["query"])
        _set(components, "SearchRequest", "top_k", maximum=search["top_k"])
        _set(components, "SearchRequest", "candidates", maximum=search["candidates"])
        _set(components, "SearchRequest", "rerank_depth", maximum=search["rerank_depth"])
        _set(components, "DocumentsIn", "documents", maxItems=limits.max_batch_documents)
        _set(components, "DocumentIn", "text", maxLength=limits.max_document_chars)
        _set(components, "EmbedRequest", "texts", maxItems=limits.max_embed_texts)
        _mark_open_operations(schema, app.state.keyring)
        app.openapi_schema = schema
        return schema

    return openapi


def _mark_open_operations(schema: dict[str, Any], keyring: KeyRing) -> None:
    """Add the empty requirement (no key needed) to the ``security`` of every operation
    whose scope this server leaves open: all of them without keys, reads without read keys.

    The scope is the role name READ and WRITE give the key schemes (``{"bearer": ["read"]}``).
    """
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            requirements: list[dict[str, list[str]]] = operation.get("security") or []
            roles = {
                role
                for requirement in requirements
                for names in requirement.values()
                for role in names
            }
            if roles and all(_open(keyring, role) for role in roles) and {} not in requirements:
                requirements.append({})


def _open(keyring: KeyRing, role: str) -> bool:
    if role == "write":
        return keyring.open_for("write")
    return role == "read" and keyring.open_for("read")


def _set(components: dict[str, Any], model: str, field: str, **limits: int) -> None:
    prop = components.get(model, {}).get("properties", {}).get(field)
    if prop is None:
        return
    # Optional fields are `anyOf: [{type}, {type: null}]`: the limit goes on the typed branch.
    targets = [b for b in prop.get("anyOf", []) if b.get("type") != "null"] or [prop]
    for target in targets:
        target.update(limits)


def app_from_env() -> FastAPI:
    """Uvicorn factory for ``braid serve --workers N``: settings from the environment."""
    return create_app(Settings())
