"""The search route's hand-built JSON is the declared ``SearchResponseOut``, key for key.

The route writes its body from dicts (``api/search_json.py``) instead of building the
pydantic models; the models stay the documented schema. Each case renders one engine
response both ways and compares the parsed documents, key order included.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from braid.api.schemas import SearchResponseOut
from braid.api.search_json import search_response_json
from braid.engine.models import (
    Chunk,
    DocumentHit,
    FacetValue,
    Hit,
    ModelInfo,
    SearchResponse,
    StageScore,
)
from braid.engine.searcher import HybridSearcher

SHAPES: list[dict[str, Any]] = [
    {"mode": "hybrid", "group_by": "document", "highlight": True},
    {"mode": "hybrid", "group_by": "chunk", "highlight": True, "facets": ["source", "year"]},
    {"mode": "bm25", "group_by": "document", "passages": 1, "highlight": False},
    {"mode": "dense", "group_by": "chunk", "offset": 3, "top_k": 4},
    {"mode": "hybrid", "group_by": "document", "min_score": 0.2, "fusion": "convex"},
    {"mode": "hybrid", "group_by": "chunk", "fusion": "rrf", "facets": ["tags"]},
]


def both(response: SearchResponse, include_text: bool, explain: bool) -> tuple[Any, Any]:
    fast = json.loads(search_response_json(response, include_text, explain))
    declared = json.loads(
        SearchResponseOut.from_engine(response, include_text, explain).model_dump_json()
    )
    return fast, declared


def keys_in_order(value: Any) -> Any:
    """The document with every object's keys listed in order, so order differences fail."""
    if isinstance(value, dict):
        return [[k, keys_in_order(v)] for k, v in value.items()]
    if isinstance(value, list):
        return [keys_in_order(v) for v in value]
    return value


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "-".join(str(v) for v in s.values()))
@pytest.mark.parametrize(("include_text", "explain"), [(True, False), (False, True)])
def test_real_responses_render_as_the_declared_model(
    search_client: TestClient, shape: dict[str, Any], include_text: bool, explain: bool
) -> None:
    searcher: HybridSearcher = search_client.app.state.runtime.searcher  # type: ignore[attr-defined]
    response = searcher.search("how are rankings merged by fusion", **shape)
    assert response.hits, shape  # a case that renders nothing checks nothing
    fast, declared = both(response, include_text, explain)
    assert keys_in_order(fast) == keys_in_order(declared)


def test_edge_values_render_as_the_declared_model() -> None:
    chunk = Chunk(
        "d1", 0, "Fusion <b>&</b> ranking", title="T", metadata={"n": 3, "ok": True, "t": ["a"]}
    )
    best = Hit(
        "p1",
        np.float32(0.75),  # type: ignore[arg-type]  # a reranker may hand back numpy scores
        {"bm25": StageScore(1, 2.5), "rerank": StageScore(1, np.float32(0.75))},  # type: ignore[arg-type]
        chunk,
        [(0, 6), (16, 23)],
    )
    orphan = Hit("p2", 0.5, {"dense": StageScore(2, 0.5)})  # its chunk vanished mid-update
    response = SearchResponse(
        hits=[best, orphan],
        timings_ms={"embed": 1.23456, "total": 2.0},
        mode="hybrid",
        embedding_model=ModelInfo("m", "abc", 384),
        reranker_model="r",
        documents=[DocumentHit("d1", 0.75, 1, [best]), DocumentHit("", 0.5, 2, [orphan])],
        fusion_weights={"bm25": 0.123456789, "dense": 0.876543211},
        offset=0,
        next_cursor="c",
        facets={"ok": [FacetValue(True, 2), FacetValue(1, 1)], "f": [FacetValue(0.5, 1)]},
    )
    for include_text, explain in [(True, True), (False, False)]:
        fast, declared = both(response, include_text, explain)
        assert keys_in_order(fast) == keys_in_order(declared)
    fast, _ = both(response, True, True)
    assert fast["documents"][0]["passages"][0]["snippet"] == (
        "<mark>Fusion</mark> &lt;b&gt;&amp;&lt;/b&gt; <mark>ranking</mark>"
    )
    assert [v["value"] for v in fast["facets"]["ok"]] == [True, 1]  # True stays a boolean
