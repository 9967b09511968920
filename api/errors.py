"""The API's one status-code table and its one JSON error shape.

Every error leaves the service as ``{"error": {"code", "message", "path"?}}``, with the
status from ``STATUS_TABLE``. Routes raise engine errors (``BraidError`` subclasses) or the
``ApiError`` subclasses below and never build error responses themselves.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from braid.engine.errors import (
    BackendUnavailableError,
    BraidError,
    ConfigError,
    DocumentNotFoundError,
    IndexLockedError,
    InvalidDocumentError,
    InvalidFilterError,
    InvalidRequestError,
    MissingDependencyError,
    ModelMismatchError,
    ModelsNotLoadedError,
)
from braid.engine.paging import CursorError, IndexChangedError, PastDepthError
from braid.ingestion.jobs import JobNotFoundError, QueueFullError

_log = logging.getLogger("braid.api")
# Seconds a client should wait before retrying a 503 (a busy queue, a store being reopened).
RETRY_AFTER_S = 5


class ApiError(Exception):
    """An error found at the API edge; its class picks the status in ``STATUS_TABLE``."""

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path


class Unauthorized(ApiError):
    """No API key, or one that matches no configured key."""


class Forbidden(ApiError):
    """A valid key without the scope the endpoint needs (a read-only key on a write)."""


class LimitExceeded(ApiError):
    """A request exceeds a configured limit (query length, top_k, batch size, text size)."""


class InvalidInput(ApiError):
    """A request that is well-formed JSON but cannot be served as given."""


class PayloadTooLarge(ApiError):
    """The request body is larger than ``api.max_body_bytes``."""


class NotReady(ApiError):
    """The service is still loading its models or opening its stores (or failed to)."""


class RouteNotFound(ApiError):
    """No route, or no such resource under a known route."""


class UnsupportedMediaType(ApiError):
    """A body sent without ``Content-Type: application/json`` (or a ``+json`` type)."""


class CorsRefused(ApiError):
    """A CORS preflight from an origin (or for a method or header) ``api.cors_origins``
    does not allow; answered by the CORS middleware, before any route."""


# Most specific class first: the first ``isinstance`` match decides.
STATUS_TABLE: Sequence[tuple[type[Exception], int, str]] = (
    (InvalidFilterError, 422, "invalid_filter"),
    (CursorError, 400, "invalid_cursor"),
    (IndexChangedError, 409, "index_changed"),
    (PastDepthError, 400, "past_candidate_depth"),
    (InvalidRequestError, 422, "invalid_request"),
    (InvalidDocumentError, 422, "invalid_document"),
    (LimitExceeded, 422, "limit_exceeded"),
    (InvalidInput, 422, "invalid_input"),
    (DocumentNotFoundError, 404, "document_not_found"),
    (JobNotFoundError, 404, "job_not_found"),
    (RouteNotFound, 404, "not_found"),
    (ModelMismatchError, 409, "model_mismatch"),
    (PayloadTooLarge, 413, "payload_too_large"),
    (UnsupportedMediaType, 415, "unsupported_media_type"),
    (Unauthorized, 401, "unauthorized"),
    (Forbidden, 403, "forbidden"),
    (CorsRefused, 403, "cors_refused"),
    (IndexLockedError, 503, "index_locked"),
    (BackendUnavailableError, 503, "backend_unavailable"),
    (QueueFullError, 503, "queue_full"),
    (NotReady, 503, "not_ready"),
    (ModelsNotLoadedError, 503, "models_not_loaded"),
    (MissingDependencyError, 503, "missing_dependency"),
    (ConfigError, 503, "config_error"),
    (BraidError, 500, "engine_error"),
)
_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


class ErrorItem(BaseModel):
    message: str
    path: str | None = None


class ErrorDetail(BaseModel):
    code: str = Field(
        description="stable, machine-readable error code", examples=["invalid_filter"]
    )
    message: str = Field(description="what is wrong, for people")
    path: str | None = Field(
        default=None,
        description="where in the request: a JSON path into the body ('$.filter.year.$gte'), "
        "or 'query.NAME' / 'path.NAME' for parameters",
        examples=["$.filter.year.$gte"],
    )
    details: list[ErrorItem] | None = Field(
        default=None, description="validation errors only: every problem found, not just the first"
    )


class ErrorResponse(BaseModel):
    """The one error shape of every endpoint."""

    error: ErrorDetail


def classify(exc: Exception) -> tuple[int, str]:
    """Status and code of an exception, from ``STATUS_TABLE`` (500 for anything unknown)."""
    for cls, status, code in STATUS_TABLE:
        if isinstance(exc, cls):
            return status, code
    return 500, "internal_error"


def error_payload(code: str, message: str, path: str | None = None) -> dict[str, Any]:
    detail: dict[str, Any] = {"code": code, "message": message}
    if path is not None:
        detail["path"] = path
    return {"error": detail}


def error_headers(status: int) -> dict[str, str]:
    if status == 503:
        return {"Retry-After": str(RETRY_AFTER_S)}
    if status == 401:
        return {"WWW-Authenticate": 'Bearer realm="braid"'}
    return {}


class ErrorCounter(Protocol):
    def count_error(self, status: int, code: str) -> None: ...


def _count(request: Request, status: int, code: str) -> None:
    counter: ErrorCounter | None = getattr(request.app.state, "metrics", None)
    if counter is not None:
        counter.count_error(status, code)


def error_response(
    status: int,
    code: str,
    message: str,
    path: str | None = None,
    headers: dict[str, str] | None = None,
    request: Request | None = None,
) -> JSONResponse:
    if request is not None:
        _count(request, status, code)
    return JSONResponse(
        error_payload(code, message, path),
        status_code=status,
        headers={**error_headers(status), **(headers or {})},
    )


def _path_of(exc: Exception) -> str | None:
    if isinstance(exc, ApiError):
        return exc.path
    if isinstance(exc, InvalidFilterError | InvalidRequestError):
        return exc.path
    return None


def _message_of(exc: Exception) -> str:
    if isinstance(exc, ApiError):
        return exc.message
    if isinstance(exc, InvalidFilterError):
        return exc.reason
    return str(exc) or type(exc).__name__


# Pydantic adds the union member it tried to ``loc`` ("str", "int", "list[str]",
# "function-after[...]"); a client wants the field's path, once.
_UNION_TAG = re.compile(r"^(str|int|float|bool|none|[A-Za-z_-]+\[.*\])$")


def location_path(loc: Sequence[int | str]) -> str:
    """FastAPI's ``loc`` tuple as a JSON path (body) or ``query.NAME`` (parameters)."""
    if not loc:
        return "$"
    where = loc[0]
    rest = [p for p in loc[1:] if not (isinstance(p, str) and _UNION_TAG.match(p))]
    if where == "body":
        text = "$"
        for part in rest:
            text += f"[{part}]" if isinstance(part, int) else f".{part}"
        return text
    return ".".join(str(p) for p in (where, *rest))


async def _handle_known(request: Request, exc: Exception) -> JSONResponse:
    status, code = classify(exc)
    if status >= 500 and status != 503:
        _log.error("%s %s failed: %s", request.method, request.url.path, exc, exc_info=exc)
    return error_response(status, code, _message_of(exc), _path_of(exc), request=request)


async def _handle_validation(request: Request, exc: Exception) -> JSONResponse:
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    if not errors:
        return error_response(422, "validation_error", "invalid request", request=request)
    first = errors[0]
    if first.get("type") == "json_invalid":
        # FastAPI puts the decoder's reason in ctx and the character offset in loc.
        reason = str((first.get("ctx") or {}).get("error") or "").strip()
        loc = first.get("loc", ())
        offset = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else 0
        message = "the request body cannot be parsed as JSON"
        if reason:
            message += f": {reason}" + (f" at character {offset}" if offset > 0 else "")
        return error_response(400, "malformed_json", message, request=request)
    # One entry per path: a union field reports one error per member it tried.
    details: dict[str, str] = {}
    for error in errors:
        details.setdefault(location_path(error.get("loc", ())), str(error.get("msg", "")))
    path, message = next(iter(details.items()))
    if len(details) > 1:
        extra = len(details) - 1
        message += f" (and {extra} more problem{'s' if extra > 1 else ''})"
    body = error_payload("validation_error", message or "invalid value", path)
    body["error"]["details"] = [{"message": m, "path": p} for p, m in list(details.items())[:50]]
    _count(request, 422, "validation_error")
    return JSONResponse(body, status_code=422)


async def _handle_http(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, StarletteHTTPException):
        return error_response(500, "internal_error", "internal error", request=request)
    code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
    message = str(exc.detail) if exc.detail else code.replace("_", " ")
    headers = dict(exc.headers) if exc.headers else None
    return error_response(exc.status_code, code, message, headers=headers, request=request)


async def _handle_unexpected(request: Request, exc: Exception) -> JSONResponse:
    # A bug: log it with its traceback, answer in the usual shape without internals.
    _log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(
        500, "internal_error", "internal error; it has been logged", request=request
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers: engine and API errors, validation, HTTP errors, bugs."""
    app.add_exception_handler(BraidError, _handle_known)
    app.add_exception_handler(ApiError, _handle_known)
    app.add_exception_handler(RequestValidationError, _handle_validation)
    app.add_exception_handler(StarletteHTTPException, _handle_http)
    app.add_exception_handler(Exception, _handle_unexpected)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the error statuses a route can answer."""
    descriptions = {
        400: "Malformed JSON body (or one nested deeper than the limit); search: a cursor "
        "from another query (invalid_cursor) or a page past the candidate depth "
        "(past_candidate_depth)",
        401: "Missing or unknown API key",
        403: "The key may not write",
        404: "Not found",
        409: "The index was built with another embedding model; search: the index changed "
        "since the cursor's page (index_changed)",
        413: "Body larger than api.max_body_bytes",
        415: "The body's Content-Type is not application/json",
        422: "Invalid or out-of-limit input; `path` points at it",
        503: "Not ready, store locked or unavailable, queue full, or (search, embed) more "
        "concurrent requests than api.max_concurrent_searches: overloaded (see Retry-After)",
    }
    return {s: {"model": ErrorResponse, "description": descriptions[s]} for s in statuses}
