"""The API's edges: media types, deep JSON, CORS preflights, HEAD probes, strict numbers,
limits that name the configured value, the key schemes in OpenAPI, a busy port.

Where only the edge is under test the app is not started (no models are loaded): CORS,
HEAD /healthz, 415 and auth answer before anything needs the stores. The rest use the
session's ready ``search_client`` over the 12 sample documents.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
import uvicorn
from api_helpers import assert_error, braid_command, free_port, hit_ids
from starlette.testclient import TestClient

from braid.api.main import create_app
from braid.api.routing import MAX_JSON_DEPTH, json_depth
from braid.cli.serve import _uvicorn_exit, listen_problem
from braid.engine.config import Settings

WRITE_KEY = "reliability-write-key"
READ_KEY = "reliability-read-key"
DOC = {"documents": [{"id": "edge-doc", "text": "Edges of the API."}]}
ORIGIN = "http://allowed.example"


def unstarted(settings: Settings) -> TestClient:
    """A client over an app whose lifespan never runs: no lock, no models."""
    return TestClient(create_app(settings), raise_server_exceptions=False)


# -- 415 for a body that is not sent as JSON ---------------------------------------------


@pytest.mark.parametrize("url", ["/v1/search", "/v1/documents", "/v1/documents/delete"])
@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml", None]
)
def test_a_body_that_is_not_json_answers_415(
    search_client: TestClient, url: str, content_type: str | None
) -> None:
    body = json.dumps({"query": "coffee"} if url == "/v1/search" else DOC).encode()
    headers = {"content-type": content_type} if content_type else {}
    error = assert_error(
        search_client.post(url, content=body, headers=headers), 415, "unsupported_media_type"
    )
    assert "application/json" in error["message"]
    assert (content_type or "none") in error["message"]


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "application/x+json"]
)
def test_json_media_types_are_read(search_client: TestClient, content_type: str) -> None:
    body = json.dumps({"query": "coffee grind size", "top_k": 1}).encode()
    response = search_client.post(
        "/v1/search", content=body, headers={"content-type": content_type}
    )
    assert hit_ids(response) == ["espresso"]


def test_embed_refuses_text_plain(search_client: TestClient) -> None:
    response = search_client.post(
        "/v1/embed", content=b'{"texts": ["x"]}', headers={"content-type": "text/plain"}
    )
    assert_error(response, 415, "unsupported_media_type")


def test_an_empty_body_goes_on_to_validation(search_client: TestClient) -> None:
    response = search_client.post("/v1/search", headers={"content-type": "text/plain"})
    assert_error(response, 422, "validation_error", "$")


def test_auth_comes_before_the_media_type(settings_for: Callable[..., Settings]) -> None:
    client = unstarted(settings_for("edge-auth", keys=[WRITE_KEY], read_keys=[READ_KEY]))
    text = {"content-type": "text/plain"}
    body = json.dumps(DOC).encode()
    assert_error(client.post("/v1/documents", content=body, headers=text), 401, "unauthorized")
    read_only = {**text, "X-API-Key": READ_KEY}
    assert_error(client.post("/v1/documents", content=body, headers=read_only), 403, "forbidden")
    allowed = {**text, "X-API-Key": WRITE_KEY}
    assert_error(
        client.post("/v1/documents", content=body, headers=allowed), 415, "unsupported_media_type"
    )
    # As JSON, the same request gets past both to readiness (this app never started).
    assert_error(
        client.post("/v1/documents", json=DOC, headers={"X-API-Key": WRITE_KEY}), 503, "not_ready"
    )


# -- deep and undecodable JSON: 400 malformed_json, quickly ------------------------------


def test_json_depth_by_hand() -> None:
    assert json_depth(b'"x"') == 0
    assert json_depth(b"[]") == 1
    assert json_depth(b'[{"a": [1, 2]}, {}]') == 3
    assert json_depth(b'{"a": "[[[[{{{{"}') == 1  # brackets in strings do not count
    assert json_depth(b'["\\"[[", {"b": "\\\\"}]') == 2  # escaped quote, escaped backslash
    assert json_depth(b"[" * 100_000) == 100_000


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000,
        b"[" * 100_000 + b"]" * 100_000,
        b'{"query": "x", "filter": ' + b'{"a": ' * 100_000,
        b'{"query": "x", "filter": {"a": ' + b"[" * 50_000 + b"]" * 50_000 + b"}}",
    ],
    ids=["open-arrays", "closed-arrays", "open-objects", "in-filter"],
)
def test_deeply_nested_json_is_malformed_json(search_client: TestClient, body: bytes) -> None:
    started = time.monotonic()
    response = search_client.post(
        "/v1/search", content=body, headers={"content-type": "application/json"}
    )
    error = assert_error(response, 400, "malformed_json")
    assert f"more than the {MAX_JSON_DEPTH} accepted" in error["message"]
    assert time.monotonic() - started < 2.0


def test_the_depth_limit_is_exact(search_client: TestClient) -> None:
    def body(lists: int) -> bytes:
        # The body is level 1, the filter object level 2, then the lists.
        return b'{"query": "x", "filter": {"a": ' + b"[" * lists + b"]" * lists + b"}}"

    at_limit = search_client.post(
        "/v1/search", content=body(MAX_JSON_DEPTH - 2), headers={"content-type": "application/json"}
    )
    # Parsed: the filter parser refuses a list nested in a list, with its path.
    assert_error(at_limit, 422, "invalid_filter", "$.filter.a")
    over = search_client.post(
        "/v1/search", content=body(MAX_JSON_DEPTH - 1), headers={"content-type": "application/json"}
    )
    assert_error(over, 400, "malformed_json")


def test_deep_metadata_is_refused_not_a_500(search_client: TestClient) -> None:
    # 900 levels parse with json.loads; pydantic then failed to serialise them (a 500).
    deep = "[" * 900 + "]" * 900
    body = '{"documents": [{"id": "deep", "text": "t", "m": ' + deep + "}]}"
    response = search_client.post(
        "/v1/documents", content=body.encode(), headers={"content-type": "application/json"}
    )
    assert_error(response, 400, "malformed_json")


def test_undecodable_bytes_are_malformed_json(search_client: TestClient) -> None:
    response = search_client.post(
        "/v1/search",
        content=b'{"query": "\xff\xfe\xfa"}',
        headers={"content-type": "application/json"},
    )
    assert_error(response, 400, "malformed_json")


def test_malformed_json_says_where(search_client: TestClient) -> None:
    response = search_client.post(
        "/v1/search", content=b'{"query": }', headers={"content-type": "application/json"}
    )
    error = assert_error(response, 400, "malformed_json")
    assert error["message"] == (
        "the request body cannot be parsed as JSON: Expecting value at character 10"
    )


# -- CORS preflights and HEAD probes ------------------------------------------------------


def preflight(client: TestClient, origin: str, method: str = "POST") -> httpx.Response:
    return client.options(
        "/v1/search", headers={"origin": origin, "access-control-request-method": method}
    )


def test_cors_preflights(settings_for: Callable[..., Settings]) -> None:
    client = unstarted(settings_for("edge-cors", cors_origins=[ORIGIN]))
    allowed = preflight(client, ORIGIN)
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    refused = assert_error(preflight(client, "http://evil.example"), 403, "cors_refused")
    assert refused["message"] == "CORS preflight refused: origin not allowed (see api.cors_origins)"
    method = assert_error(preflight(client, ORIGIN, "PUT"), 403, "cors_refused")
    assert "method not allowed" in method["message"]
    # A simple request from an allowed origin gets the header; another origin does not.
    assert (
        client.get("/healthz", headers={"origin": ORIGIN}).headers["access-control-allow-origin"]
        == ORIGIN
    )
    other = client.get("/healthz", headers={"origin": "http://evil.example"})
    assert other.status_code == 200 and "access-control-allow-origin" not in other.headers


def test_cors_preflight_without_configured_origins(settings_for: Callable[..., Settings]) -> None:
    client = unstarted(settings_for("edge-no-cors"))
    error = assert_error(preflight(client, ORIGIN), 403, "cors_refused")
    assert "api.cors_origins is empty" in error["message"]
    # An OPTIONS that is not a preflight reaches the router, in the same shape.
    assert_error(client.options("/v1/search"), 405, "method_not_allowed")


def test_head_healthz_in_process(settings_for: Callable[..., Settings]) -> None:
    client = unstarted(settings_for("edge-head"))
    get = client.get("/healthz")
    head = client.head("/healthz")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"] == "application/json"
    assert head.headers["content-length"] == str(len(get.content))


@pytest.fixture(scope="module")
def http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """A real uvicorn over an app whose lifespan is off: HTTP on the wire, no models."""
    from api_helpers import make_settings

    app = create_app(make_settings(tmp_path_factory.mktemp("edge-http")))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        yield client
    server.should_exit = True
    thread.join(10)


def test_head_probes_over_http(http_server: httpx.Client) -> None:
    get = http_server.get("/healthz")
    head = http_server.head("/healthz")
    assert (get.status_code, get.json()) == (200, {"status": "ok"})
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(get.content))
    # Not ready (the lifespan is off): 503 with Retry-After, still without a body.
    ready = http_server.head("/readyz")
    assert ready.status_code == 503 and ready.content == b""
    assert ready.headers["retry-after"] == "5"
    assert_error(http_server.get("/readyz"), 503, "not_ready")


# -- strict numbers and booleans, weights, limits ----------------------------------------


@pytest.mark.parametrize(
    ("extra", "path"),
    [
        ({"top_k": "5"}, "$.top_k"),
        ({"top_k": True}, "$.top_k"),
        ({"top_k": 5.0}, "$.top_k"),
        ({"top_k": 2.5}, "$.top_k"),
        ({"candidates": "50"}, "$.candidates"),
        ({"rerank_depth": False}, "$.rerank_depth"),
        ({"rerank": "yes"}, "$.rerank"),
        ({"rerank": 0}, "$.rerank"),
        ({"explain": 1}, "$.explain"),
        ({"include_text": "false"}, "$.include_text"),
        ({"rrf_k": "60"}, "$.rrf_k"),
        ({"rrf_k": True}, "$.rrf_k"),
        ({"weights": {"bm25": "1"}}, "$.weights.bm25"),
        ({"weights": {"dense": True}}, "$.weights.dense"),
    ],
)
def test_numbers_and_booleans_are_strict(
    search_client: TestClient, extra: dict[str, Any], path: str
) -> None:
    response = search_client.post("/v1/search", json={"query": "coffee", **extra})
    assert_error(response, 422, "validation_error", path)


def test_json_numbers_are_accepted(search_client: TestClient) -> None:
    body = {"query": "coffee grind size", "top_k": 2, "rrf_k": 60, "fusion": "rrf"}
    # Integers for float fields are numbers too.
    response = search_client.post("/v1/search", json={**body, "weights": {"bm25": 1, "dense": 2}})
    assert hit_ids(response)[0] == "espresso"
    assert len(hit_ids(response)) == 2
    assert response.json()["fusion_weights"] == {"bm25": 1.0, "dense": 2.0}


def test_weights_all_zero_are_refused(search_client: TestClient) -> None:
    for weights in ({"bm25": 0, "dense": 0}, {"bm25": 0.0, "dense": 0.0}):
        response = search_client.post("/v1/search", json={"query": "coffee", "weights": weights})
        error = assert_error(response, 422, "validation_error", "$.weights")
        assert error["message"] == "at least one weight must be positive"
    # One zero is fine: the other weight keeps its default, 1.
    one = search_client.post(
        "/v1/search", json={"query": "coffee grind size", "weights": {"bm25": 0}, "top_k": 1}
    )
    assert hit_ids(one) == ["espresso"]


@pytest.mark.parametrize(
    ("extra", "path", "message"),
    [
        # Above the hard maxima (1000, 10000) too, the message names the configured limit.
        ({"top_k": 1001}, "$.top_k", "top_k above 100 (api.max_top_k)"),
        ({"top_k": 10**30}, "$.top_k", "top_k above 100 (api.max_top_k)"),
        ({"top_k": 101}, "$.top_k", "top_k above 100 (api.max_top_k)"),
        ({"candidates": 10_001}, "$.candidates", "candidates above 1000 (api.max_candidates)"),
        ({"candidates": 1001}, "$.candidates", "candidates above 1000 (api.max_candidates)"),
        (
            {"rerank_depth": 20_000},
            "$.rerank_depth",
            "rerank_depth above 1000 (api.max_candidates)",
        ),
    ],
)
def test_limit_messages_name_the_limit_in_effect(
    search_client: TestClient, extra: dict[str, Any], path: str, message: str
) -> None:
    response = search_client.post("/v1/search", json={"query": "coffee", **extra})
    error = assert_error(response, 422, "limit_exceeded", path)
    assert error["message"] == message


def test_a_query_past_the_hard_maximum_names_the_configured_limit(
    search_client: TestClient,
) -> None:
    response = search_client.post("/v1/search", json={"query": "q" * 100_001})
    error = assert_error(response, 422, "limit_exceeded", "$.query")
    assert error["message"] == "query longer than 2048 characters (api.max_query_chars)"


def test_limits_at_the_configured_value_pass(search_client: TestClient) -> None:
    response = search_client.post(
        "/v1/search", json={"query": "coffee", "top_k": 100, "candidates": 1000}
    )
    assert response.status_code == 200, response.text


# -- the key schemes in OpenAPI -----------------------------------------------------------


def operations(schema: dict[str, Any]) -> dict[str, Any]:
    return {f"{m.upper()} {p}": op for p, ops in schema["paths"].items() for m, op in ops.items()}


def test_openapi_declares_the_key_schemes(settings_for: Callable[..., Settings]) -> None:
    client = unstarted(settings_for("edge-openapi", keys=[WRITE_KEY]))
    schema = client.get("/openapi.json").json()
    schemes = schema["components"]["securitySchemes"]
    assert {k: {f: v[f] for f in ("type", "scheme") if f in v} for k, v in schemes.items()} == {
        "bearer": {"type": "http", "scheme": "bearer"},
        "apiKey": {"type": "apiKey"},
    }
    assert (schemes["apiKey"]["in"], schemes["apiKey"]["name"]) == ("header", "X-API-Key")
    ops = operations(schema)
    write = [{"bearer": ["write"]}, {"apiKey": ["write"]}]
    # Write keys only: writes need one; reads are open (the empty requirement).
    for name in (
        "POST /v1/documents",
        "POST /v1/documents/delete",
        "DELETE /v1/documents/{doc_id}",
    ):
        assert ops[name]["security"] == write, name
    for name in ("POST /v1/search", "POST /v1/embed", "GET /v1/stats", "GET /v1/jobs"):
        assert ops[name]["security"] == [{"bearer": ["read"]}, {"apiKey": ["read"]}, {}], name
    for name in ("GET /healthz", "GET /readyz", "GET /metrics"):
        assert "security" not in ops[name], name
    # The declared header is the one enforced: past auth, an unstarted app answers 503.
    header = schemes["apiKey"]["name"]
    assert_error(client.post("/v1/documents", json=DOC), 401, "unauthorized")
    assert_error(
        client.post("/v1/documents", json=DOC, headers={header: WRITE_KEY}), 503, "not_ready"
    )
    bearer = {"Authorization": f"Bearer {WRITE_KEY}"}
    assert_error(client.post("/v1/documents", json=DOC, headers=bearer), 503, "not_ready")


def test_openapi_security_follows_the_configured_keys(
    settings_for: Callable[..., Settings],
) -> None:
    open_ops = operations(unstarted(settings_for("edge-open")).get("/openapi.json").json())
    assert open_ops["POST /v1/documents"]["security"][-1] == {}
    assert open_ops["POST /v1/search"]["security"][-1] == {}
    secured = unstarted(settings_for("edge-secured", keys=[WRITE_KEY], read_keys=[READ_KEY]))
    ops = operations(secured.get("/openapi.json").json())
    assert ops["POST /v1/search"]["security"] == [{"bearer": ["read"]}, {"apiKey": ["read"]}]
    assert {} not in ops["POST /v1/documents"]["security"]
    responses = ops["POST /v1/search"]["responses"]
    assert "415" in responses and "400" in responses


# -- braid serve on a busy port ----------------------------------------------------------


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_listen_problem(busy_port: int) -> None:
    assert listen_problem("127.0.0.1", busy_port) == (
        f"port {busy_port} on 127.0.0.1 is in use: stop what listens there or pick --port"
    )
    assert listen_problem("127.0.0.1", free_port()) is None


def test_serve_on_a_busy_port_exits_1(busy_port: int, tmp_path: Path) -> None:
    result = subprocess.run(
        [*braid_command(), "serve", "--port", str(busy_port), "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    stderr = " ".join(result.stderr.split())  # rich wraps lines
    assert f"port {busy_port} on 127.0.0.1 is in use" in stderr
    assert "Started server process" not in stderr  # refused before uvicorn
    assert not (tmp_path / "braid.owner.json").exists()


def test_uvicorns_own_startup_failure_exits_1() -> None:
    # The port can still be taken between the check and uvicorn's bind: uvicorn exits 3.
    with pytest.raises(typer.Exit) as raised, _uvicorn_exit():
        sys.exit(3)
    assert raised.value.exit_code == 1
    with _uvicorn_exit():
        pass  # a clean run passes through
