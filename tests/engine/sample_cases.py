"""Expectations on the sample corpus (tests/data/sample.jsonl) shared by the contract tests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from braid.engine.models import Chunk

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

# A chunk with every field set and every metadata type, including values that JSON or a
# backend could quietly change (a float equal to an int, -7, False, an empty list and string).
ODD_CHUNK = Chunk(
    doc_id="odd",
    chunk_index=3,
    text="text with ünïcode and\nnewlines",
    title="",
    metadata={
        "f": 2.0,
        "g": 2.5,
        "i": -7,
        "b": False,
        "l": [],
        "s": "",
        "d": "2020-01-01T00:00:00Z",
    },
    content_hash="sha256:abc",
    start=10,
    end=42,
)


def typed(metadata: Mapping[str, object]) -> dict[str, tuple[str, object]]:
    """Metadata with each value's type, so that 2 and 2.0 (or 0 and False) differ."""
    return {key: (type(value).__name__, value) for key, value in metadata.items()}
