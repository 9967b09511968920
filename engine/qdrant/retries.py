"""Transient qdrant-client errors, retried with jittered exponential backoff."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from braid.engine.errors import BackendUnavailableError

BACKEND_ERRORS = (UnexpectedResponse, ResponseHandlingException, ConnectionError, TimeoutError)
# Timeouts, rate limits and server-side failures; 4xx answers other than these are final.
_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
T = TypeVar("T")


def transient(exc: BaseException) -> bool:
    """Whether a retry may succeed where ``exc`` failed."""
    if isinstance(exc, UnexpectedResponse):
        return exc.status_code in _TRANSIENT_STATUS
    return isinstance(exc, ResponseHandlingException | ConnectionError | TimeoutError)


def retrying(retries: int) -> Retrying:
    """Retry transient Qdrant errors (timeouts, 429, 5xx) with jittered exponential backoff."""
    return Retrying(
        retry=retry_if_exception(transient),
        stop=stop_after_attempt(retries + 1),
        wait=wait_exponential_jitter(multiplier=0.2, max=5.0),
        reraise=True,
    )


class Caller:
    """Runs requests with retries; what still fails becomes ``BackendUnavailableError``."""

    def __init__(self, retries: int) -> None:
        self._retrying = retrying(retries)

    def __call__(self, what: str, action: Callable[[], T]) -> T:
        try:
            return self._retrying(action)
        except BACKEND_ERRORS as exc:
            raise BackendUnavailableError(f"Qdrant {what} failed: {exc}") from exc


def create_if_missing(create: Callable[[], object]) -> None:
    """Create a collection, accepting that another process created it first.

    A worker and the API readers start together against a fresh server: all of them see no
    collection, one creation wins and the others get 409 Conflict.
    """
    try:
        create()
    except UnexpectedResponse as exc:
        if exc.status_code != 409:
            raise
