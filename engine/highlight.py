"""Query terms marked in a passage, with the analysis BM25 scores them by.

A word of a passage is marked when Tantivy's ``en_stem`` chain (the one both sparse stores
index with) turns it into a term of the query as BM25 scored it (``SparseStore.analyze``:
stopwords dropped per ``sparse.query_stopwords``). So "Running" is marked for the query
"run", and "the" is not marked for "the fusion of rankings".

Offsets come from splitting the text where Tantivy's simple tokenizer splits it: at every
character that is not alphanumeric (``_`` included). Each word is then analysed alone with
the same chain, so a mark is exactly a word that BM25 matched (``tests/engine/
test_highlight.py`` checks that the words' terms are the index's terms, on real text).
Tantivy's ``SnippetGenerator`` is not used: it needs the chunk's text stored in the Tantivy
index (braid stores it in the payload) and it does not exist for the Qdrant sparse backend.
"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Iterable, Iterator, Sequence

from braid.engine.sparse.analysis import MAX_TOKEN_LENGTH, document_terms

# Tantivy's SimpleTokenizer: runs of characters for which Rust's char::is_alphanumeric holds.
_WORD = re.compile(r"[^\W_]+")
SNIPPET_CHARS = 240
ELLIPSIS = "…"

Span = tuple[int, int]


def highlight_spans(text: str, terms: Iterable[str]) -> list[Span]:
    """Character spans ``[start, end)`` of the words of ``text`` whose term is in ``terms``.

    Args:
        text: the passage.
        terms: analysed query terms (``SparseStore.analyze``); an empty set marks nothing.

    Returns:
        Spans in text order, never overlapping; adjacent matched words stay separate spans.
    """
    wanted = frozenset(terms)
    if not wanted:
        return []
    lowered = text.lower()
    if len(lowered) != len(text):
        # A few characters lower-case to two (U+0130): offsets into the lowered text would
        # drift, so that passage takes the slower case-insensitive scan of the text itself.
        return _checked(text, (m.span() for m in _candidates(wanted).finditer(text)), wanted)
    return _checked(text, _word_starts(lowered, _prefixes(wanted)), wanted)


def _word_starts(lowered: str, prefixes: Sequence[str]) -> Iterator[Span]:
    # str.find runs in C: scanning for a few prefixes beats a regex alternation (about 2x on
    # SciFact passages); a find inside a word is not a word start and is skipped.
    starts: set[int] = set()
    for prefix in prefixes:
        at = lowered.find(prefix)
        while at >= 0:
            if at == 0 or not lowered[at - 1].isalnum():  # [^\W_] is str.isalnum()
                starts.add(at)
            at = lowered.find(prefix, at + 1)
    for start in sorted(starts):
        word = _WORD.match(lowered, start)
        if word is not None:
            yield start, word.end()


def _checked(text: str, candidates: Iterable[Span], wanted: frozenset[str]) -> list[Span]:
    spans: list[Span] = []
    for start, end in candidates:
        word = text[start:end]
        if len(word.encode()) < MAX_TOKEN_LENGTH and not wanted.isdisjoint(_word_terms(word)):
            spans.append((start, end))
    return spans


@functools.lru_cache(maxsize=256)
def _prefixes(terms: frozenset[str]) -> tuple[str, ...]:
    # Only words that can stem to a query term are analysed: the English stemmer rewrites a
    # word's ending only (it may drop, change or add its last letters: "hoping" -> "hope",
    # "happy" -> "happi"), so such a word starts with its term minus the last letter. Words
    # are found by their first (at most three) letters of that; terms are lower-case.
    return tuple(sorted({t[: max(1, len(t) - 1)][:3] for t in terms}))


@functools.lru_cache(maxsize=256)
def _candidates(terms: frozenset[str]) -> re.Pattern[str]:
    # The same prefixes as a case-insensitive pattern, at word starts, over the text as is.
    prefixes = sorted({re.escape(p) for p in _prefixes(terms)}, key=len)
    return re.compile(rf"(?<![^\W_])(?:{'|'.join(prefixes)})[^\W_]*", re.IGNORECASE)


@functools.lru_cache(maxsize=1 << 16)
def _word_terms(word: str) -> tuple[str, ...]:
    # A word alone analyses as it does in its passage: the split is at its own edges.
    return tuple(document_terms(word))


def snippet_html(text: str, spans: Sequence[Span], width: int = SNIPPET_CHARS) -> str:
    """An HTML-safe excerpt of ``text``: at most ``width`` characters, marks as ``<mark>``.

    The window starts a little before the first span and is widened to whole words where
    it can be; a cut end shows "…". Everything but the ``<mark>`` tags is escaped, so the
    result can be put into a page as HTML.
    """
    start, end = _window(text, spans, width)
    pieces: list[str] = [ELLIPSIS] if start > 0 else []
    cursor = start
    for s, e in spans:
        if e <= start or s >= end:
            continue
        s, e = max(s, start), min(e, end)
        pieces.append(html.escape(text[cursor:s]))
        pieces.append(f"<mark>{html.escape(text[s:e])}</mark>")
        cursor = e
    pieces.append(html.escape(text[cursor:end]))
    if end < len(text):
        pieces.append(ELLIPSIS)
    return "".join(pieces)


def _window(text: str, spans: Sequence[Span], width: int) -> tuple[int, int]:
    if len(text) <= width:
        return 0, len(text)
    # The window that holds the most marks, starting a few words before its first one.
    best_start, best_marks = 0, -1
    for i, (s, _) in enumerate(spans):
        marks = sum(1 for s2, e2 in spans[i:] if e2 <= s + width)
        if marks > best_marks:
            best_start, best_marks = s, marks
    start = max(0, best_start - width // 6) if spans else 0
    if start > 0:
        # Begin at a word: after the last space before the start, if there is one near.
        space = text.rfind(" ", max(0, start - 20), start)
        start = space + 1 if space >= 0 else start
    end = min(len(text), start + width)
    if end < len(text):
        space = text.rfind(" ", end - 20, end)
        end = space if space > start else end
    return start, end
