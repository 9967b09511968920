"""Compile the filter AST into Tantivy queries over braid's metadata fields.

Metadata is indexed in three JSON fields so that every comparison has one column type:

* ``meta``: strings, list-of-strings and bools, raw tokenizer (exact terms); strings carry a
  ``STRING_MARK`` prefix, because Tantivy indexes a JSON string that parses as an RFC 3339
  date as a date term, which a string term query then misses;
* ``num``: numbers as order-preserving int64 codes of their float64 value, fast field
  (Tantivy's JSON range queries panic on columns that mix int and float: one type avoids it);
* ``dt``: ISO-8601 date strings as the same code of their UTC epoch seconds.
"""

from __future__ import annotations

import struct

import tantivy

from braid.engine.filters import And, Eq, FilterExpr, In, Or, Range

_LOW_63_BITS = 0x7FFF_FFFF_FFFF_FFFF
STRING_MARK = "="  # no RFC 3339 date starts with it


def meta_string(value: str) -> str:
    """How a metadata string (or list element) is indexed and queried in ``meta``."""
    return STRING_MARK + value


def ordered_code(value: float) -> int:
    """Map a float64 to an int64 with the same order (IEEE-754 sign-magnitude trick)."""
    bits: int = struct.unpack("<q", struct.pack("<d", float(value) + 0.0))[0]  # +0.0: no -0.0
    return bits ^ _LOW_63_BITS if bits < 0 else bits


def to_tantivy_query(expr: FilterExpr, index: tantivy.Index) -> tantivy.Query:
    """Return a Tantivy query that matches exactly the chunks satisfying ``expr``."""
    schema = index.schema
    if isinstance(expr, Eq):
        return _eq(expr.field, expr.value, index)
    if isinstance(expr, In):
        if isinstance(expr.values[0], str):
            terms = [meta_string(v) for v in expr.values]  # type: ignore[arg-type]
            return tantivy.Query.term_set_query(schema, f"meta.{expr.field}", terms)
        return _any([_eq(expr.field, v, index) for v in expr.values])
    if isinstance(expr, Range):
        return _range(expr, index)
    if isinstance(expr, And):
        return tantivy.Query.boolean_query(
            [(tantivy.Occur.Must, to_tantivy_query(c, index)) for c in expr.children]
        )
    if isinstance(expr, Or):
        return _any([to_tantivy_query(c, index) for c in expr.children])
    return tantivy.Query.boolean_query(
        [
            (tantivy.Occur.Must, tantivy.Query.all_query()),
            (tantivy.Occur.MustNot, to_tantivy_query(expr.child, index)),
        ]
    )


def _any(queries: list[tantivy.Query]) -> tantivy.Query:
    return tantivy.Query.boolean_query([(tantivy.Occur.Should, q) for q in queries])


def _eq(field: str, value: object, index: tantivy.Index) -> tantivy.Query:
    if isinstance(value, str):
        return tantivy.Query.term_query(index.schema, f"meta.{field}", meta_string(value))
    if isinstance(value, bool):
        return tantivy.Query.term_query(index.schema, f"meta.{field}", value)
    code = ordered_code(float(value))  # type: ignore[arg-type]
    return tantivy.Query.term_query(index.schema, f"num.{field}", code)


def _range(expr: Range, index: tantivy.Index) -> tantivy.Query:
    # range_query() does not take JSON sub-paths; the query parser's range syntax does.
    root = "dt" if expr.kind == "date" else "num"
    lower, open_lower = (expr.gte, "[") if expr.gte is not None else (expr.gt, "{")
    upper, open_upper = (expr.lte, "]") if expr.lte is not None else (expr.lt, "}")
    low = "*" if lower is None else str(ordered_code(lower))
    high = "*" if upper is None else str(ordered_code(upper))
    return index.parse_query(f"{root}.{expr.field}:{open_lower}{low} TO {high}{open_upper}")
