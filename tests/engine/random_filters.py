"""Seeded random corpora and filters over braid's filter language (every operator, every type).

Shared by the filter-semantics tests (each backend against ``filter_oracle``) and the
congruence tests (Qdrant Edge against qdrant-client on the same points).
"""

from __future__ import annotations

import random
from typing import Any

from braid.engine.metadata import validate_metadata
from braid.engine.models import Chunk

N_DOCS = 240
N_SECOND_CHUNKS = 60  # documents with a second chunk (own metadata): doc_ids is "any chunk"

COLORS = ["red", "green", "blue", "Red", "dark red", "café"]
TAGS = ["a", "b", "c", "red", "x-y", "long tag with spaces", "2020-01-03", "2020-01-07T06:00:00Z"]
INTS = list(range(-5, 6))
FLOATS = [-1e9, -2.5, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 2.5, 3, 1e9 + 0.5]
DAYS = [f"2020-01-{d:02d}" for d in range(1, 11)] + ["2019-12-30", "2019-12-31"]
DAY_SUFFIXES = ["", "T12:30:00", "T12:30:00Z", "T01:00:00+02:00", "T23:30:00-05:00"]
MIXED = ["red", 1, 2.5, True, False, ["red", "a"], -3, "2020-01-05"]
FIELDS = ["color", "tags", "n", "x", "flag", "day", "mixed"] * 3 + ["absent"]


def random_metadata(rng: random.Random) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    if rng.random() < 0.85:
        raw["color"] = rng.choice(COLORS)
    if rng.random() < 0.8:
        raw["tags"] = rng.sample(TAGS, rng.randint(0, 3))
    if rng.random() < 0.85:
        raw["n"] = rng.choice(INTS)
    if rng.random() < 0.85:
        raw["x"] = rng.choice(FLOATS)
    if rng.random() < 0.8:
        raw["flag"] = rng.random() < 0.5
    if rng.random() < 0.8:
        raw["day"] = rng.choice(DAYS) + rng.choice(DAY_SUFFIXES)
    if rng.random() < 0.7:
        raw["mixed"] = rng.choice(MIXED)
    return validate_metadata(raw)


def random_corpus(rng: random.Random) -> list[Chunk]:
    chunks = []
    for i in range(N_DOCS):
        doc_id = f"d{i:03d}"
        for index in range(2 if i < N_SECOND_CHUNKS else 1):
            # Every chunk contains "common" (1-3 times, varying lengths) so that a BM25 query
            # for it reaches every chunk and only the filter decides.
            words = ["common"] * rng.randint(1, 3) + [f"w{rng.randint(0, 50)}"] * rng.randint(0, 12)
            rng.shuffle(words)
            chunks.append(Chunk(doc_id, index, " ".join(words), "", random_metadata(rng)))
    return chunks


def _value(rng: random.Random, kind: str, field: str = "") -> Any:
    if kind == "str":
        vocab = {"color": COLORS, "tags": TAGS}.get(field, [*COLORS, *TAGS, "2020-01-05"])
        return rng.choice([*vocab, "nothing"])
    if kind == "int":
        return rng.choice([*INTS, 7])
    if kind == "float":
        return rng.choice([*FLOATS, 0.25, -0.75, 2])
    if kind == "bool":
        return rng.random() < 0.5
    return rng.choice(DAYS) + rng.choice(DAY_SUFFIXES)  # "date"


_FIELD_KINDS = {
    "color": ["str"],
    "tags": ["str", "date"],
    "n": ["int", "float"],
    "x": ["float", "int"],
    "flag": ["bool"],
    "day": ["date", "str"],
    "mixed": ["str", "int", "float", "bool", "date"],
    "absent": ["str", "int", "bool", "date"],
}


def random_condition(rng: random.Random, field: str) -> Any:
    kind = rng.choice(_FIELD_KINDS[field])
    if rng.random() < 0.1:  # a value of the wrong type for the field: must match nothing
        kind = rng.choice(["str", "int", "float", "bool", "date"])
    rangeable = kind in ("int", "float", "date")
    ops = ["bare", "$eq", "$ne", "$in", "$nin"] + (
        ["range", "range", "range2"] if rangeable else []
    )
    op = rng.choice(ops)
    if op == "bare":
        return _value(rng, kind, field)
    if op in ("$eq", "$ne"):
        return {op: _value(rng, kind, field)}
    if op in ("$in", "$nin"):
        return {op: [_value(rng, kind, field) for _ in range(rng.randint(1, 3))]}
    if op == "range":
        return {rng.choice(["$gt", "$gte", "$lt", "$lte"]): _value(rng, kind, field)}
    return {
        rng.choice(["$gt", "$gte"]): _value(rng, kind, field),
        rng.choice(["$lt", "$lte"]): _value(rng, kind, field),
    }


def random_filter(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    if depth < 3 and rng.random() < 0.3:
        op = rng.choice(["$and", "$or", "$not"])
        if op == "$not":
            return {"$not": random_filter(rng, depth + 1)}
        return {op: [random_filter(rng, depth + 1) for _ in range(rng.randint(1, 3))]}
    raw: dict[str, Any] = {}
    for _ in range(1 if rng.random() < 0.75 else 2):  # two keys: implicit AND
        field = rng.choice(FIELDS)
        raw[field] = random_condition(rng, field)
    return raw
