"""Results applications use: documents, pages, highlights, facets and thresholds.

On ``tests/data/results.jsonl``: 6 documents cut into 14 chunks of at most 32 tokens, so
that documents have several chunks. Expected ids, chunk ids and counts are by hand.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from api_helpers import assert_error, wait_job
from conftest import running_app
from starlette.testclient import TestClient

from braid.engine.config import ChunkingSettings, Settings

CORPUS = Path(__file__).parent.parent / "data" / "results.jsonl"
DOCS: list[dict[str, Any]] = [json.loads(line) for line in CORPUS.read_text().splitlines()]


@pytest.fixture(scope="module")
def client(settings_for: Callable[..., Settings]) -> Iterator[TestClient]:
    settings = settings_for("results")
    settings = settings.model_copy(
        update={"chunking": ChunkingSettings(max_tokens=32, overlap_tokens=0)}
    )
    with running_app(settings) as app_client:
        response = app_client.post("/v1/documents", json={"documents": DOCS})
        job = wait_job(app_client, response.json()["job_id"])
        assert job["result"]["chunks"] == 14, job
        yield app_client


def search(client: TestClient, **body: Any) -> Any:
    response = client.post("/v1/search", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def doc_ids(result: dict[str, Any]) -> list[str]:
    return [d["doc_id"] for d in result["documents"]]


# -- documents --------------------------------------------------------------------------


def test_documents_by_default_with_their_passages(client: TestClient) -> None:
    result = search(client, query="ranking", mode="bm25", top_k=10, explain=True)
    # BM25 chunk order: fusion-guide#0, escaping#1, bm25-notes#0, fusion-guide#1.
    assert doc_ids(result) == ["fusion-guide", "escaping", "bm25-notes"]
    first = result["documents"][0]
    assert [p["chunk_id"] for p in first["passages"]] == ["fusion-guide#0", "fusion-guide#1"]
    assert (
        first["score"]
        == first["passages"][0]["score"]
        == first["passages"][0]["stages"]["bm25"]["score"]
    )
    assert [p["stages"]["bm25"]["rank"] for p in first["passages"]] == [1, 4]
    assert first["title"] == "Fusion guide"
    assert first["metadata"]["source"] == "docs"
    assert [d["rank"] for d in result["documents"]] == [1, 2, 3]
    # hits: each document's best passage, for clients that read hits.
    assert [h["chunk_id"] for h in result["hits"]] == [
        "fusion-guide#0",
        "escaping#1",
        "bm25-notes#0",
    ]


def test_passages_limit_and_chunk_grouping(client: TestClient) -> None:
    one = search(client, query="ranking", mode="bm25", passages=1)
    assert [len(d["passages"]) for d in one["documents"]] == [1, 1, 1]
    chunks = search(client, query="ranking", mode="bm25", group_by="chunk")
    assert chunks["documents"] is None
    assert [h["chunk_id"] for h in chunks["hits"]] == [
        "fusion-guide#0",
        "escaping#1",
        "bm25-notes#0",
        "fusion-guide#1",
    ]


# -- highlights -------------------------------------------------------------------------


def test_highlights_mark_the_bm25_terms(client: TestClient) -> None:
    result = search(client, query="the ranking of fusion", mode="bm25")
    passages = {p["chunk_id"]: p for d in result["documents"] for p in d["passages"]}
    first = passages["fusion-guide#0"]
    text = first["text"]
    assert [text[s:e] for s, e in first["highlights"]] == ["rank", "fusion", "rankings"]
    assert first["snippet"] == (
        "Reciprocal <mark>rank</mark> <mark>fusion</mark> merges <mark>rankings</mark> "
        "from several retrievers without any score calibration at all."
    )
    # Markup in a passage is escaped; only the marks are tags.
    escaping = passages["escaping#1"]
    assert escaping["snippet"] == "ampersands; the <mark>ranking</mark> snippet must escape it."


def test_markup_is_escaped_and_dense_hits_have_no_marks(client: TestClient) -> None:
    result = search(client, query="markup bold ampersands", mode="dense", top_k=6)
    passages = [p for d in result["documents"] for p in d["passages"]]
    assert all(p["highlights"] == [] for p in passages)
    escaping = next(p for p in passages if p["chunk_id"] == "escaping#0")
    assert escaping["snippet"] == (
        "A passage may hold markup such as &lt;b&gt;bold&lt;/b&gt; &amp;"
    )
    off = search(client, query="ranking", mode="bm25", highlight=False)
    assert off["documents"][0]["passages"][0]["highlights"] is None


# -- facets -----------------------------------------------------------------------------


def brute_force(field: str, keep: Callable[[dict[str, Any]], bool]) -> Counter[Any]:
    counts: Counter[Any] = Counter()
    for doc in DOCS:
        if keep(doc) and field in doc:
            value = doc[field]
            counts.update(value if isinstance(value, list) else [value])
    return counts


def test_facets_count_the_candidate_documents(client: TestClient) -> None:
    fields = ["source", "tags", "year", "reviewed"]
    # Hybrid with candidates above the 14 chunks: dense finds every chunk, so the
    # candidate documents are the whole (filtered) corpus: a brute-force count over it.
    for filter_, keep in [
        (None, lambda d: True),
        ({"source": "blog"}, lambda d: d["source"] == "blog"),
        ({"year": {"$gte": 2020}}, lambda d: d["year"] >= 2020),
    ]:
        result = search(client, query="ranking fusion", facets=fields, filter=filter_, top_k=2)
        assert len(result["documents"]) == 2  # facets do not depend on the page
        for field in fields:
            got = {(type(v["value"]), v["value"]): v["count"] for v in result["facets"][field]}
            want = {(type(k), k): n for k, n in brute_force(field, keep).items()}
            assert got == want, (field, filter_)
    # BM25: only the documents with a query term are candidates.
    result = search(client, query="ranking", mode="bm25", facets=["source"])
    assert result["facets"]["source"] == [
        {"value": "docs", "count": 2},
        {"value": "blog", "count": 1},
    ]


def test_bad_facets_answer_422(client: TestClient) -> None:
    response = client.post("/v1/search", json={"query": "x", "facets": ["colour"]})
    assert_error(response, 422, "invalid_request", path="$.facets")
    assert "colour" in response.json()["error"]["message"]
    assert "reviewed, source, tags, year" in response.json()["error"]["message"]
    response = client.post("/v1/search", json={"query": "x", "facets": ["a.b"]})
    assert_error(response, 422, "invalid_request", path="$.facets")
    response = client.post("/v1/search", json={"query": "x", "facets": ["f"] * 11})
    assert response.status_code == 422


# -- paging -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "group_by"), [("hybrid", "document"), ("hybrid", "chunk"), ("bm25", "document")]
)
def test_pages_add_up_to_one_deep_request(client: TestClient, mode: str, group_by: str) -> None:
    key = "documents" if group_by == "document" else "hits"
    ident = "doc_id" if group_by == "document" else "chunk_id"
    body = {"query": "ranking fusion of lists", "mode": mode, "group_by": group_by}
    deep = search(client, **body, top_k=50)
    assert deep["next_cursor"] is None
    expected = [(r[ident], r["score"]) for r in deep[key]]
    assert len(expected) >= 3
    pages: list[tuple[str, float]] = []
    cursor = None
    for _ in range(20):
        page = search(client, **body, top_k=2, **({"cursor": cursor} if cursor else {}))
        assert page["offset"] == len(pages)
        pages += [(r[ident], r["score"]) for r in page[key]]
        assert [r["rank"] for r in page[key]] == list(
            range(len(pages) - len(page[key]) + 1, len(pages) + 1)
        )
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == expected
    # The same by offset.
    by_offset = [
        (r[ident], r["score"])
        for offset in range(0, len(expected), 2)
        for r in search(client, **body, top_k=2, offset=offset)[key]
    ]
    assert by_offset == expected


def test_depth_bounds_the_pages(client: TestClient) -> None:
    body = {"query": "ranking fusion", "mode": "hybrid", "group_by": "chunk", "candidates": 5}
    first = search(client, **body, top_k=3)
    second = search(client, **body, top_k=3, cursor=first["next_cursor"])
    assert len(second["hits"]) == 2 and second["next_cursor"] is None  # cut at 5
    response = client.post("/v1/search", json={**body, "offset": 5})
    assert_error(response, 400, "past_candidate_depth", path="$.offset")
    assert "candidate depth (5)" in response.json()["error"]["message"]


def test_bad_cursors_and_offsets(client: TestClient) -> None:
    first = search(client, query="ranking fusion", top_k=2)
    cursor = first["next_cursor"]
    assert cursor
    for body in (
        {"query": "another query", "cursor": cursor},
        {"query": "ranking fusion", "mode": "bm25", "cursor": cursor},
        {"query": "ranking fusion", "filter": {"source": "docs"}, "cursor": cursor},
        {"query": "ranking fusion", "cursor": "garbage!"},
        {"query": "ranking fusion", "cursor": cursor, "offset": 2},
    ):
        assert_error(client.post("/v1/search", json=body), 400, "invalid_cursor", path="$.cursor")
    # The page size may change between pages.
    assert search(client, query="ranking fusion", top_k=1, cursor=cursor)["offset"] == 2
    for offset in (-1, 10**9, "2", 1.5):
        response = client.post("/v1/search", json={"query": "x", "offset": offset})
        assert response.status_code == 422, (offset, response.text)


# -- thresholds -------------------------------------------------------------------------


def test_min_score_cuts_on_the_fused_score(client: TestClient) -> None:
    deep = search(client, query="ranking fusion", top_k=10)
    scores = [d["score"] for d in deep["documents"]]
    assert all(0.0 <= s <= 1.0 for s in scores)
    threshold = (scores[1] + scores[2]) / 2
    cut = search(client, query="ranking fusion", top_k=10, min_score=threshold)
    assert doc_ids(cut) == doc_ids(deep)[:2]
    # Passages below the threshold go too: every returned chunk has a fused score above it.
    fused = search(client, query="ranking fusion", top_k=10, min_score=threshold, explain=True)
    passages = [p for d in fused["documents"] for p in d["passages"]]
    assert all(p["stages"]["adaptive"]["score"] >= threshold for p in passages)
    assert passages and len(passages) < 14


@pytest.mark.parametrize(
    "body",
    [
        {"min_score": 1.5},
        {"min_score": -0.1},
        {"min_score": 0.5, "mode": "bm25"},
        {"min_score": 0.5, "fusion": "rrf"},
        {"min_score": "0.5"},
    ],
)
def test_bad_min_score_answers_422(client: TestClient, body: dict[str, Any]) -> None:
    response = client.post("/v1/search", json={"query": "ranking", **body})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["path"] == "$.min_score"


# -- last: it writes ------------------------------------------------------------------------


def test_a_cursor_after_a_write_answers_409(client: TestClient) -> None:
    first = search(client, query="ranking fusion", top_k=2)
    doc = {"id": "late", "title": "Late", "text": "A late document about ranking.", "source": "x"}
    job = client.post("/v1/documents", json={"documents": [doc]}).json()
    assert wait_job(client, job["job_id"])["state"] == "done"
    response = client.post(
        "/v1/search", json={"query": "ranking fusion", "cursor": first["next_cursor"]}
    )
    assert_error(response, 409, "index_changed", path="$.cursor")
