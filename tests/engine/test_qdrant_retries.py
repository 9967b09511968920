"""The client adapter's retry policy: transient Qdrant errors are retried, others are not, and
what still fails leaves ``engine/`` as ``BackendUnavailableError``."""

from __future__ import annotations

import httpx
import pytest
from qdrant_client.http.exceptions import UnexpectedResponse

from braid.engine.errors import BackendUnavailableError
from braid.engine.qdrant.retries import Caller, create_if_missing


def _response(status: int) -> UnexpectedResponse:
    return UnexpectedResponse(status, "reason", b"{}", httpx.Headers())


class Flaky:
    """A server that answers ``statuses`` in turn (an int: that error; None: success)."""

    def __init__(self, *statuses: int | None) -> None:
        self.statuses = list(statuses)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        status = self.statuses.pop(0)
        if status is not None:
            raise _response(status)
        return "ok"


def test_transient_errors_are_retried_until_success() -> None:
    server = Flaky(503, 429, None)
    assert Caller(retries=3)("search", server) == "ok"
    assert server.calls == 3


def test_a_client_error_is_not_retried() -> None:
    server = Flaky(400, None)
    with pytest.raises(BackendUnavailableError, match="Qdrant upsert failed"):
        Caller(retries=3)("upsert", server)
    assert server.calls == 1


def test_retries_run_out() -> None:
    server = Flaky(503, 503, 503)
    with pytest.raises(BackendUnavailableError):
        Caller(retries=2)("count", server)
    assert server.calls == 3


def test_a_collection_created_by_another_process_is_accepted() -> None:
    create_if_missing(Flaky(409))
    with pytest.raises(UnexpectedResponse):
        create_if_missing(Flaky(500))
