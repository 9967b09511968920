"""``parse_filter``: the documented forms parse into the expected AST, bad ones fail with a path."""

from __future__ import annotations

from typing import Any

import pytest

from braid.engine.errors import BraidError, InvalidFilterError
from braid.engine.filters import (
    MAX_CONDITIONS,
    MAX_DEPTH,
    MAX_IN_VALUES,
    And,
    Eq,
    In,
    Not,
    Or,
    Range,
    epoch_to_rfc3339,
    iso_to_epoch,
    parse_filter,
)

JAN_1_2020 = 1577836800.0  # 2020-01-01T00:00:00Z
JAN_1_2021 = 1609459200.0


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"source": "docs"}, Eq("source", "docs")),
        ({"source": {"$eq": "docs"}}, Eq("source", "docs")),
        ({"reviewed": True}, Eq("reviewed", True)),
        ({"score": -1.5}, Eq("score", -1.5)),
        ({"source": {"$ne": "blog"}}, Not(Eq("source", "blog"))),
        ({"tags": {"$in": ["a", "b"]}}, In("tags", ("a", "b"))),
        ({"year": {"$in": [2019, 2020.5]}}, In("year", (2019, 2020.5))),
        ({"tags": {"$nin": ["a"]}}, Not(In("tags", ("a",)))),
        ({"year": {"$gt": 2019}}, Range("year", "num", gt=2019.0)),
        ({"year": {"$gte": 2019, "$lt": 2024}}, Range("year", "num", gte=2019.0, lt=2024)),
        ({"year": {"$lte": -3.5}}, Range("year", "num", lte=-3.5)),
        (
            {"published": {"$gte": "2020-01-01", "$lt": "2021-01-01T02:00:00+02:00"}},
            Range("published", "date", gte=JAN_1_2020, lt=JAN_1_2021),
        ),
        ({"published": {"$gt": "2020-01-01T00:00:00Z"}}, Range("published", "date", gt=JAN_1_2020)),
        # Several keys in one object are AND-ed, in the order given; ranges come last.
        ({"source": "docs", "year": 2019}, And((Eq("source", "docs"), Eq("year", 2019)))),
        (
            {"year": {"$gte": 2019, "$ne": 2020}},
            And((Not(Eq("year", 2020)), Range("year", "num", gte=2019.0))),
        ),
        (
            {"$and": [{"source": "docs"}, {"year": 2019}]},
            And((Eq("source", "docs"), Eq("year", 2019))),
        ),
        ({"$or": [{"source": "docs"}]}, Or((Eq("source", "docs"),))),
        ({"$not": {"source": "docs"}}, Not(Eq("source", "docs"))),
        (
            {"$or": [{"tags": "a"}, {"$not": {"year": {"$lt": 2000}}}], "reviewed": False},
            And(
                (
                    Or((Eq("tags", "a"), Not(Range("year", "num", lt=2000.0)))),
                    Eq("reviewed", False),
                )
            ),
        ),
    ],
)
def test_documented_forms_parse(raw: dict[str, Any], expected: object) -> None:
    assert parse_filter(raw) == expected


def test_empty_filter_is_none() -> None:
    assert parse_filter(None) is None
    assert parse_filter({}) is None


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ("docs", "$"),
        ([{"source": "docs"}], "$"),
        ({"year": {"$gtx": 2019}}, "$.year.$gtx"),
        ({"$xor": [{"a": 1}]}, "$.$xor"),
        ({"$or": [{"a": 1}, "b"]}, "$.$or[1]"),
        ({"$or": [{"a": 1}, {}]}, "$.$or[1]"),
        ({"$or": []}, "$.$or"),
        ({"$and": {"a": 1}}, "$.$and"),
        ({"$not": "a"}, "$.$not"),
        ({"$not": [{"a": 1}]}, "$.$not"),
        ({"tags": {"$in": ["a", "b", {"c": 1}]}}, "$.tags.$in[2]"),
        ({"tags": {"$in": []}}, "$.tags.$in"),
        ({"tags": {"$nin": "a"}}, "$.tags.$nin"),
        ({"tags": {"$in": ["a", 1]}}, "$.tags.$in"),
        ({"tags": {"$in": [True, 1]}}, "$.tags.$in"),
        ({"tags": ["a", "b"]}, "$.tags"),
        ({"tags": None}, "$.tags"),
        ({"year": float("nan")}, "$.year"),
        ({"year": {"$eq": float("inf")}}, "$.year.$eq"),
        ({"year": {"$ne": None}}, "$.year.$ne"),
        ({"year": {}}, "$.year"),
        ({"year": {"$gt": "last year"}}, "$.year.$gt"),
        ({"year": {"$gt": True}}, "$.year.$gt"),
        ({"year": {"$lt": [2020]}}, "$.year.$lt"),
        ({"year": {"$gt": 2019, "$lt": "2021-01-01"}}, "$.year"),
        ({"year": {"$gt": 2019, "$gte": 2020}}, "$.year"),
        ({"year": {"$lt": 2019, "$lte": 2020}}, "$.year"),
        ({"1year": 2019}, "$.1year"),
        ({"source-name": "docs"}, "$.source-name"),
        ({"a" * 65: 1}, "$." + "a" * 65),
        ({"$or": [{"a": 1}, {"$and": [{"b": {"$lt": "soon"}}]}]}, "$.$or[1].$and[0].b.$lt"),
    ],
)
def test_bad_filters_name_the_offending_part(raw: object, path: str) -> None:
    with pytest.raises(InvalidFilterError) as caught:
        parse_filter(raw)
    assert caught.value.path == path
    assert str(caught.value).startswith(f"{path}: ")
    assert caught.value.reason


def test_invalid_filter_error_is_a_braid_error() -> None:
    assert issubclass(InvalidFilterError, BraidError)


def test_longest_field_name_is_accepted() -> None:
    assert parse_filter({"a" * 64: 1}) == Eq("a" * 64, 1)
    assert parse_filter({"_private9": 1}) == Eq("_private9", 1)


def _nested_not(levels: int) -> dict[str, Any]:
    raw: dict[str, Any] = {"a": 1}
    for _ in range(levels):
        raw = {"$not": raw}
    return raw


def test_depth_limit() -> None:
    assert parse_filter(_nested_not(MAX_DEPTH)) is not None
    with pytest.raises(InvalidFilterError) as caught:
        parse_filter(_nested_not(MAX_DEPTH + 1))
    assert caught.value.path == "$" + ".$not" * (MAX_DEPTH + 1)


def test_condition_count_limit() -> None:
    ok = parse_filter({"$or": [{"f": i} for i in range(MAX_CONDITIONS)]})
    assert isinstance(ok, Or) and len(ok.children) == MAX_CONDITIONS
    with pytest.raises(InvalidFilterError) as caught:
        parse_filter({"$or": [{"f": i} for i in range(MAX_CONDITIONS + 1)]})
    assert caught.value.path == f"$.$or[{MAX_CONDITIONS}].f"
    # Each operator of a field object counts as one condition.
    many = {f"f{i}": {"$gte": 0, "$lt": 1} for i in range(MAX_CONDITIONS // 2 + 1)}
    with pytest.raises(InvalidFilterError):
        parse_filter(many)


def test_in_list_size_limit() -> None:
    values = [f"v{i}" for i in range(MAX_IN_VALUES)]
    assert parse_filter({"tags": {"$in": values}}) == In("tags", tuple(values))
    with pytest.raises(InvalidFilterError) as caught:
        parse_filter({"tags": {"$in": [*values, "one more"]}})
    assert caught.value.path == "$.tags.$in"


@pytest.mark.parametrize(
    ("text", "epoch"),
    [
        ("2020-01-01", JAN_1_2020),
        ("2020-01-01T00:00:00", JAN_1_2020),
        ("2020-01-01T00:00:00Z", JAN_1_2020),
        ("2020-01-01T05:30:00+05:30", JAN_1_2020),
        ("2019-12-31T19:00:00-05:00", JAN_1_2020),
        ("1969-12-31T23:59:59Z", -1.0),
        ("2020", None),
        ("docs", None),
        ("2020-13-01", None),
        ("01/02/2020", None),
    ],
)
def test_iso_dates(text: str, epoch: float | None) -> None:
    assert iso_to_epoch(text) == epoch


def test_epoch_to_rfc3339() -> None:
    assert epoch_to_rfc3339(JAN_1_2020) == "2020-01-01T00:00:00Z"
    assert epoch_to_rfc3339(JAN_1_2020 + 1.5) == "2020-01-01T00:00:01.500000Z"
