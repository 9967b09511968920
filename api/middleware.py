"""ASGI middleware: the request body size limit (before anything reads the body), load
shedding of searches past a concurrency limit, and CORS preflights refused in the API's error
shape."""

from __future__ import annotations

import json
from collections.abc import Sequence

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from braid.api.errors import CorsRefused, classify, error_headers, error_payload


class _TooLarge(HTTPException):
    """Raised from ``receive``: FastAPI passes HTTP exceptions on to the error handlers."""


class BodySizeLimit:
    """Answer 413 for a body over ``max_bytes``: at once when Content-Length says so, or as
    soon as a streamed (chunked) body passes the limit."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._reject(send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge(413, f"request body larger than {self.max_bytes} bytes")
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._reject(send)

    async def _reject(self, send: Send) -> None:
        body = json.dumps(
            error_payload("payload_too_large", f"request body larger than {self.max_bytes} bytes")
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
            *((k.lower().encode(), v.encode()) for k, v in error_headers(413).items()),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


SHED_RETRY_AFTER_S = 1


class SearchAdmission:
    """Answer 503 ``overloaded`` (with ``Retry-After``) to a search or embedding request
    that arrives while ``limit`` of them are already being answered.

    Past a few per core, another concurrent search only waits for a search thread: its
    latency grows without bound and every other client's with it. Refusing at once keeps the latency of the admitted ones bounded, and tells the
    client when to come back. Counted in the event loop, so no lock is needed.
    """

    PATHS = frozenset({"/v1/search", "/v1/embed"})

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") not in self.PATHS:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            await self._shed(send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1

    async def _shed(self, send: Send) -> None:
        message = (
            f"{self.limit} searches are being answered (api.max_concurrent_searches): retry "
            "after the Retry-After seconds"
        )
        body = json.dumps(error_payload("overloaded", message)).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            # A search takes milliseconds: the burst is over in a second (not the 5 s a
            # store being reopened gets).
            (b"retry-after", str(SHED_RETRY_AFTER_S).encode()),
        ]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class Cors(CORSMiddleware):
    """Starlette's CORS middleware, whose refused preflights answer in the error shape.

    Starlette refuses with a plain-text 400 ("Disallowed CORS origin"); here the status
    and code come from the status table (403 ``cors_refused``). Installed with an empty
    origin list too, so a preflight is refused the same way when no origin is allowed.
    """

    def __init__(
        self,
        app: ASGIApp,
        allow_origins: Sequence[str],
        allow_methods: Sequence[str],
        allow_headers: Sequence[str],
        max_age: int,
    ) -> None:
        super().__init__(
            app,
            allow_origins=allow_origins,
            allow_methods=allow_methods,
            allow_headers=allow_headers,
            max_age=max_age,
        )
        self._configured = bool(allow_origins)

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        # Starlette's text names what failed: "Disallowed CORS origin, method".
        failed = bytes(response.body).decode().removeprefix("Disallowed CORS ")
        if self._configured:
            message = f"CORS preflight refused: {failed} not allowed (see api.cors_origins)"
        else:
            message = "CORS preflight refused: no origin is allowed (api.cors_origins is empty)"
        status, code = classify(CorsRefused(message))
        vary = response.headers.get("vary")
        return JSONResponse(
            error_payload(code, message),
            status_code=status,
            headers={"Vary": vary} if vary else None,
        )
