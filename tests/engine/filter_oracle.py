"""A reference evaluator of braid's filter language, written from ``engine/filters.py``'s docstring.

It works on the raw JSON form (not on ``parse_filter``'s AST), so a bug in the parser or in a
backend compiler cannot hide in both the oracle and the code under test:

* equality on a string matches a string field with that value or a list-of-strings field that
  contains it; on a number it is numeric equality (``2 == 2.0``, never a bool); on a bool,
  equality with a bool;
* ``$ne``/``$nin`` are the negations of ``$eq``/``$in``, so documents without the field match;
* ``$gt $gte $lt $lte`` compare numbers, or ISO-8601 dates when the bound is a date string;
  documents without the field (or with a value of another kind) never match a range; a list of
  strings matches a date range when one element is a date inside all of its bounds;
* several keys in one object are AND-ed; ``$and``/``$or``/``$not`` as in logic.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

_RANGES = {
    "$gt": lambda a, b: a > b,
    "$gte": lambda a, b: a >= b,
    "$lt": lambda a, b: a < b,
    "$lte": lambda a, b: a <= b,
}


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _epoch(text: object) -> float | None:
    if not isinstance(text, str) or len(text) < 10:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _equals(value: object, operand: object) -> bool:
    if isinstance(operand, bool):
        return isinstance(value, bool) and value == operand
    if isinstance(operand, str):
        return (isinstance(value, str) and value == operand) or (
            isinstance(value, list) and operand in value
        )
    if _is_number(operand):
        return _is_number(value) and float(value) == float(operand)  # type: ignore[arg-type]
    raise ValueError(f"not a filter scalar: {operand!r}")


def _in_range(value: object, bounds: dict[str, object]) -> bool:
    """``value`` (or, for a list, one of its elements) satisfies every bound."""
    if isinstance(value, list):
        return any(_in_range(element, bounds) for element in value)
    for op, bound in bounds.items():
        if _is_number(bound):
            left, right = (float(value), float(bound)) if _is_number(value) else (None, None)  # type: ignore[arg-type]
        else:
            left, right = _epoch(value), _epoch(bound)
            if right is None:
                raise ValueError(f"not a range bound: {bound!r}")
        if left is None or not _RANGES[op](left, right):
            return False
    return True


def _field_matches(metadata: Mapping[str, object], field: str, condition: object) -> bool:
    if not isinstance(condition, dict):
        condition = {"$eq": condition}
    present = field in metadata
    value = metadata.get(field)
    # The range operators of one object form one range (one list element must satisfy all).
    bounds = {op: bound for op, bound in condition.items() if op in _RANGES}
    if bounds and not (present and _in_range(value, bounds)):
        return False
    for op, operand in condition.items():
        if op == "$eq":
            ok = present and _equals(value, operand)
        elif op == "$ne":
            ok = not (present and _equals(value, operand))
        elif op == "$in":
            ok = present and any(_equals(value, v) for v in operand)
        elif op == "$nin":
            ok = not (present and any(_equals(value, v) for v in operand))
        elif op in _RANGES:
            continue
        else:
            raise ValueError(f"unknown operator {op}")
        if not ok:
            return False
    return True


def matches(raw_filter: Mapping[str, object], metadata: Mapping[str, object]) -> bool:
    """Whether a document with ``metadata`` satisfies the JSON filter ``raw_filter``."""
    for key, value in raw_filter.items():
        if key == "$and":
            ok = all(matches(child, metadata) for child in value)  # type: ignore[attr-defined]
        elif key == "$or":
            ok = any(matches(child, metadata) for child in value)  # type: ignore[attr-defined]
        elif key == "$not":
            ok = not matches(value, metadata)  # type: ignore[arg-type]
        else:
            ok = _field_matches(metadata, key, value)
        if not ok:
            return False
    return True
