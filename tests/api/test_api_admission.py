"""Load shedding: a search past ``api.max_concurrent_searches`` answers 503 at once."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.types import Receive, Scope, Send

from braid.api.middleware import SearchAdmission


class Blocking:
    """An inner app that holds each request until released."""

    def __init__(self) -> None:
        self.entered = 0
        self.release = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.entered += 1
        await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


async def call(app: Any, path: str) -> tuple[int, dict[str, str], bytes]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app({"type": "http", "path": path, "method": "POST", "headers": []}, receive, send)
    start, body = sent[0], sent[1]
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], headers, body["body"]


def test_searches_past_the_limit_are_shed_and_others_pass() -> None:
    async def scenario() -> None:
        inner = Blocking()
        app = SearchAdmission(inner, limit=2)
        held = [asyncio.create_task(call(app, "/v1/search")) for _ in range(2)]
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert (inner.entered, app.in_flight) == (2, 2)
        status, headers, body = await call(app, "/v1/search")
        assert status == 503 and headers["retry-after"] == "1"
        error = json.loads(body)["error"]
        assert error["code"] == "overloaded"
        assert "api.max_concurrent_searches" in error["message"]
        status, _, _ = await call(app, "/v1/embed")
        assert status == 503
        assert inner.entered == 2  # the shed ones never reached the app
        # Other routes are not counted nor shed.
        other = asyncio.create_task(call(app, "/v1/stats"))
        await asyncio.sleep(0)
        assert inner.entered == 3
        inner.release.set()
        assert [(await t)[0] for t in (*held, other)] == [200, 200, 200]
        assert app.in_flight == 0
        assert (await call(app, "/v1/search"))[0] == 200  # room again

    asyncio.run(scenario())
