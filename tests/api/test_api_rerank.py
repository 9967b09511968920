"""The rerank stage through the API, with a real (untrained) MiniLM cross-encoder.

No trained cross-encoder ships with the tests, so the fixture saves MiniLM with a fresh,
seeded one-logit head: its scores mean nothing, but they are real CrossEncoder scores, so
the test can check the API against ``CrossEncoder.predict`` on the same pairs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import running_app
from model_helpers import cross_encoder_predict, save_seeded_cross_encoder
from starlette.testclient import TestClient

from braid.engine.config import Settings

QUERY = "ranking documents"
FILTER = {"source": "docs"}


@pytest.fixture(scope="module")
def cross_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_seeded_cross_encoder(tmp_path_factory.mktemp("cross-encoder"))


@pytest.fixture(scope="module")
def rerank_client(
    settings_for: Callable[..., Settings],
    cross_encoder_dir: Path,
    sample_docs: list[dict[str, object]],
) -> Iterator[TestClient]:
    settings = settings_for("rerank")
    reranker = settings.reranker.model_copy(
        update={"model": str(cross_encoder_dir), "device": "cpu", "depth": 5}
    )
    with running_app(settings.model_copy(update={"reranker": reranker})) as client:
        assert (
            client.post("/v1/documents?wait=true", json={"documents": sample_docs}).status_code
            == 200
        )
        yield client


def test_rerank_scores_are_the_cross_encoders(
    rerank_client: TestClient, cross_encoder_dir: Path, sample_docs: list[dict[str, object]]
) -> None:
    body = rerank_client.post(
        "/v1/search", json={"query": QUERY, "filter": FILTER, "top_k": 5, "explain": True}
    ).json()
    hits = body["hits"]
    assert body["reranker_model"] == str(cross_encoder_dir)
    assert "rerank" in body["timings_ms"]
    assert [h["stages"]["rerank"]["rank"] for h in hits] == [1, 2, 3, 4, 5]
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    by_id = {str(d["id"]): d for d in sample_docs}
    pairs = [(QUERY, f"{by_id[h['doc_id']]['title']}\n{by_id[h['doc_id']]['text']}") for h in hits]
    expected = cross_encoder_predict(cross_encoder_dir, pairs)
    assert scores == pytest.approx(expected, abs=1e-5)
    # The five 'docs' documents are all there, whatever order the untrained head gives.
    assert sorted(h["doc_id"] for h in hits) == [
        "bm25-intro",
        "dense-retrieval",
        "inverted-index",
        "rrf-fusion",
        "tokenization",
    ]


def test_rerank_off_and_depth(rerank_client: TestClient) -> None:
    off = rerank_client.post(
        "/v1/search", json={"query": QUERY, "filter": FILTER, "rerank": False, "explain": True}
    ).json()
    assert off["reranker_model"] is None
    assert all("rerank" not in h["stages"] for h in off["hits"])
    fused = [h["doc_id"] for h in off["hits"]]
    shallow = rerank_client.post(
        "/v1/search",
        json={"query": QUERY, "filter": FILTER, "rerank_depth": 2, "explain": True},
    ).json()["hits"]
    # Only the fused top 2 are reranked (in some order); the rest keep their fused order.
    assert sorted(h["doc_id"] for h in shallow[:2]) == sorted(fused[:2])
    assert [h["doc_id"] for h in shallow[2:]] == fused[2:]
    assert all("rerank" not in h["stages"] for h in shallow[2:])


def test_rerank_stage_in_metrics_and_stats(
    rerank_client: TestClient, cross_encoder_dir: Path
) -> None:
    rerank_client.post("/v1/search", json={"query": QUERY})
    metrics = rerank_client.get("/metrics").text
    count = next(
        line
        for line in metrics.splitlines()
        if line.startswith('braid_search_stage_duration_seconds_count{stage="rerank"}')
    )
    assert float(count.split()[-1]) >= 1
    assert rerank_client.get("/v1/stats").json()["reranker_model"] == str(cross_encoder_dir)
