"""JSON request bodies: the media type a body must declare and the nesting depth it may have.

Every router uses ``JsonRoute``, whose requests parse their JSON body only after checking
its nesting depth on the raw bytes. ``json.loads`` itself survives 100,000 levels (it raises
``RecursionError``), but a body a few hundred levels deep parses and then breaks pydantic
(a metadata value ~900 levels deep fails serialisation with a 500). No legitimate body
comes near the limit: the deepest is a filter at its 8 levels, about 20 JSON levels.
"""

from __future__ import annotations

import email.message
import json
import re
from collections.abc import Callable, Coroutine
from itertools import accumulate
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

# Arrays and objects inside arrays and objects, the body itself counting as level 1.
MAX_JSON_DEPTH = 64
# A JSON string, escapes included (the unrolled form: no backtracking on long texts).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
# +1 for an opening bracket, -1 for a closing one, indexed by byte (a list: map() over it
# runs in C, ~1 s for 30 MB of brackets, where json.loads takes 7 s on the same text).
_STEP = [{ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}.get(b, 0) for b in range(256)]


def json_depth(body: bytes) -> int:
    """The deepest nesting of arrays and objects in a JSON text (0 for a scalar).

    Strings are cut out first, so brackets inside them do not count; on a text that is
    not JSON the figure means nothing, and the parser reports the text instead.
    """
    brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKET)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def is_json_media_type(content_type: str | None) -> bool:
    """``application/json`` or ``application/*+json``, parameters allowed: the types
    FastAPI reads as JSON (any other body reaches validation as bytes)."""
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


class JsonRequest(Request):
    """A request whose ``json()`` refuses bodies nested too deeply and bytes that are not
    text, as ``JSONDecodeError``: FastAPI answers that as malformed JSON (400)."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            depth = json_depth(body)
            if depth > MAX_JSON_DEPTH:
                raise json.JSONDecodeError(
                    f"nested {depth} levels deep, more than the {MAX_JSON_DEPTH} accepted", "", 0
                )
            try:
                self._json = json.loads(body)
            except (UnicodeDecodeError, RecursionError) as exc:
                # Not UTF-8/16/32, or deeper than the interpreter can parse.
                raise json.JSONDecodeError(f"cannot be decoded: {exc}", "", 0) from exc
        return self._json


class JsonRoute(APIRoute):
    """An ``APIRoute`` whose handler gets a ``JsonRequest`` (FastAPI's documented hook)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def json_handler(request: Request) -> Response:
            return await handler(JsonRequest(request.scope, request.receive))

        return json_handler
