"""Small meaning-preserving query edits and rank-stability measures (overlap@k, RBO).

Edits, each seeded per query so reruns are identical:

- ``typo``: one adjacent-letter swap inside one word of at least 4 letters;
- ``stopwords``: English stop words dropped (the query is kept whole if nothing else is left);
- ``reorder``: the words rotated by half the query length (every word kept).

Rank-biased overlap is Webber, Moffat & Zobel (2010), extrapolated form (their eq. 32) on two
top-k lists, persistence ``p = 0.9`` (the top 10 carry about 86% of the weight).
"""

from __future__ import annotations

import random
import re
import zlib
from collections.abc import Callable, Sequence

PERTURBATIONS: tuple[str, ...] = ("typo", "stopwords", "reorder")
RBO_P = 0.9
STOP_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "been",
        "but",
        "by",
        "can",
        "do",
        "does",
        "for",
        "from",
        "has",
        "have",
        "how",
        "in",
        "into",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "that",
        "the",
        "their",
        "there",
        "these",
        "this",
        "those",
        "to",
        "was",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "why",
        "will",
        "with",
    ]
)
_WORD = re.compile(r"[A-Za-z]{4,}")


def _rng(query: str, kind: str, seed: int) -> random.Random:
    return random.Random(zlib.crc32(f"{seed}\x1f{kind}\x1f{query}".encode()))


def typo(query: str, seed: int = 0) -> str:
    words = list(_WORD.finditer(query))
    if not words:
        return query
    rng = _rng(query, "typo", seed)
    match = rng.choice(words)
    word = match.group()
    i = rng.randrange(1, len(word) - 2)  # keep first and last letters (people do)
    swapped = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    return query[: match.start()] + swapped + query[match.end() :]


def drop_stopwords(query: str, seed: int = 0) -> str:
    del seed  # deterministic: the same words go every time
    kept = [w for w in query.split() if w.lower().strip(".,;:!?\"'()") not in STOP_WORDS]
    return " ".join(kept) if kept else query


def reorder(query: str, seed: int = 0) -> str:
    del seed  # deterministic rotation
    words = query.split()
    if len(words) < 2:
        return query
    shift = max(1, len(words) // 2)
    return " ".join(words[shift:] + words[:shift])


EDITS: dict[str, Callable[[str, int], str]] = {
    "typo": typo,
    "stopwords": drop_stopwords,
    "reorder": reorder,
}


def perturb(query: str, kind: str, seed: int = 0) -> str:
    if kind not in EDITS:
        raise ValueError(f"unknown perturbation {kind!r}; choose from {', '.join(PERTURBATIONS)}")
    return EDITS[kind](query, seed)


def overlap_at_k(a: Sequence[str], b: Sequence[str], k: int = 10) -> float:
    """|top-k of a ∩ top-k of b| / the longer of the two top-k lists (1 when both are empty).

    Dividing by ``k`` would score two identical lists of 7 hits 0.7.
    """
    top_a, top_b = a[:k], b[:k]
    longest = max(len(top_a), len(top_b))
    return len(set(top_a) & set(top_b)) / longest if longest else 1.0


def rbo(a: Sequence[str], b: Sequence[str], p: float = RBO_P, k: int | None = None) -> float:
    """Extrapolated rank-biased overlap of two rankings cut at depth ``k`` (default: shorter)."""
    depth = min(len(a), len(b)) if k is None else min(k, len(a), len(b))
    if depth == 0:
        return 1.0 if not a and not b else 0.0
    seen_a: set[str] = set()
    seen_b: set[str] = set()
    overlap = 0
    weighted = 0.0
    for d in range(1, depth + 1):
        x, y = a[d - 1], b[d - 1]
        if x == y:
            overlap += 1
        else:
            overlap += (x in seen_b) + (y in seen_a)
        seen_a.add(x)
        seen_b.add(y)
        weighted += (overlap / d) * p**d
    return (overlap / depth) * p**depth + (1 - p) / p * weighted
