"""Validation of document metadata: the value types every backend can filter on."""

from __future__ import annotations

import math
from collections.abc import Mapping

from braid.engine.errors import InvalidDocumentError
from braid.engine.filters import FIELD_NAME
from braid.engine.models import MetadataValue

MAX_LIST_VALUES = 256


def validate_metadata(raw: Mapping[str, object]) -> dict[str, MetadataValue]:
    """Check metadata keys and values and return a plain dict copy.

    Keys follow the filter language's field names; values are strings, finite numbers,
    bools or lists of strings. ``None`` values are dropped (a missing field).

    Raises:
        InvalidDocumentError: naming the offending key.
    """
    clean: dict[str, MetadataValue] = {}
    for key, value in raw.items():
        if not isinstance(key, str) or not FIELD_NAME.match(key):
            raise InvalidDocumentError(
                f"metadata key {key!r}: use letters, digits and '_' (not starting with a digit)"
            )
        if value is None:
            continue
        if isinstance(value, bool | str):
            clean[key] = value
        elif isinstance(value, int | float):
            if not math.isfinite(value):
                raise InvalidDocumentError(f"metadata {key!r}: numbers must be finite")
            clean[key] = value
        elif isinstance(value, list):
            if not all(isinstance(v, str) for v in value) or len(value) > MAX_LIST_VALUES:
                raise InvalidDocumentError(
                    f"metadata {key!r}: lists hold strings only ({MAX_LIST_VALUES} at most)"
                )
            clean[key] = list(value)
        else:
            raise InvalidDocumentError(
                f"metadata {key!r}: {type(value).__name__} is not a string, number, bool "
                "or list of strings"
            )
    return clean


def metadata_over_limits(
    metadata: Mapping[str, MetadataValue], *, max_keys: int, max_value_chars: int
) -> tuple[str, str | None] | None:
    """The first configured limit ``metadata`` exceeds, as (message, offending key), or None.

    The limits are settings (``metadata.max_keys``, ``metadata.max_value_chars``) and the
    message names them, so a refused record tells the user which one to raise.
    """
    if len(metadata) > max_keys:
        return (
            f"{len(metadata)} metadata fields, more than metadata.max_keys ({max_keys})",
            None,
        )
    for key, value in metadata.items():
        items = value if isinstance(value, list) else [value]
        longest = max((len(v) for v in items if isinstance(v, str)), default=0)
        if longest > max_value_chars:
            return (
                f"metadata {key!r}: a value of {longest:,} characters, more than "
                f"metadata.max_value_chars ({max_value_chars:,})",
                key,
            )
    return None
