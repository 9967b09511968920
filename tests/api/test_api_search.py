"""POST /v1/search on the 12-document sample corpus: exact ids, hand-computed RRF, limits."""

from __future__ import annotations

from typing import Any

import pytest
from api_helpers import assert_error, hit_ids
from starlette.testclient import TestClient

from braid.engine.fusion import RRF_K

FUSION_QUERY = "how does reciprocal rank fusion combine rankings"


def search(client: TestClient, **body: Any) -> Any:
    return client.post("/v1/search", json=body)


@pytest.mark.parametrize(
    ("mode", "query", "filter", "expected"),
    [
        # BM25 returns only documents sharing a term with the query.
        ("bm25", FUSION_QUERY, None, ["rrf-fusion", "bm25-intro"]),
        ("bm25", "sourdough starter yeast", None, ["sourdough"]),
        ("bm25", "planets orbiting other stars", None, ["exoplanet-transit", "saturn-rings"]),
        ("bm25", "light", {"reviewed": True}, ["photosynthesis"]),
        ("bm25", "ranking", {"year": {"$gte": 2022}}, []),
        (
            "bm25",
            "search",
            {"tags": {"$in": ["vectors", "index"]}},
            ["hnsw-index", "inverted-index"],
        ),
        ("bm25", "vector search neighbours", {"$not": {"source": "docs"}}, ["hnsw-index"]),
        # Dense returns every document that passes the filter, nearest first.
        ("dense", "sourdough starter yeast", {"source": "kitchen"}, ["sourdough", "espresso"]),
        (
            "dense",
            "search",
            {"tags": {"$in": ["vectors", "index"]}},
            ["dense-retrieval", "inverted-index", "hnsw-index"],
        ),
        (
            "dense",
            "ranking",
            {"year": {"$gte": 2022}},
            ["cross-encoder", "dense-retrieval", "espresso", "tokenization"],
        ),
        (
            "hybrid",
            "ranking documents",
            {"source": "docs"},
            ["rrf-fusion", "bm25-intro", "inverted-index", "tokenization", "dense-retrieval"],
        ),
        (
            "dense",
            "search",
            {
                "$and": [
                    {"tags": {"$in": ["vectors", "index"]}},
                    {"published": {"$lt": "2021-01-01"}},
                ]
            },
            ["inverted-index", "hnsw-index"],
        ),
    ],
)
def test_modes_and_filters_return_exact_ids(
    search_client: TestClient, mode: str, query: str, filter: Any, expected: list[str]
) -> None:
    # Hybrid's expected ids are RRF's (k=60), hand-checked; the adaptive default has its own.
    fusion = {"fusion": "rrf"} if mode == "hybrid" else {}
    response = search(search_client, query=query, mode=mode, filter=filter, top_k=5, **fusion)
    assert hit_ids(response) == expected
    assert response.json()["mode"] == mode


def test_top_hit_in_every_mode(search_client: TestClient) -> None:
    for mode in ("bm25", "dense", "hybrid"):
        response = search(search_client, query="planets orbiting other stars", mode=mode, top_k=1)
        assert hit_ids(response) == ["exoplanet-transit"]


@pytest.mark.parametrize("query", [FUSION_QUERY, "coffee grind size", "planets orbiting stars"])
def test_adaptive_default_by_hand(search_client: TestClient, query: str) -> None:
    # Every candidate comes back (12 documents, top_k 100), so each leg's min and max are
    # in the response: min-max by hand, weighted by the fusion_weights the API reports.
    body = search(search_client, query=query, top_k=100, explain=True).json()
    weights = body["fusion_weights"]
    assert weights["bm25"] + weights["dense"] == pytest.approx(1.0)
    legs: dict[str, dict[str, float]] = {"bm25": {}, "dense": {}}
    for hit in body["hits"]:
        for leg in legs:
            if leg in hit["stages"]:
                legs[leg][hit["chunk_id"]] = hit["stages"][leg]["score"]
    expected = {}
    for hit in body["hits"]:
        total = 0.0
        for leg, scores in legs.items():
            low, high = min(scores.values()), max(scores.values())
            if hit["chunk_id"] in scores:
                value = 1.0 if high == low else (scores[hit["chunk_id"]] - low) / (high - low)
                total += weights[leg] * value
        expected[hit["chunk_id"]] = total
    assert {h["chunk_id"]: h["score"] for h in body["hits"]} == pytest.approx(expected, abs=1e-5)
    assert [h["score"] for h in body["hits"]] == pytest.approx(
        sorted(expected.values(), reverse=True), abs=1e-5
    )
    assert all(h["stages"]["adaptive"]["rank"] == h["rank"] for h in body["hits"])


def test_hybrid_rrf_score_and_explain_by_hand(search_client: TestClient) -> None:
    response = search(search_client, query=FUSION_QUERY, top_k=3, explain=True, fusion="rrf")
    hits = response.json()["hits"]
    first = hits[0]
    assert first["doc_id"] == "rrf-fusion"
    assert first["rank"] == 1
    # First in both retrievers, weights 1: 1/(60+1) + 1/(60+1), ranks 1-based.
    assert first["score"] == pytest.approx(2 / (RRF_K + 1))
    assert first["stages"]["bm25"]["rank"] == 1
    assert first["stages"]["dense"]["rank"] == 1
    assert first["stages"]["rrf"] == {"rank": 1, "score": pytest.approx(2 / (RRF_K + 1))}
    second = hits[1]
    assert second["doc_id"] == "bm25-intro"
    bm25_rank = second["stages"]["bm25"]["rank"]
    dense_rank = second["stages"]["dense"]["rank"]
    assert bm25_rank == 2
    assert second["score"] == pytest.approx(1 / (RRF_K + bm25_rank) + 1 / (RRF_K + dense_rank))


def test_weights_and_rrf_k(search_client: TestClient) -> None:
    response = search(
        search_client,
        query=FUSION_QUERY,
        top_k=2,
        explain=True,
        weights={"bm25": 2.0, "dense": 0.5},
        rrf_k=10,
        fusion="rrf",
    )
    first = response.json()["hits"][0]
    assert first["doc_id"] == "rrf-fusion"
    assert first["score"] == pytest.approx(2.0 / 11 + 0.5 / 11)
    # A zero weight drops the dense list: the fused order is BM25's.
    dense_off = search(
        search_client, query=FUSION_QUERY, weights={"bm25": 1, "dense": 0}, fusion="rrf"
    )
    assert hit_ids(dense_off)[:2] == ["rrf-fusion", "bm25-intro"]


def test_response_fields_text_metadata_timings_model(search_client: TestClient) -> None:
    body = search(search_client, query="coffee grind size", mode="hybrid", top_k=1).json()
    hit = body["hits"][0]
    assert hit["doc_id"] == "espresso"
    assert hit["chunk_id"] == "espresso#0"
    assert hit["title"] == "Espresso extraction"
    assert hit["text"].startswith("Espresso forces hot water")
    assert hit["metadata"] == {
        "source": "kitchen",
        "year": 2022,
        "tags": ["coffee"],
        "published": "2022-08-19",
        "reviewed": False,
    }
    assert hit["stages"] is None  # explain is off by default
    assert {"embed", "dense", "sparse", "fuse", "fetch", "total"} <= set(body["timings_ms"])
    assert body["embedding_model"]["id"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert body["embedding_model"]["dim"] == 384
    assert len(body["embedding_model"]["version"]) == 12
    assert body["reranker_model"] is None


def test_include_text_false(search_client: TestClient) -> None:
    body = search(search_client, query="coffee", include_text=False, top_k=1).json()
    assert body["hits"][0]["text"] is None
    assert body["hits"][0]["title"] == "Espresso extraction"


def test_bm25_mode_has_no_embed_stage(search_client: TestClient) -> None:
    body = search(search_client, query="coffee", mode="bm25").json()
    assert "embed" not in body["timings_ms"] and "sparse" in body["timings_ms"]


@pytest.mark.parametrize(
    ("body", "status", "code", "path"),
    [
        (
            {"query": "x", "filter": {"year": {"$gte": "soon"}}},
            422,
            "invalid_filter",
            "$.filter.year.$gte",
        ),
        (
            {"query": "x", "filter": {"$or": [{"a": 1}, {"$bogus": 1}]}},
            422,
            "invalid_filter",
            "$.filter.$or[1].$bogus",
        ),
        (
            {"query": "x", "filter": {"tags": {"$in": []}}},
            422,
            "invalid_filter",
            "$.filter.tags.$in",
        ),
        ({"query": "x", "top_k": 101}, 422, "limit_exceeded", "$.top_k"),
        ({"query": "x", "top_k": 0}, 422, "validation_error", "$.top_k"),
        ({"query": "x", "candidates": 1001}, 422, "limit_exceeded", "$.candidates"),
        ({"query": "q" * 2049}, 422, "limit_exceeded", "$.query"),
        ({"query": "   "}, 422, "invalid_input", "$.query"),
        ({"query": ""}, 422, "validation_error", "$.query"),
        ({"top_k": 3}, 422, "validation_error", "$.query"),
        ({"query": "x", "mode": "fuzzy"}, 422, "validation_error", "$.mode"),
        ({"query": "x", "weights": {"bm25": -1}}, 422, "validation_error", "$.weights.bm25"),
        ({"query": "x", "weights": {"colbert": 1}}, 422, "validation_error", "$.weights.colbert"),
        ({"query": "x", "surprise": True}, 422, "validation_error", "$.surprise"),
        # No cross-encoder is configured in the tests: asking for one is a client error.
        ({"query": "x", "rerank": True}, 422, "invalid_request", None),
    ],
)
def test_bad_requests_answer_4xx_in_one_shape(
    search_client: TestClient, body: dict[str, Any], status: int, code: str, path: str | None
) -> None:
    assert_error(search_client.post("/v1/search", json=body), status, code, path)


def test_filter_too_deep(search_client: TestClient) -> None:
    deep: dict[str, Any] = {"source": "docs"}
    for _ in range(12):
        deep = {"$not": deep}
    error = assert_error(search(search_client, query="x", filter=deep), 422, "invalid_filter")
    assert error["path"].startswith("$.filter.$not")


def test_malformed_json_is_400(search_client: TestClient) -> None:
    response = search_client.post(
        "/v1/search", content=b'{"query": ', headers={"content-type": "application/json"}
    )
    assert_error(response, 400, "malformed_json")


def test_wrong_method_and_unknown_route(search_client: TestClient) -> None:
    assert_error(search_client.get("/v1/search"), 405, "method_not_allowed")
    assert_error(search_client.get("/v1/nothing-here"), 404, "not_found")
