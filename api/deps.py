"""Dependencies: the runtime's parts, API-key scopes and the configurable input limits.

Routes take what they need as ``Annotated`` aliases (``SearcherDep``, ``JobsDep``,
``CheckedSearch``...) and declare their scope with ``dependencies=[READ]`` or ``[WRITE]``.

The dependencies that never block are ``async def``: FastAPI runs a plain ``def``
dependency in its thread pool, a thread hand-off each, and a search needed eight of them
(``braid bench api``: see the README). ``checked_documents`` stays a plain ``def``: a batch of
a thousand documents takes long enough to validate to stall the event loop.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Literal

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from braid.api.errors import (
    Forbidden,
    InvalidInput,
    LimitExceeded,
    NotReady,
    Unauthorized,
    UnsupportedMediaType,
)
from braid.api.metrics import Metrics
from braid.api.routing import is_json_media_type
from braid.api.runtime import Runtime
from braid.api.schemas import (
    MAX_QUERY_CHARS,
    DocumentsIn,
    EmbedRequest,
    FilterJson,
    SearchRequest,
)
from braid.engine.config import Settings
from braid.engine.errors import BraidError, InvalidFilterError
from braid.engine.factory import Engine
from braid.engine.filters import FilterExpr, parse_filter
from braid.engine.metadata import metadata_over_limits
from braid.engine.searcher import MAX_CANDIDATES, MAX_TOP_K, HybridSearcher
from braid.ingestion.documents import InputError, SourceDocument
from braid.ingestion.jobs import JobService
from braid.ingestion.ledger import Ledger

Scope = Literal["read", "write"]


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_settings(runtime: RuntimeDep) -> Settings:
    return runtime.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_metrics(runtime: RuntimeDep) -> Metrics:
    return runtime.metrics


MetricsDep = Annotated[Metrics, Depends(get_metrics)]


async def ready_runtime(runtime: RuntimeDep) -> Runtime:
    """The runtime, once the models are warm and the stores open; 503 before."""
    if runtime.ready:
        return runtime
    if runtime.status == "failed":
        if isinstance(runtime.error, BraidError):
            # The start-up error itself, so its status is precise (409 for a model mismatch).
            raise runtime.error
        raise NotReady(f"the service failed to start: {runtime.error}")
    raise NotReady(f"the service is {runtime.status}; retry shortly")


ReadyDep = Annotated[Runtime, Depends(ready_runtime)]


async def get_searcher(runtime: ReadyDep) -> HybridSearcher:
    if runtime.searcher is None:
        raise NotReady("the searcher is not open")
    return runtime.searcher


async def get_engine(runtime: ReadyDep) -> Engine:
    return runtime.engine


async def get_ledger(runtime: ReadyDep) -> Ledger:
    return runtime.ledger


async def get_jobs(runtime: ReadyDep) -> JobService:
    """The jobs: an owner's service runs its worker; a reader's only queues them, for the
    separate ``braid worker`` that polls the shared queue."""
    if runtime.jobs is None:
        raise NotReady("the job queue is not open")
    if not runtime.reader and runtime.jobs.worker is None:
        raise NotReady("the ingestion worker is not running")
    return runtime.jobs


SearcherDep = Annotated[HybridSearcher, Depends(get_searcher)]
EngineDep = Annotated[Engine, Depends(get_engine)]
LedgerDep = Annotated[Ledger, Depends(get_ledger)]
JobsDep = Annotated[JobService, Depends(get_jobs)]


# -- API keys -----------------------------------------------------------------------------


class KeyRing:
    """The configured keys and their scopes; comparisons are constant-time.

    * no keys at all: everything is open (a loopback development server);
    * ``api.keys`` only: reads are open, writes need one of those keys;
    * ``api.read_keys`` too: reads need any key, writes a key from ``api.keys``.
    """

    def __init__(self, keys: list[SecretStr], read_keys: list[SecretStr]) -> None:
        self._write = [k.get_secret_value().encode() for k in keys if k.get_secret_value()]
        self._read = [k.get_secret_value().encode() for k in read_keys if k.get_secret_value()]

    @property
    def configured(self) -> bool:
        return bool(self._write or self._read)

    def open_for(self, scope: Scope) -> bool:
        return not self._read if scope == "read" else not self.configured

    def scope_of(self, presented: str) -> Scope | None:
        """The scope a presented key grants, or ``None``; every key is compared (no early exit)."""
        candidate = presented.encode()
        is_write = False
        is_read = False
        for key in self._write:
            is_write |= hmac.compare_digest(candidate, key)
        for key in self._read:
            is_read |= hmac.compare_digest(candidate, key)
        if is_write:
            return "write"
        return "read" if is_read else None


# The two ways to send a key, as OpenAPI security schemes: depending on them puts them in
# the document (components.securitySchemes, and each protected operation's `security`).
# They never refuse anything (auto_error=False): _require decides, from presented_key.
BEARER_SCHEME = HTTPBearer(
    scheme_name="bearer",
    auto_error=False,
    description="`Authorization: Bearer KEY`, a key from BRAID_API__KEYS (read and write) "
    "or BRAID_API__READ_KEYS (read only)",
)
API_KEY_SCHEME = APIKeyHeader(
    name="X-API-Key",
    scheme_name="apiKey",
    auto_error=False,
    description="`X-API-Key: KEY`, the same keys as the bearer scheme",
)
BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER_SCHEME)]
ApiKeyHeaderValue = Annotated[str | None, Depends(API_KEY_SCHEME)]


def presented_key(request: Request) -> str | None:
    """``Authorization: Bearer KEY`` or ``X-API-Key: KEY``."""
    authorization = request.headers.get("authorization")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    key = request.headers.get("x-api-key")
    return key.strip() if key and key.strip() else None


def _require(scope: Scope, request: Request) -> None:
    ring: KeyRing = request.app.state.keyring
    if ring.open_for(scope):
        return
    key = presented_key(request)
    if key is None:
        raise Unauthorized("an API key is required (Authorization: Bearer KEY or X-API-Key)")
    granted = ring.scope_of(key)
    if granted is None:
        raise Unauthorized("unknown API key")
    if scope == "write" and granted != "write":
        raise Forbidden("this API key may only read")


async def require_read(
    request: Request, _bearer: BearerCredentials, _key: ApiKeyHeaderValue
) -> None:
    _require("read", request)


async def require_write(
    request: Request, _bearer: BearerCredentials, _key: ApiKeyHeaderValue
) -> None:
    _require("write", request)


# As Security with the scope as an OpenAPI role name: each protected operation's `security`
# reads [{"bearer": ["read"]}, {"apiKey": ["read"]}] (or "write"), either header will do.
READ = Security(require_read, scopes=["read"])
WRITE = Security(require_write, scopes=["write"])


async def require_json_body(request: Request) -> None:
    """415 for a body not sent as JSON, after the key check (auth comes first).

    FastAPI reads such a body as bytes and validation answers a puzzling 422 about the
    body's type. An empty body goes on to validation, which says what is missing.
    """
    if not await request.body():  # read once already: Starlette keeps it
        return
    content_type = request.headers.get("content-type")
    if not is_json_media_type(content_type):
        got = repr(content_type) if content_type else "none"
        raise UnsupportedMediaType(
            f"the body must be JSON, sent with Content-Type: application/json (got {got})"
        )


JSON_BODY = Depends(require_json_body)


# -- limits -------------------------------------------------------------------------------


def request_filter(raw: FilterJson | None, path: str = "$.filter") -> FilterExpr | None:
    """Parse a body's filter; errors point into the body (``$.filter.year.$gte``)."""
    try:
        return parse_filter(raw)
    except InvalidFilterError as exc:
        raise InvalidFilterError(exc.reason, path + exc.path[1:]) from exc


def search_limits(settings: Settings) -> dict[str, int]:
    """The limits in effect: the configured one, within the engine's hard maximum.

    These fields carry no maximum of their own in ``SearchRequest``: one there would
    answer first, naming the hard maximum instead of the configured limit.
    """
    limits = settings.api
    return {
        "query": min(limits.max_query_chars, MAX_QUERY_CHARS),
        "top_k": min(limits.max_top_k, MAX_TOP_K),
        "candidates": min(limits.max_candidates, MAX_CANDIDATES),
        "rerank_depth": min(limits.max_candidates, MAX_CANDIDATES),
    }


_LIMIT_SETTING = {
    "top_k": "api.max_top_k",
    "candidates": "api.max_candidates",
    "rerank_depth": "api.max_candidates",
}


async def checked_search(body: SearchRequest, settings: SettingsDep) -> SearchRequest:
    limits = search_limits(settings)
    if len(body.query) > limits["query"]:
        raise LimitExceeded(
            f"query longer than {limits['query']} characters (api.max_query_chars)", "$.query"
        )
    if not body.query.strip():
        raise InvalidInput("query is blank", "$.query")
    for name, setting in _LIMIT_SETTING.items():
        value = getattr(body, name)
        if value is not None and value > limits[name]:
            raise LimitExceeded(f"{name} above {limits[name]} ({setting})", f"$.{name}")
    return body


def checked_documents(body: DocumentsIn, settings: SettingsDep) -> list[SourceDocument]:
    """Validate a batch with the CLI's record rules; the first bad one answers 422."""
    limits = settings.api
    if len(body.documents) > limits.max_batch_documents:
        raise LimitExceeded(
            f"more than {limits.max_batch_documents} documents in one request", "$.documents"
        )
    documents: list[SourceDocument] = []
    first_seen: dict[str, int] = {}
    for i, item in enumerate(body.documents):
        path = f"$.documents[{i}]"
        if len(item.text) > limits.max_document_chars:
            raise LimitExceeded(
                f"text longer than {limits.max_document_chars} characters", f"{path}.text"
            )
        record = item.to_record(f"documents[{i}]")
        if isinstance(record, InputError):
            raise InvalidInput(record.message, path)
        over = metadata_over_limits(
            record.metadata,
            max_keys=settings.metadata.max_keys,
            max_value_chars=settings.metadata.max_value_chars,
        )
        if over is not None:
            message, key = over
            raise LimitExceeded(message, f"{path}.{key}" if key else path)
        if record.doc_id in first_seen:
            first = first_seen[record.doc_id]
            raise InvalidInput(
                f"duplicate id {record.doc_id!r} (first at $.documents[{first}])", f"{path}.id"
            )
        first_seen[record.doc_id] = i
        documents.append(record)
    return documents


async def checked_embed(body: EmbedRequest, settings: SettingsDep) -> EmbedRequest:
    limits = settings.api
    if len(body.texts) > limits.max_embed_texts:
        raise LimitExceeded(f"more than {limits.max_embed_texts} texts", "$.texts")
    max_chars = limits.max_query_chars if body.kind == "query" else limits.max_document_chars
    for i, text in enumerate(body.texts):
        if len(text) > max_chars:
            raise LimitExceeded(
                f"{body.kind} text longer than {max_chars} characters", f"$.texts[{i}]"
            )
    return body


CheckedSearch = Annotated[SearchRequest, Depends(checked_search)]
CheckedDocuments = Annotated[list[SourceDocument], Depends(checked_documents)]
CheckedEmbed = Annotated[EmbedRequest, Depends(checked_embed)]
