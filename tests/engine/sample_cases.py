"""Expectations on the sample corpus (tests/data/sample.jsonl) shared by the contract tests."""

from __future__ import annotations

from typing import Any

# Filter -> the sample documents it keeps (checked by hand against tests/data/sample.jsonl).
FILTER_CASES: list[tuple[dict[str, Any], set[str] | None]] = [
    ({"source": "kitchen"}, {"sourdough", "espresso"}),
    (
        {"source": {"$in": ["blog", "science"]}, "reviewed": True},
        {"cross-encoder", "saturn-rings", "photosynthesis"},
    ),
    ({"year": {"$gte": 2022}}, {"dense-retrieval", "cross-encoder", "espresso", "tokenization"}),
    ({"year": 2020.0}, {"hnsw-index", "sourdough"}),
    ({"published": {"$lt": "2018-01-01"}}, {"saturn-rings", "photosynthesis"}),
    (
        {"published": {"$gte": "2021-06-01T00:00:00Z", "$lte": "2022-01-20"}},
        {"rrf-fusion", "dense-retrieval"},
    ),
    ({"tags": "semantic", "reviewed": True}, {"cross-encoder", "tokenization"}),
    (
        {"tags": {"$nin": ["ranking", "semantic", "vectors", "lexical"]}},
        {"sourdough", "espresso", "saturn-rings", "exoplanet-transit", "photosynthesis"},
    ),
    (
        {"$not": {"reviewed": True}},
        {"dense-retrieval", "hnsw-index", "espresso", "exoplanet-transit"},
    ),
    (
        {"$or": [{"tags": "astronomy"}, {"year": {"$lt": 2017}}]},
        {"saturn-rings", "exoplanet-transit", "photosynthesis"},
    ),
    ({"source": "nowhere"}, set()),
    ({"missing_field": {"$ne": "x"}}, None),  # None: every document
]
