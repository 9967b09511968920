"""Property tests of the filter parser (hypothesis): random JSON never breaks it, errors point
at the offending part, and every valid filter selects what the reference oracle selects.

* Garbage (any JSON value, operators real and made up, NaN and infinities, unicode, keys that
  are not strings, lists and objects nested at random): ``parse_filter`` returns a filter
  expression or ``None``, or raises ``InvalidFilterError`` whose ``path`` names a node of the
  input; never another exception.
* One fault injected into a valid filter at a known place (a value that is not a scalar, an
  unknown operator, a bad field name, an empty list): the error's path is that place.
* The limits (depth, conditions, ``$in`` values) hold at random sizes on both sides.
* Valid filters over the whole language, on ~30 hand-made documents in a real Tantivy index
  and a real Qdrant Edge shard: each store returns exactly the documents that
  ``filter_oracle`` (an evaluator of the raw JSON, independent of the parser) keeps.

Derandomised and bounded: the same examples on every run, in a few seconds.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest
from filter_oracle import matches
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from braid.engine.dense.edge import QdrantEdgeDenseStore
from braid.engine.errors import InvalidFilterError
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
    parse_filter,
)
from braid.engine.metadata import validate_metadata
from braid.engine.models import Chunk, ModelInfo
from braid.engine.sparse.tantivy_store import TantivySparseStore

BOUNDED = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,  # the same examples every run: a failure here is reproducible
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
DIM = 8
MODEL = ModelInfo(model_id="random-unit-vectors", version="1", dim=DIM)
EXPR_TYPES = (Eq, In, Range, And, Or, Not)

# -- the corpus: hand-made metadata, every value type and the awkward cases -----------------
# color: strings (case, spaces, accents, CJK, empty); tags: lists of strings, dates among
# them, one empty; n: ints with negatives; x: floats, one equal to an int, large ones;
# flag: bools; day: ISO dates in several spellings (offsets, fractions); mixed: a field whose
# type differs between documents. Missing fields are missing on purpose.
DOCS: dict[str, dict[str, Any]] = {
    "d00": {
        "color": "red",
        "tags": ["a", "b"],
        "n": 1,
        "x": 0.5,
        "flag": True,
        "day": "2020-01-01",
    },
    "d01": {
        "color": "green",
        "tags": ["b"],
        "n": 2,
        "x": 2.0,
        "flag": False,
        "day": "2020-01-02T12:30:00",
    },
    "d02": {"color": "blue", "tags": [], "n": -3, "x": -2.5, "day": "2020-01-03T12:30:00Z"},
    "d03": {"color": "Red", "tags": ["c", "red"], "n": 0, "flag": True, "mixed": "red"},
    "d04": {"color": "dark red", "n": 5, "x": 1e9 + 0.5, "day": "2020-01-04T01:00:00+02:00"},
    "d05": {"color": "café", "tags": ["a"], "x": -1.0, "flag": False, "mixed": 1},
    "d06": {"tags": ["2020-01-03", "a"], "n": 2, "x": 2.5, "day": "2019-12-31T23:30:00-05:00"},
    "d07": {"color": "日本", "n": -1, "flag": True, "mixed": 2.5},
    "d08": {"color": "", "tags": ["x-y"], "n": 3, "x": 0.0, "mixed": True},
    "d09": {"color": "red", "n": 2, "x": 2, "flag": True, "day": "2020-01-05", "mixed": False},
    "d10": {"color": "green", "tags": ["long tag with spaces"], "x": -1e9, "mixed": ["red", "a"]},
    "d11": {"n": 4, "day": "2020-01-06T00:00:00.250000Z", "mixed": -3},
    "d12": {"color": "blue", "tags": ["b", "c"], "n": 1, "flag": False, "day": "2020-01-07"},
    "d13": {},
    "d14": {
        "color": "red",
        "tags": ["2020-01-07T06:00:00Z"],
        "n": -5,
        "x": 3,
        "mixed": "2020-01-05",
    },
    "d15": {"color": "green", "n": 0, "x": 0.25, "flag": True, "day": "2020-01-08T23:59:59"},
    "d16": {"tags": ["a", "b", "c"], "x": -0.5, "flag": False, "day": "2020-01-02"},
    "d17": {"color": "blue", "n": 5, "mixed": "blue", "day": "2020-01-10T10:00:00+00:00"},
    "d18": {"color": "Red", "tags": ["red"], "n": -2, "x": 1.0, "flag": True},
    "d19": {"color": "dark red", "tags": ["x-y", "a"], "n": 3, "x": 2.5, "day": "2019-12-30"},
    "d20": {"color": "café", "n": 1, "x": 1e9, "flag": True, "mixed": 2},
    "d21": {"tags": ["b"], "flag": False, "day": "2020-01-09T12:00:00+05:30", "mixed": 0},
    "d22": {"color": "red", "n": 2, "x": -2.5, "day": "2020-01-03"},
    "d23": {"color": "green", "tags": ["c"], "n": -4, "flag": True, "mixed": "a"},
    "d24": {"n": 0, "x": 0.5, "day": "2020-01-01T00:00:00Z"},
    "d25": {"color": "blue", "tags": ["a", "2020-01-03"], "x": 2.0, "flag": False},
    "d26": {"color": "red", "tags": ["b", "red"], "n": 4, "x": -1.0, "mixed": 1.0},
    "d27": {"color": "green", "n": -1, "flag": True, "day": "2020-01-05T12:00:00"},
    "d28": {"tags": ["long tag with spaces", "c"], "n": 1, "x": 0.0, "mixed": "2020-01-07"},
    "d29": {"color": "日本", "n": 3, "x": 3.5, "flag": False, "day": "2020-01-04"},
}

FIELDS = ["color", "tags", "n", "x", "flag", "day", "mixed", "absent"]
WORDS = ["red", "green", "blue", "Red", "dark red", "café", "日本", "", "a", "b", "c", "x-y"]
WORDS += ["long tag with spaces", "2020-01-03", "2020-01-05", "nothing"]
NUMBERS = [-5, -2.5, -1, -1.0, 0, 0.0, 0.25, 0.5, 1, 2, 2.0, 2.5, 3, 5, 1e9, 1e9 + 0.5, -1e9]


def _chunks() -> list[Chunk]:
    return [
        Chunk(doc_id, 0, f"document {doc_id}", "", validate_metadata(metadata))
        for doc_id, metadata in DOCS.items()
    ]


@dataclass
class Stores:
    tantivy: TantivySparseStore
    edge: QdrantEdgeDenseStore


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stores]:
    """The corpus in a real Tantivy index and a real Qdrant Edge shard (random vectors)."""
    path = tmp_path_factory.mktemp("filter-hypothesis")
    chunks = _chunks()
    tantivy = TantivySparseStore(path / "tantivy")
    tantivy.upsert(chunks)
    tantivy.commit()
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((len(chunks), DIM)).astype(np.float32)
    edge = QdrantEdgeDenseStore(path / "edge", MODEL)
    edge.upsert(chunks, vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
    yield Stores(tantivy, edge)
    tantivy.close()
    edge.close()


def oracle_ids(raw: dict[str, Any]) -> set[str]:
    return {doc_id for doc_id, metadata in DOCS.items() if matches(raw, metadata)}


# -- valid filters over the whole language -------------------------------------------------

_DAY = datetime(2020, 1, 5, tzinfo=UTC)
_ZONES = st.sampled_from(
    [None, UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30))]
)
# Dates from 2019-12-28 to 2020-01-12 with any time, in or out of a zone, with fractions.
dates = st.one_of(
    st.sampled_from(["2020-01-01", "2020-01-03", "2020-01-05T12:00:00", "2020-01-03T12:30:00Z"]),
    st.builds(
        lambda seconds, zone: (
            (_DAY + timedelta(seconds=seconds)).astimezone(zone).isoformat()
            if zone
            else (_DAY + timedelta(seconds=seconds)).replace(tzinfo=None).isoformat()
        ),
        st.floats(-8 * 86400, 8 * 86400, allow_nan=False).map(lambda s: round(s, 3)),
        _ZONES,
    ),
)
numbers = st.one_of(
    st.sampled_from(NUMBERS),
    st.integers(-6, 6),
    st.floats(-1e10, 1e10, allow_nan=False, allow_infinity=False),
)
scalars_of = {
    "str": st.sampled_from(WORDS),
    "num": numbers,
    "bool": st.booleans(),
    "date": dates,
}


# The kinds of value each field holds: conditions mostly ask for those (else most filters
# would match nothing), sometimes for another kind (which must match nothing, or all: $ne).
FIELD_KINDS = {
    "color": ["str"],
    "tags": ["str", "date"],
    "n": ["num"],
    "x": ["num"],
    "flag": ["bool"],
    "day": ["date", "str"],
    "mixed": ["str", "num", "bool", "date"],
    "absent": ["str", "num", "bool", "date"],
}


@st.composite
def conditions(draw: st.DrawFn, field: str) -> object:
    """One field's condition: a bare value, an operator object, or a range of 1-2 bounds."""
    # sampled_from favours its first element (hypothesis shrinks towards it): the usual case.
    usual = draw(st.sampled_from([True, True, True, False]))
    kind = draw(st.sampled_from(FIELD_KINDS[field] if usual else list(scalars_of)))
    values = scalars_of[kind]
    form = draw(st.sampled_from(["bare", "$eq", "$ne", "$in", "$nin", "range", "range2"]))
    if form == "bare":
        return draw(values)
    if form in ("$eq", "$ne"):
        return {form: draw(values)}
    if form in ("$in", "$nin"):
        return {form: draw(st.lists(values, min_size=1, max_size=4))}
    if form == "range":
        op = draw(st.sampled_from(["$gt", "$gte", "$lt", "$lte"]))
        return {op: draw(st.one_of(numbers, dates))}
    # Two bounds of one kind: numbers with numbers, dates with dates.
    lower = draw(st.one_of(numbers, dates))
    upper = draw(dates if isinstance(lower, str) else numbers)
    return {
        draw(st.sampled_from(["$gt", "$gte"])): lower,
        draw(st.sampled_from(["$lt", "$lte"])): upper,
    }


leaves = st.lists(st.sampled_from(FIELDS), min_size=1, max_size=2, unique=True).flatmap(
    lambda fields: st.fixed_dictionaries({field: conditions(field) for field in fields})
)


def _logical(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    some = st.lists(children, min_size=1, max_size=3)
    return st.one_of(
        some.map(lambda cs: {"$and": cs}),
        some.map(lambda cs: {"$or": cs}),
        children.map(lambda c: {"$not": c}),
        # A logical operator beside field conditions in one object: AND-ed with them.
        st.tuples(leaves, children).map(lambda pair: {**pair[0], "$not": pair[1]}),
        st.tuples(leaves, some).map(lambda pair: {**pair[0], "$or": pair[1]}),
    )


valid_filters = st.recursive(leaves, _logical, max_leaves=6)


def depth(raw: object) -> int:
    """Filter-object nesting as the parser counts it (the top object is level 0)."""
    if not isinstance(raw, dict):
        return 0
    levels = [0]
    for key, value in raw.items():
        if key == "$not":
            levels.append(1 + depth(value))
        elif key in ("$and", "$or"):
            levels.extend(1 + depth(child) for child in value)
    return max(levels)


def test_valid_filters_select_what_the_oracle_selects(stores: Stores) -> None:
    sizes: list[int] = []
    edge_checked = [0]

    @BOUNDED
    @given(raw=valid_filters)
    def check(raw: dict[str, Any]) -> None:
        if depth(raw) > MAX_DEPTH:
            with pytest.raises(InvalidFilterError):
                parse_filter(raw)
            return
        expr = parse_filter(raw)
        assert isinstance(expr, EXPR_TYPES)
        expected = oracle_ids(raw)
        sizes.append(len(expected))
        assert stores.tantivy.doc_ids(expr) == expected, f"tantivy, {raw}"
        edge_checked[0] += 1
        assert stores.edge.doc_ids(expr) == expected, f"qdrant edge, {raw}"

    check()
    # The generator reaches every kind of outcome, not only "nothing" or "everything".
    assert sum(s == 0 for s in sizes) >= 10
    assert sum(s == len(DOCS) for s in sizes) >= 5
    assert sum(0 < s < len(DOCS) for s in sizes) >= len(sizes) // 5
    assert edge_checked[0] >= len(sizes) // 2


def test_edge_date_range_never_matches_a_number(stores: Stores) -> None:
    # Qdrant Edge reads an integer payload as a timestamp in a datetime range: the compiler
    # (engine/qdrant/filters.py) excludes numbers; local mode and Tantivy never matched them.
    for raw in ({"n": {"$lt": "2020-01-01"}}, {"x": {"$lt": "2020-01-01"}}):
        assert stores.edge.doc_ids(parse_filter(raw)) == set(), raw


# -- garbage: anything JSON (and then some) -------------------------------------------------

KEYS = st.one_of(
    st.sampled_from(
        ["$and", "$or", "$not", "$eq", "$ne", "$in", "$nin", "$gt", "$gte", "$lt", "$lte"]
        + ["$regex", "$exists", "$", "$AND", "color", "n", "tags", "_x", "1x", "a.b", ""]
        + ["é", "名前", "a b", "x" * 64, "x" * 65, "$and ", "\x00"]
    ),
    st.text(max_size=6),
)
# Keys that make a filter object often enough: real fields and operators, a few bad ones.
FILTER_KEYS = st.sampled_from(["color", "n", "x", "tags", "mixed", "$or", "$not", "$eq", "1x"])
# Values for those keys that are often close to valid: scalars of any kind (NaN, 2**63,
# ...), operator objects with any operands, lists of scalars.
NEAR_FILTERS = st.one_of(
    st.deferred(lambda: GARBAGE_SCALARS),
    st.dictionaries(
        st.sampled_from(["$eq", "$ne", "$in", "$nin", "$gt", "$lte", "$foo"]),
        st.deferred(lambda: st.one_of(GARBAGE_SCALARS, st.lists(GARBAGE_SCALARS, max_size=3))),
        min_size=1,
        max_size=2,
    ),
    st.deferred(lambda: st.lists(GARBAGE_SCALARS, max_size=3)),
    st.deferred(lambda: garbage),
)
ANY_KEY = st.one_of(KEYS, st.integers(), st.none(), st.booleans(), st.floats())
GARBAGE_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**63, max_value=2**80),  # beyond any backend's integer type
    st.floats(),  # NaN and +-inf included
    st.text(max_size=12),
    st.sampled_from(["2020-01-03", "2020-13-45", "2020-01-03T25:00", "not a date", "1e400"]),
)
garbage = st.recursive(
    GARBAGE_SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(KEYS, children, max_size=4),
        st.dictionaries(ANY_KEY, children, max_size=3),
    ),
    max_leaves=25,
)


def json_paths(raw: object, path: str = "$") -> Iterator[str]:
    """Every node's path, written as the parser writes them (``$.key``, ``[i]``)."""
    yield path
    if isinstance(raw, dict):
        for key, value in raw.items():
            yield from json_paths(value, f"{path}.{key}")
    elif isinstance(raw, list):
        for i, item in enumerate(raw):
            yield from json_paths(item, f"{path}[{i}]")


def _parse_or_error(raw: object) -> InvalidFilterError | None:
    """``None`` when ``raw`` parses (to an expression, or ``None`` for no filter)."""
    try:
        expr = parse_filter(raw)
    except InvalidFilterError as exc:
        return exc
    assert expr is None or isinstance(expr, EXPR_TYPES)
    return None


@BOUNDED
@given(raw=st.one_of(garbage, st.dictionaries(KEYS, garbage, min_size=1, max_size=4)))
def test_garbage_parses_or_raises_invalid_filter_error_with_a_real_path(raw: object) -> None:
    # Any exception but InvalidFilterError fails the test as it propagates.
    error = _parse_or_error(raw)
    if error is not None:
        assert error.path in set(json_paths(raw)), (error.path, raw)
        assert str(error) == f"{error.path}: {error.reason}"
        assert error.reason


def test_garbage_that_parses_selects_what_the_oracle_selects(stores: Stores) -> None:
    accepted: list[dict[str, Any]] = []

    @settings(BOUNDED, max_examples=300)  # few garbage filters parse: draw more of them
    @given(raw=st.dictionaries(FILTER_KEYS, NEAR_FILTERS, min_size=1, max_size=3))
    def check(raw: dict[Any, Any]) -> None:
        if _parse_or_error(raw) is not None:
            return
        accepted.append(raw)
        # The oracle raises on anything it does not understand: it must accept what the
        # parser accepted, and the stores must agree with it.
        expected = oracle_ids(raw)
        expr = parse_filter(raw)
        assert stores.tantivy.doc_ids(expr) == expected, f"tantivy, {raw}"
        assert stores.edge.doc_ids(expr) == expected, f"qdrant edge, {raw}"

    check()
    assert len(accepted) >= 10  # some garbage is a filter after all: those are checked


# -- one fault at a known place -------------------------------------------------------------

Site = tuple[str | int, ...]
NOT_SCALARS = st.one_of(
    st.none(),
    st.just(float("nan")),
    st.just(float("inf")),
    st.just(-float("inf")),
    st.lists(st.integers(), max_size=2),
    st.just([["nested"]]),
)
NOT_BOUNDS = st.one_of(NOT_SCALARS, st.booleans(), st.sampled_from(["soon", "2020-13-01", ""]))


def _format(site: Site) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in site)


def _node(raw: Any, site: Site) -> Any:
    for part in site:
        raw = raw[part]
    return raw


def fault_sites(raw: dict[str, Any], site: Site = ()) -> Iterator[tuple[str, Site]]:
    """Where a fault can go in a valid filter: ``(kind, site of the node)``."""
    yield "filter", site
    for key, value in raw.items():
        here = (*site, key)
        if key == "$not":
            yield "negated", here
            yield from fault_sites(value, here)
        elif key in ("$and", "$or"):
            yield "children", here
            for i, child in enumerate(value):
                yield from fault_sites(child, (*here, i))
        elif not isinstance(value, dict):
            yield "value", here
        else:
            yield "operators", here
            for op, operand in value.items():
                if op in ("$in", "$nin"):
                    yield "list", (*here, op)
                    yield from (("value", (*here, op, i)) for i in range(len(operand)))
                else:
                    yield (
                        ("bound" if op in ("$gt", "$gte", "$lt", "$lte") else "value"),
                        (
                            *here,
                            op,
                        ),
                    )


def _set(raw: Any, site: Site, value: object) -> None:
    _node(raw, site[:-1])[site[-1]] = value


INJECTIONS: dict[str, Callable[[st.DrawFn, Any, Site], Site]] = {}


def injection(kind: str) -> Callable[[Callable[[st.DrawFn, Any, Site], Site]], Any]:
    def register(inject: Callable[[st.DrawFn, Any, Site], Site]) -> Any:
        INJECTIONS[kind] = inject
        return inject

    return register


@injection("value")
def _bad_value(draw: st.DrawFn, raw: Any, site: Site) -> Site:
    _set(raw, site, draw(NOT_SCALARS))
    return site


@injection("bound")
def _bad_bound(draw: st.DrawFn, raw: Any, site: Site) -> Site:
    _set(raw, site, draw(NOT_BOUNDS))
    return site


@injection("list")
def _bad_list(draw: st.DrawFn, raw: Any, site: Site) -> Site:
    _set(raw, site, draw(st.one_of(st.just([]), st.none(), st.sampled_from(["a", 1, True]))))
    return site


@injection("children")
def _bad_children(draw: st.DrawFn, raw: Any, site: Site) -> Site:
    choice = draw(st.sampled_from(["empty list", "not a list", "empty child", "scalar child"]))
    if choice == "empty list":
        _set(raw, site, [])
    elif choice == "not a list":
        _set(raw, site, draw(st.one_of(st.just({"color": "red"}), GARBAGE_SCALARS)))
    else:
        children = _node(raw, site)
        children.append({} if choice == "empty child" else draw(GARBAGE_SCALARS))
        return (*site, len(children) - 1)
    return site


@injection("negated")
def _bad_negated(draw: st.DrawFn, raw: Any, site: Site) -> Site:
    _set(raw, site, draw(st.one_of(st.just({}), st.just([{"n": 1}]), GARBAGE_SCALARS)))
    return site


@injection("operators")
def _unknown_operator(draw: st.DrawFn, raw: Any, site: Site) -> Site:
    op = draw(st.sampled_from(["$regex", "$exists", "$and", "$", "$EQ", "gte", "$in "]))
    _node(raw, site)[op] = 1
    return (*site, op)


@injection("filter")
def _bad_key(draw: st.DrawFn, raw: Any, site: Site) -> Site:
    key = draw(st.sampled_from(["$xor", "$regex", "$", "1x", "a.b", "a-b", "", "é", "x" * 65]))
    _node(raw, site)[key] = "red"
    return (*site, key)


@st.composite
def faulty_filters(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    """A valid filter with one fault injected, and the path the error must name."""
    raw = copy.deepcopy(draw(valid_filters.filter(lambda f: depth(f) <= MAX_DEPTH)))
    kind, site = draw(st.sampled_from(list(fault_sites(raw))))
    return raw, _format(INJECTIONS[kind](draw, raw, site))


@BOUNDED
@given(case=faulty_filters())
def test_an_injected_fault_is_reported_at_its_path(case: tuple[dict[str, Any], str]) -> None:
    raw, path = case
    with pytest.raises(InvalidFilterError) as caught:
        parse_filter(raw)
    assert caught.value.path == path, raw


# -- the limits, at random sizes ------------------------------------------------------------


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(levels=st.integers(0, 3 * MAX_DEPTH), logical=st.sampled_from(["$not", "$and", "$or"]))
def test_depth_limit_at_any_depth(levels: int, logical: str) -> None:
    raw: dict[str, Any] = {"n": 1}
    path = "$"
    for _ in range(levels):
        raw = {"$not": raw} if logical == "$not" else {logical: [raw]}
        path += ".$not" if logical == "$not" else f".{logical}[0]"
    error = _parse_or_error(raw)
    if levels <= MAX_DEPTH:
        assert error is None
        return
    assert error is not None
    # The first object past the limit: MAX_DEPTH + 1 steps down from the top.
    step = len(".$not") if logical == "$not" else len(f".{logical}[0]")
    assert error.path == path[: 1 + step * (MAX_DEPTH + 1)]


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(count=st.integers(1, 2 * MAX_CONDITIONS), ops=st.integers(1, 3))
def test_condition_limit_at_any_count(count: int, ops: int) -> None:
    # ``ops`` operators per field object: each one is a condition.
    operators = [("$gte", 0), ("$lt", 10), ("$ne", 3)][:ops]
    raw = {"$or": [{"n": dict(operators)} for _ in range(count)]}
    error = _parse_or_error(raw)
    if count * ops <= MAX_CONDITIONS:
        assert error is None
        return
    assert error is not None
    over = MAX_CONDITIONS  # 0-based index of the first condition past the limit
    assert error.path == f"$.$or[{over // ops}].n.{operators[over % ops][0]}"


@settings(max_examples=30, deadline=None, derandomize=True, database=None)
@given(size=st.integers(1, 2 * MAX_IN_VALUES), op=st.sampled_from(["$in", "$nin"]))
def test_in_list_limit_at_any_size(size: int, op: str) -> None:
    error = _parse_or_error({"n": {op: list(range(size))}})
    assert (error is None) == (size <= MAX_IN_VALUES)
    if error is not None:
        assert error.path == f"$.n.{op}"


def test_non_finite_numbers_are_refused_everywhere() -> None:
    for bad in (math.nan, math.inf, -math.inf):
        for raw, path in [
            ({"x": bad}, "$.x"),
            ({"x": {"$ne": bad}}, "$.x.$ne"),
            ({"x": {"$in": [1, bad]}}, "$.x.$in[1]"),
            ({"x": {"$gte": bad}}, "$.x.$gte"),
        ]:
            error = _parse_or_error(raw)
            assert error is not None and error.path == path, raw
