"""Facet counts: how many of a query's candidate documents have each metadata value.

The counted set is exactly the documents a client can page through for the query and its
filter: every document with a chunk among either retriever's ``candidates`` hits (and, with
``min_score``, a fused score at or above it). Each document counts once per value however
many of its chunks were found; a list field counts once per member. The whole filtered
corpus is not counted: a facet sidebar should describe the results, and for dense retrieval
every document "matches" a query.

Why not Qdrant's facet API: the set is at most two candidate lists (``candidates`` chunks
each), and the searcher has their payloads after fetching them to group documents. Asking
Qdrant instead would mean sending those document ids back as a filter, counting chunks not
documents, and leaving numbers out (Qdrant facets only keyword, integer and bool indexes,
braid indexes numbers as floats) - a round trip that counts less than the loop here.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from braid.engine.errors import InvalidRequestError
from braid.engine.models import Chunk, FacetValue, MetadataValue

MAX_FACETS = 10
FACET_VALUES = 20  # values returned per field, most frequent first
_FIELD = re.compile(r"^[A-Za-z0-9_]{1,64}$")


def check_facet_fields(fields: Sequence[str], known: set[str] | None) -> list[str]:
    """The requested facet fields, checked.

    Args:
        fields: metadata field names, as in filters.
        known: the metadata fields the index has (``None``: not known, not checked).

    Raises:
        InvalidRequestError: too many fields, a repeated or malformed name, or a field no
            document of the index has.
    """
    if len(fields) > MAX_FACETS:
        raise InvalidRequestError(
            f"at most {MAX_FACETS} facet fields, got {len(fields)}", "$.facets"
        )
    if len(set(fields)) != len(fields):
        raise InvalidRequestError("facet fields repeat", "$.facets")
    for field in fields:
        if not _FIELD.match(field):
            raise InvalidRequestError(
                f"facet field {field!r} is not a metadata key (letters, digits and '_')",
                "$.facets",
            )
        if known is not None and field not in known:
            listed = ", ".join(sorted(known)) or "none"
            raise InvalidRequestError(
                f"facet field {field!r}: no document has it (metadata fields: {listed})",
                "$.facets",
            )
    return list(fields)


def count_facets(
    chunks: Iterable[Chunk], fields: Sequence[str], limit: int = FACET_VALUES
) -> dict[str, list[FacetValue]]:
    """Documents per value of each field, over the documents of ``chunks`` (each once).

    Returns:
        For each field, at most ``limit`` values, by count (highest first) then value.
        Booleans and numbers are kept as such (``true`` is not ``"true"``).
    """
    metadata: dict[str, Mapping[str, MetadataValue]] = {}
    for chunk in chunks:
        metadata.setdefault(chunk.doc_id, chunk.metadata)
    counted: dict[str, list[FacetValue]] = {}
    for field in fields:
        counts: Counter[tuple[str, str | int | float | bool]] = Counter()
        for meta in metadata.values():
            value = meta.get(field)
            if value is None:
                continue
            members = value if isinstance(value, list) else [value]
            # Keyed by type too: 1, 1.0 and True are equal in Python, not in metadata.
            counts.update({(type(v).__name__, v) for v in members})
        ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0][0], str(kv[0][1])))
        counted[field] = [FacetValue(value=v, count=n) for (_, v), n in ordered[:limit]]
    return counted
