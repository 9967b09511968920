"""Cursors and facet counts, by hand."""

from __future__ import annotations

import base64
import re

import pytest

from braid.engine.errors import InvalidRequestError
from braid.engine.facets import check_facet_fields, count_facets
from braid.engine.models import Chunk, FacetValue
from braid.engine.paging import Cursor, CursorError, fingerprint


def test_cursor_round_trips_and_is_url_safe() -> None:
    cursor = Cursor(offset=20, depth=100, fingerprint="ab" * 8, index_version="7")
    text = cursor.encode()
    assert set(text) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert Cursor.decode(text) == cursor


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not a cursor",
        base64.urlsafe_b64encode(b"[1, 2]").decode(),
        base64.urlsafe_b64encode(b'{"v": 1, "o": -1, "d": 10, "f": "x", "i": "1"}').decode(),
        base64.urlsafe_b64encode(b'{"v": 1, "o": 1, "d": 0, "f": "x", "i": "1"}').decode(),
        base64.urlsafe_b64encode(b'{"v": 2, "o": 1, "d": 10, "f": "x", "i": "1"}').decode(),
        base64.urlsafe_b64encode(b'{"v": 1, "o": "1", "d": 10, "f": "x", "i": "1"}').decode(),
        "A" * 600,
    ],
)
def test_malformed_cursors_are_refused(text: str) -> None:
    with pytest.raises(CursorError) as caught:
        Cursor.decode(text)
    assert caught.value.path == "$.cursor"


def test_fingerprint_ignores_key_order_and_sees_values() -> None:
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})


def chunk(doc_id: str, index: int, **metadata: object) -> Chunk:
    return Chunk(doc_id=doc_id, chunk_index=index, text="t", metadata=metadata)  # type: ignore[arg-type]


def test_facets_count_documents_once_and_list_members_each() -> None:
    chunks = [
        chunk("a", 0, source="docs", tags=["x", "y"], year=2020, ok=True),
        chunk("a", 1, source="docs", tags=["x", "y"], year=2020, ok=True),  # same document
        chunk("b", 0, source="blog", tags=["x"], year=2021, ok=False),
        chunk("c", 0, source="docs", year=2020, ok=1),  # no tags; 1 is not True
        chunk("d", 2, source="blog", tags=[], year=2020.0),
    ]
    counts = count_facets(chunks, ["source", "tags", "year", "ok", "absent"])
    assert counts["source"] == [FacetValue("blog", 2), FacetValue("docs", 2)]  # ties by value
    assert counts["tags"] == [FacetValue("x", 2), FacetValue("y", 1)]
    # 2020 and 2020.0 are different values (by type), as in the stored metadata.
    assert [(type(v.value), v.value, v.count) for v in counts["year"]] == [
        (int, 2020, 2),
        (float, 2020.0, 1),
        (int, 2021, 1),
    ]
    assert [(type(v.value), v.value, v.count) for v in counts["ok"]] == [
        (bool, False, 1),
        (bool, True, 1),
        (int, 1, 1),
    ]
    assert counts["absent"] == []
    assert count_facets(chunks, ["tags"], limit=1) == {"tags": [FacetValue("x", 2)]}


def test_facet_fields_are_checked() -> None:
    assert check_facet_fields(["source", "year"], {"source", "year", "tags"}) == ["source", "year"]
    assert check_facet_fields(["anything"], None) == ["anything"]
    for fields, words in [
        (["nope"], "no document has it (metadata fields: source)"),
        (["a.b"], "is not a metadata key"),
        (["source", "source"], "repeat"),
        ([f"f{i}" for i in range(11)], "at most 10"),
    ]:
        with pytest.raises(InvalidRequestError, match=re.escape(words)):
            check_facet_fields(fields, {"source"} | set(fields) - {"nope"})
