"""``validate_metadata``: the value types every backend can filter on, and nothing else."""

from __future__ import annotations

import pytest

from braid.engine.errors import InvalidDocumentError
from braid.engine.metadata import MAX_LIST_VALUES, validate_metadata
from braid.engine.models import Chunk
from braid.engine.payload import chunk_from_payload, chunk_payload


def test_valid_metadata_is_copied_and_none_dropped() -> None:
    tags = ["a", "b"]
    raw = {"source": "docs", "year": 2019, "score": -0.5, "ok": True, "tags": tags, "gone": None}
    clean = validate_metadata(raw)
    assert clean == {"source": "docs", "year": 2019, "score": -0.5, "ok": True, "tags": ["a", "b"]}
    tags.append("c")
    assert clean["tags"] == ["a", "b"]


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ({"1year": 2019}, "1year"),
        ({"source-name": "docs"}, "source-name"),
        ({"a" * 65: 1}, "a" * 65),
        ({"year": float("nan")}, "year"),
        ({"year": float("inf")}, "year"),
        ({"tags": ["a", 1]}, "tags"),
        ({"tags": ["x"] * (MAX_LIST_VALUES + 1)}, "tags"),
        ({"nested": {"a": 1}}, "nested"),
        ({"pair": ("a", "b")}, "pair"),
    ],
)
def test_invalid_metadata_names_the_key(raw: dict[str, object], named: str) -> None:
    with pytest.raises(InvalidDocumentError) as caught:
        validate_metadata(raw)
    assert repr(named) in str(caught.value)


def test_payload_round_trip_and_model_fields() -> None:
    chunk = Chunk("doc", 2, "text", "Title", {"year": 2019}, "h", 5, 9)
    payload = chunk_payload(chunk)
    assert payload["chunk_id"] == "doc#2"
    assert "model_id" not in payload
    assert chunk_from_payload(payload) == chunk
