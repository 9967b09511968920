"""One metadata filter language for the whole product (Pinecone/Chroma convention).

``{"source": "docs"}``, ``{"year": {"$gte": 2019, "$lt": 2024}}``,
``{"tags": {"$in": ["a", "b"]}}``, combined with ``$and``, ``$or`` and ``$not``.

Semantics, identical in every backend (the contract tests check it):

* equality on a string matches a string field with that value or a list-of-strings field
  that contains it; on a number it is numeric equality (``2 == 2.0``); on a bool, equality;
* ``$ne`` and ``$nin`` are the negation of ``$eq``/``$in``: documents without the field match;
* ``$gt $gte $lt $lte`` compare numbers, or ISO-8601 dates when the bound is a date string;
  documents without the field never match a range; a list-of-strings field matches a date
  range when one of its elements is a date inside it;
* several keys in one object are AND-ed.

``parse_filter`` validates a JSON-like value into a small AST; backends compile the AST into
their own filter objects and push it down into the engine (pre-filtering).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, TypeAlias

from braid.engine.errors import InvalidFilterError

Scalar: TypeAlias = str | int | float | bool
ValueKind = Literal["str", "num", "bool", "date"]
RangeOp = Literal["gt", "gte", "lt", "lte"]

FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
MAX_DEPTH = 8
MAX_CONDITIONS = 256
MAX_IN_VALUES = 1024
_RANGE_OPS: dict[str, RangeOp] = {"$gt": "gt", "$gte": "gte", "$lt": "lt", "$lte": "lte"}
_COMPARISON_OPS = {"$eq", "$ne", "$in", "$nin", *_RANGE_OPS}
_LOGICAL_OPS = {"$and", "$or", "$not"}


@dataclass(frozen=True, slots=True)
class Eq:
    """``field == value`` (contains, for list fields)."""

    field: str
    value: Scalar


@dataclass(frozen=True, slots=True)
class In:
    """``field`` equals any of ``values``; all values share one kind."""

    field: str
    values: tuple[Scalar, ...]


@dataclass(frozen=True, slots=True)
class Range:
    """Numeric or date range; unset bounds are open. Dates are UTC epoch seconds."""

    field: str
    kind: Literal["num", "date"]
    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None


@dataclass(frozen=True, slots=True)
class And:
    children: tuple[FilterExpr, ...]


@dataclass(frozen=True, slots=True)
class Or:
    children: tuple[FilterExpr, ...]


@dataclass(frozen=True, slots=True)
class Not:
    child: FilterExpr


FilterExpr: TypeAlias = Eq | In | Range | And | Or | Not


def value_kind(value: object) -> ValueKind | None:
    """Kind of a filter or metadata scalar, ``None`` when it is not a supported scalar."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "num" if math.isfinite(value) else None
    if isinstance(value, str):
        return "str"
    return None


def parse_iso_datetime(text: str) -> datetime | None:
    """Parse an ISO-8601 date or date-time; naive values are taken as UTC."""
    if len(text) < 10 or not text[:4].isdigit() or text[4] != "-":
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def iso_to_epoch(text: str) -> float | None:
    """Epoch seconds of an ISO-8601 string, or ``None`` when it is not a date."""
    parsed = parse_iso_datetime(text)
    return parsed.timestamp() if parsed else None


def epoch_to_rfc3339(seconds: float) -> str:
    """RFC 3339 UTC text for epoch seconds (what Qdrant's datetime range accepts)."""
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat().replace("+00:00", "Z")


def parse_filter(raw: object) -> FilterExpr | None:
    """Validate a JSON-like filter and return its AST (``None`` for an empty filter).

    Args:
        raw: the decoded JSON filter, e.g. ``{"year": {"$gte": 2019}}``.

    Returns:
        The filter expression, or ``None`` when ``raw`` is ``None`` or ``{}``.

    Raises:
        InvalidFilterError: with the JSON path of the first offending part.
    """
    if raw is None or raw == {}:
        return None
    counter = [0]
    return _parse_object(raw, "$", 0, counter)


def _count(counter: list[int], path: str) -> None:
    counter[0] += 1
    if counter[0] > MAX_CONDITIONS:
        raise InvalidFilterError(f"more than {MAX_CONDITIONS} conditions", path)


def _parse_object(raw: object, path: str, depth: int, counter: list[int]) -> FilterExpr:
    if depth > MAX_DEPTH:
        raise InvalidFilterError(f"nested deeper than {MAX_DEPTH} levels", path)
    if not isinstance(raw, dict):
        raise InvalidFilterError("a filter must be a JSON object", path)
    if not raw:
        raise InvalidFilterError("empty object", path)
    parts: list[FilterExpr] = []
    for key, value in raw.items():
        sub = f"{path}.{key}"
        if not isinstance(key, str):
            raise InvalidFilterError("keys must be strings", path)
        if key in _LOGICAL_OPS:
            parts.append(_parse_logical(key, value, sub, depth, counter))
        elif key.startswith("$"):
            raise InvalidFilterError(f"unknown operator {key!r}", sub)
        else:
            parts.append(_parse_field(key, value, sub, counter))
    return parts[0] if len(parts) == 1 else And(tuple(parts))


def _parse_logical(op: str, value: object, path: str, depth: int, counter: list[int]) -> FilterExpr:
    if op == "$not":
        return Not(_parse_object(value, path, depth + 1, counter))
    if not isinstance(value, list) or not value:
        raise InvalidFilterError(f"{op} takes a non-empty list of filters", path)
    children = tuple(
        _parse_object(item, f"{path}[{i}]", depth + 1, counter) for i, item in enumerate(value)
    )
    return And(children) if op == "$and" else Or(children)


def _parse_field(name: str, value: object, path: str, counter: list[int]) -> FilterExpr:
    if not FIELD_NAME.match(name):
        raise InvalidFilterError(
            "field names are letters, digits and '_' (not starting with a digit), 64 at most",
            path,
        )
    if not isinstance(value, dict):
        _count(counter, path)
        return Eq(name, _scalar(value, path))
    if not value:
        raise InvalidFilterError("empty operator object", path)
    parts: list[FilterExpr] = []
    bounds: dict[RangeOp, object] = {}
    for op, operand in value.items():
        sub = f"{path}.{op}"
        if op not in _COMPARISON_OPS:
            raise InvalidFilterError(f"unknown operator {op!r}", sub)
        _count(counter, sub)
        if op in _RANGE_OPS:
            bounds[_RANGE_OPS[op]] = operand
        elif op == "$eq":
            parts.append(Eq(name, _scalar(operand, sub)))
        elif op == "$ne":
            parts.append(Not(Eq(name, _scalar(operand, sub))))
        elif op == "$in":
            parts.append(In(name, _values(operand, sub)))
        else:
            parts.append(Not(In(name, _values(operand, sub))))
    if bounds:
        parts.append(_range(name, bounds, path))
    return parts[0] if len(parts) == 1 else And(tuple(parts))


def _scalar(value: object, path: str) -> Scalar:
    if value_kind(value) is None:
        raise InvalidFilterError(
            f"expected a string, a finite number or a bool, got {type(value).__name__}", path
        )
    return value  # type: ignore[return-value]


def _values(value: object, path: str) -> tuple[Scalar, ...]:
    if not isinstance(value, list) or not value:
        raise InvalidFilterError("expected a non-empty list of values", path)
    if len(value) > MAX_IN_VALUES:
        raise InvalidFilterError(f"more than {MAX_IN_VALUES} values", path)
    scalars = tuple(_scalar(v, f"{path}[{i}]") for i, v in enumerate(value))
    kinds = {value_kind(v) for v in scalars}
    if len(kinds) > 1:
        raise InvalidFilterError("all values of a list must be of one type", path)
    return scalars


def _range(name: str, bounds: dict[RangeOp, object], path: str) -> Range:
    kinds: set[str] = set()
    numeric: dict[RangeOp, float] = {}
    for op, bound in bounds.items():
        sub = f"{path}.${op}"
        kind = value_kind(bound)
        if kind == "num":
            numeric[op] = float(bound)  # type: ignore[arg-type]
            kinds.add("num")
        elif kind == "str" and (epoch := iso_to_epoch(bound)) is not None:  # type: ignore[arg-type]
            numeric[op] = epoch
            kinds.add("date")
        else:
            raise InvalidFilterError("range bounds must be numbers or ISO-8601 dates", sub)
    if len(kinds) > 1:
        raise InvalidFilterError("range bounds mix numbers and dates", path)
    if ("gt" in numeric and "gte" in numeric) or ("lt" in numeric and "lte" in numeric):
        raise InvalidFilterError("give one lower and one upper bound at most", path)
    return Range(name, "date" if "date" in kinds else "num", **numeric)
