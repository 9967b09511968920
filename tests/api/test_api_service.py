"""Service endpoints and edges: health, readiness, metrics, stats, embed, OpenAPI, limits."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from api_helpers import assert_error
from starlette.testclient import TestClient

from braid.api.main import create_app
from braid.engine.config import Settings
from braid.engine.errors import IndexLockedError
from braid.engine.locking import DataDirLock


def test_healthz_and_readyz(search_client: TestClient) -> None:
    assert search_client.get("/healthz").json() == {"status": "ok"}
    assert search_client.get("/readyz").json() == {"ready": True, "status": "ready", "error": None}


def test_not_ready_answers_503_with_retry_after(settings_for: Callable[..., Settings]) -> None:
    client = TestClient(create_app(settings_for("never-started")))  # lifespan not run
    assert client.get("/healthz").status_code == 200
    response = client.get("/readyz")
    assert_error(response, 503, "not_ready")
    assert response.headers["retry-after"] == "5"
    for method, url, body in (
        ("POST", "/v1/search", {"query": "x"}),
        ("POST", "/v1/documents", {"documents": [{"id": "a", "text": "b"}]}),
        ("GET", "/v1/stats", None),
        ("GET", "/v1/jobs/abc", None),
    ):
        assert_error(client.request(method, url, json=body), 503, "not_ready")


def test_model_mismatch_is_409(settings_for: Callable[..., Settings]) -> None:
    settings = settings_for("mismatch")
    settings.dense_dir.mkdir(parents=True)
    (settings.dense_dir / "braid-model.json").write_text(
        json.dumps({"model_id": "other/model", "model_version": "0123456789ab", "dim": 384})
    )
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert not app.state.runtime.wait_ready(60)
        ready = client.get("/readyz")
        assert_error(ready, 503, "not_ready")
        assert "other/model" in ready.json()["error"]["message"]
        error = assert_error(client.post("/v1/search", json={"query": "x"}), 409, "model_mismatch")
        assert "re-index" in error["message"]
    assert not (settings.data_dir / "braid.owner.json").exists()  # the lock was released


def test_locked_data_dir_fails_the_start(settings_for: Callable[..., Settings]) -> None:
    settings = settings_for("locked")
    with DataDirLock(settings.data_dir, role="braid ingest"):
        app = create_app(settings)
        with pytest.raises(IndexLockedError, match="braid ingest"), TestClient(app):
            pass


def test_metrics_histograms(search_client: TestClient) -> None:
    search_client.post("/v1/search", json={"query": "coffee"})
    search_client.post("/v1/search", json={"query": "x", "top_k": 0})
    text = search_client.get("/metrics").text
    assert "# TYPE braid_http_request_duration_seconds histogram" in text
    assert (
        'braid_http_request_duration_seconds_bucket{endpoint="/v1/search",le="0.005",method="POST"}'
        in text
    )
    assert "# TYPE braid_search_stage_duration_seconds histogram" in text
    for stage in ("embed", "dense", "sparse", "fuse", "fetch", "total"):
        assert f'braid_search_stage_duration_seconds_count{{stage="{stage}"}}' in text
    assert 'braid_http_requests_total{endpoint="/v1/search",method="POST",status="422"}' in text
    assert 'braid_http_errors_total{code="validation_error",status="422"}' in text
    assert "braid_queue_depth 0.0" in text
    assert "braid_ready 1.0" in text
    assert 'braid_jobs_finished_total{kind="upsert",state="done"}' in text


def test_stats(search_client: TestClient) -> None:
    stats = search_client.get("/v1/stats").json()
    assert stats["dense"] == {"backend": "qdrant-edge", "chunks": 12}
    assert stats["sparse"] == {"backend": "tantivy", "chunks": 12}
    assert stats["ledger"]["documents"] == 12 and stats["ledger"]["pending_documents"] == 0
    assert stats["embedding_model"]["dim"] == 384
    # The sample's metadata keys (tests/data/sample.jsonl), what facets can name.
    assert stats["metadata_fields"] == ["published", "reviewed", "source", "tags", "year"]
    assert stats["consistent"] is True


def test_embed_matches_the_index_model(search_client: TestClient) -> None:
    body = search_client.post(
        "/v1/embed",
        json={"texts": ["sourdough bread", "ein Satz", "word " * 400], "kind": "passage"},
    ).json()
    vectors = np.array(body["embeddings"])
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert body["truncated"] == [False, False, True]
    assert body["tokens"][0] < body["tokens"][2]
    assert body["max_seq_length"] == 256
    query = search_client.post("/v1/embed", json={"texts": ["sourdough bread"]}).json()
    # The query vector is closest to its own passage vector among the three.
    scores = vectors @ np.array(query["embeddings"][0])
    assert int(np.argmax(scores)) == 0


@pytest.mark.parametrize(
    ("body", "code", "path"),
    [
        ({"texts": []}, "validation_error", "$.texts"),
        ({"texts": ["a"] * 257}, "limit_exceeded", "$.texts"),
        ({"texts": ["ok", "q" * 2049]}, "limit_exceeded", "$.texts[1]"),
        ({"texts": ["a"], "kind": "document"}, "validation_error", "$.kind"),
        ({"texts": [1]}, "validation_error", "$.texts[0]"),
    ],
)
def test_embed_limits(search_client: TestClient, body: object, code: str, path: str) -> None:
    assert_error(search_client.post("/v1/embed", json=body), 422, code, path)


def test_openapi_states_the_configured_limits(search_client: TestClient) -> None:
    schema = search_client.get("/openapi.json").json()
    components = schema["components"]["schemas"]
    search = components["SearchRequest"]["properties"]
    assert search["query"]["maxLength"] == 2048
    assert search["top_k"]["maximum"] == 100
    assert components["EmbedRequest"]["properties"]["texts"]["maxItems"] == 256
    assert components["DocumentsIn"]["properties"]["documents"]["maxItems"] == 1000
    assert components["SearchRequest"]["examples"]
    paths = schema["paths"]
    assert {"/v1/search", "/v1/documents", "/v1/jobs/{job_id}", "/v1/embed", "/v1/stats"} <= set(
        paths
    )
    assert "422" in paths["/v1/search"]["post"]["responses"]
    assert paths["/v1/documents"]["post"]["responses"]["503"]["content"]["application/json"]


@pytest.fixture(scope="module")
def small_body_client(settings_for: Callable[..., Settings]) -> Iterator[TestClient]:
    settings = settings_for("small-body", max_body_bytes=1024, cors_origins=["http://example.test"])
    yield TestClient(create_app(settings), raise_server_exceptions=False)


def test_body_size_limit(small_body_client: TestClient) -> None:
    big = {"query": "x" * 2000}
    response = small_body_client.post("/v1/search", json=big)
    assert_error(response, 413, "payload_too_large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while it streams
        yield b'{"query": "'
        for _ in range(20):
            yield b"x" * 100
        yield b'"}'

    streamed = small_body_client.post(
        "/v1/search", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_error(streamed, 413, "payload_too_large")


def test_cors(small_body_client: TestClient) -> None:
    preflight = small_body_client.options(
        "/v1/search",
        headers={
            "Origin": "http://example.test",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-api-key,content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "http://example.test"
    other = small_body_client.get("/healthz", headers={"Origin": "http://evil.test"})
    assert "access-control-allow-origin" not in other.headers


def test_search_page(search_client: TestClient) -> None:
    page = search_client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="query"' in page.text and 'id="mode"' in page.text and 'id="filter"' in page.text
    assert search_client.get("/static/app.js").status_code == 200
