"""API keys: the 401/403/200 matrix for read and write scopes, both header styles."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from api_helpers import assert_error
from conftest import running_app
from starlette.testclient import TestClient

from braid.api.deps import KeyRing
from braid.engine.config import Settings

WRITE_KEY = "write-key-0123456789"
READ_KEY = "read-key-abcdefghij"
DOC = {"documents": [{"id": "auth-doc", "text": "Keys and scopes."}]}


@pytest.fixture(scope="module")
def secured(settings_for: Callable[..., Settings]) -> Iterator[TestClient]:
    settings = settings_for("auth", keys=[WRITE_KEY], read_keys=[READ_KEY])
    with running_app(settings) as client:
        yield client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def x_api_key(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


READS = [
    ("POST", "/v1/search", {"query": "keys"}),
    ("POST", "/v1/embed", {"texts": ["keys"]}),
    ("GET", "/v1/stats", None),
    ("GET", "/v1/jobs", None),
]
WRITES = [
    ("POST", "/v1/documents", DOC),
    ("DELETE", "/v1/documents/auth-doc", None),
    ("POST", "/v1/documents/delete", {"filter": {"source": "none"}}),
]


@pytest.mark.parametrize(("method", "url", "body"), READS)
def test_reads_need_a_key_when_read_keys_exist(
    secured: TestClient, method: str, url: str, body: object
) -> None:
    assert_error(secured.request(method, url, json=body), 401, "unauthorized")
    assert_error(
        secured.request(method, url, json=body, headers=bearer("wrong")), 401, "unauthorized"
    )
    for headers in (bearer(READ_KEY), x_api_key(READ_KEY), bearer(WRITE_KEY), x_api_key(WRITE_KEY)):
        response = secured.request(method, url, json=body, headers=headers)
        assert response.status_code == 200, response.text


@pytest.mark.parametrize(("method", "url", "body"), WRITES)
def test_writes_need_a_write_key(secured: TestClient, method: str, url: str, body: object) -> None:
    missing = secured.request(method, url, json=body)
    assert_error(missing, 401, "unauthorized")
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert_error(
        secured.request(method, url, json=body, headers=x_api_key("nope")), 401, "unauthorized"
    )
    assert_error(
        secured.request(method, url, json=body, headers=bearer(READ_KEY)), 403, "forbidden"
    )
    assert_error(
        secured.request(method, url, json=body, headers=x_api_key(READ_KEY)), 403, "forbidden"
    )
    for headers in (bearer(WRITE_KEY), x_api_key(WRITE_KEY)):
        response = secured.request(method, url, json=body, headers=headers)
        assert response.status_code == 202, response.text


def test_service_endpoints_stay_open(secured: TestClient) -> None:
    for url in ("/healthz", "/readyz", "/metrics", "/", "/openapi.json"):
        assert secured.get(url).status_code == 200, url


def test_auth_comes_before_validation(secured: TestClient) -> None:
    assert_error(secured.post("/v1/search", json={"top_k": -1}), 401, "unauthorized")
    assert_error(secured.post("/v1/documents", json={}, headers=bearer(READ_KEY)), 403, "forbidden")


def test_keys_never_appear_in_responses_or_metrics(secured: TestClient) -> None:
    secured.post("/v1/search", json={"query": "x"}, headers=bearer(READ_KEY + "x"))
    for url in ("/metrics", "/openapi.json"):
        text = secured.get(url).text
        assert READ_KEY not in text and WRITE_KEY not in text


def test_scope_matrix_without_read_keys() -> None:
    """Write keys only: reads are open, writes need a write key. No keys: all open."""
    from pydantic import SecretStr

    writes_only = KeyRing([SecretStr("w")], [])
    assert writes_only.open_for("read") and not writes_only.open_for("write")
    assert writes_only.scope_of("w") == "write" and writes_only.scope_of("r") is None
    both = KeyRing([SecretStr("w")], [SecretStr("r")])
    assert not both.open_for("read") and both.scope_of("r") == "read"
    reads_only = KeyRing([], [SecretStr("r")])
    assert not reads_only.open_for("write") and reads_only.scope_of("r") == "read"
    nothing = KeyRing([SecretStr("")], [])
    assert nothing.open_for("read") and nothing.open_for("write")


def test_open_reads_with_write_keys_only(settings_for: Callable[..., Settings]) -> None:
    from braid.api.main import create_app

    # Not started: reads pass auth and then answer 503 not_ready; writes stop at auth.
    client = TestClient(create_app(settings_for("writes-only", keys=[WRITE_KEY])))
    assert_error(client.post("/v1/search", json={"query": "x"}), 503, "not_ready")
    assert_error(client.post("/v1/documents", json=DOC), 401, "unauthorized")
    assert_error(
        client.post("/v1/documents", json=DOC, headers=bearer(WRITE_KEY)), 503, "not_ready"
    )
