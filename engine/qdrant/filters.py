"""Compile the filter AST into Qdrant filter objects.

Qdrant Edge (``qdrant_edge``) and qdrant-client (``qdrant_client.models``) expose the same
filter model under the same keyword arguments, so one compiler serves both: the caller passes
the module that holds the classes. Metadata lives under the ``metadata`` payload key.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from braid.engine.filters import And, Eq, FilterExpr, In, Or, Range, epoch_to_rfc3339
from braid.engine.qdrant.points import METADATA_KEY


def to_qdrant_filter(expr: FilterExpr | None, qm: ModuleType) -> Any:
    """Return a ``qm.Filter`` for ``expr`` (``None`` when there is no filter).

    Args:
        expr: the parsed filter.
        qm: ``qdrant_edge`` or ``qdrant_client.models``.
    """
    if expr is None:
        return None
    compiled = _compile(expr, qm)
    return compiled if isinstance(compiled, qm.Filter) else qm.Filter(must=[compiled])


def _key(field: str) -> str:
    return f"{METADATA_KEY}.{field}"


def _range_class(qm: ModuleType) -> Any:
    # qdrant-client calls it Range, Qdrant Edge RangeFloat.
    return getattr(qm, "Range", None) or qm.RangeFloat


def _datetime_range_class(qm: ModuleType) -> Any:
    return getattr(qm, "DatetimeRange", None) or qm.RangeDateTime


def _eq(field: str, value: object, qm: ModuleType) -> Any:
    if isinstance(value, bool) and qm.__name__.startswith("qdrant_edge"):
        # qdrant-edge-py 0.9.0 extracts a Python bool as the integer 0/1 (bool subclasses
        # int), which never matches a bool payload; numpy's bool is extracted as a bool.
        return qm.FieldCondition(key=_key(field), match=qm.MatchValue(value=np.bool_(value)))
    if isinstance(value, bool | str):
        return qm.FieldCondition(key=_key(field), match=qm.MatchValue(value=value))
    # Numbers compare as floats in every backend: 2 == 2.0, as in JSON.
    number = float(value)  # type: ignore[arg-type]
    return qm.FieldCondition(key=_key(field), range=_range_class(qm)(gte=number, lte=number))


def _compile(expr: FilterExpr, qm: ModuleType) -> Any:
    if isinstance(expr, Eq):
        return _eq(expr.field, expr.value, qm)
    if isinstance(expr, In):
        if isinstance(expr.values[0], str):
            return qm.FieldCondition(key=_key(expr.field), match=qm.MatchAny(any=list(expr.values)))
        return qm.Filter(should=[_eq(expr.field, v, qm) for v in expr.values])
    if isinstance(expr, Range):
        bounds = {k: getattr(expr, k) for k in ("gt", "gte", "lt", "lte")}
        if expr.kind == "date":
            dates = {k: epoch_to_rfc3339(v) for k, v in bounds.items() if v is not None}
            within = qm.FieldCondition(
                key=_key(expr.field), range=_datetime_range_class(qm)(**dates)
            )
            if not qm.__name__.startswith("qdrant_edge"):
                return within
            # Qdrant Edge also reads an integer payload as a timestamp (microseconds), so
            # n = 1 would be "before 2020". A date range matches dates only: not numbers.
            number = qm.FieldCondition(key=_key(expr.field), range=_range_class(qm)())
            return qm.Filter(must=[within], must_not=[number])
        return qm.FieldCondition(key=_key(expr.field), range=_range_class(qm)(**bounds))
    if isinstance(expr, And):
        return qm.Filter(must=[_compile(c, qm) for c in expr.children])
    if isinstance(expr, Or):
        return qm.Filter(should=[_compile(c, qm) for c in expr.children])
    return qm.Filter(must_not=[_compile(expr.child, qm)])
