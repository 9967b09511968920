"""Opaque cursors: page 2 continues page 1 of the same query on the same index.

A page is a slice of one deterministic list: the query's fused (and reranked) candidates,
``depth`` per retriever, grouped into documents. A cursor carries what is needed to cut the
next slice of that same list: the offset, the candidate depth the first page used, a
fingerprint of everything else that shapes the list (query, mode, filter, fusion, weights,
reranking, grouping) and the index version it was made on. A cursor used with another
query, or after the index changed, is refused rather than silently giving repeats or gaps.

The cursor is base64url JSON: opaque to clients (its fields may change), not secret and not
signed: a forged cursor can only ask for a page the caller could ask for with ``offset``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

from braid.engine.errors import InvalidRequestError

CURSOR_VERSION = 1
MAX_CURSOR_CHARS = 512


class CursorError(InvalidRequestError):
    """A cursor that is malformed, or belongs to another query."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "$.cursor")


class IndexChangedError(InvalidRequestError):
    """The index was written between the page a cursor came from and this request."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "$.cursor")


class PastDepthError(InvalidRequestError):
    """A page that starts or ends past the candidate depth: results there do not exist."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "$.offset")


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the next page starts, and what list it belongs to."""

    offset: int
    depth: int
    fingerprint: str
    index_version: str

    def encode(self) -> str:
        body = {
            "v": CURSOR_VERSION,
            "o": self.offset,
            "d": self.depth,
            "f": self.fingerprint,
            "i": self.index_version,
        }
        raw = json.dumps(body, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        """Parse a cursor made by ``encode``.

        Raises:
            CursorError: ``text`` is not such a cursor.
        """
        if len(text) > MAX_CURSOR_CHARS:
            raise CursorError("cursor is not one this server made (too long)")
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            body = json.loads(raw)
            cursor = cls(
                offset=body["o"], depth=body["d"], fingerprint=body["f"], index_version=body["i"]
            )
        except (binascii.Error, ValueError, KeyError, TypeError) as exc:
            raise CursorError("cursor is not one this server made") from exc
        if (
            body.get("v") != CURSOR_VERSION
            or not isinstance(cursor.offset, int)
            or not isinstance(cursor.depth, int)
            or cursor.offset < 0
            or cursor.depth < 1
            or not isinstance(cursor.fingerprint, str)
            or not isinstance(cursor.index_version, str)
        ):
            raise CursorError("cursor is not one this server made")
        return cursor


def fingerprint(shape: Mapping[str, object]) -> str:
    """A short stable hash of what shapes a result list (JSON-serialisable values)."""
    canonical = json.dumps(shape, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
