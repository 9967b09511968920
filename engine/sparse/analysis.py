"""What BM25 sees of a chunk, and how its text becomes terms: shared by both sparse stores.

Both stores analyse text the same way (Tantivy's ``en_stem`` chain), so a corpus moved from
one to the other matches the same terms. Documents are indexed with every term; query text
may in addition drop English stopwords (``query_terms``), which needs no re-index because a
dropped term only removes a clause from the query.
"""

from __future__ import annotations

import functools
from typing import Literal, get_args

import tantivy

from braid.engine.errors import ConfigError
from braid.engine.models import Chunk

MAX_TOKEN_LENGTH = 40  # Tantivy's en_stem drops tokens longer than this (RemoveLongFilter)

# "english": Tantivy's English stopword list, which is Lucene's ENGLISH_STOP_WORDS_SET (33
# words: "a", "the", "of", "to", ...); "none": keep every term.
QueryStopwords = Literal["english", "none"]
QUERY_STOPWORDS: tuple[str, ...] = get_args(QueryStopwords)


def bm25_text(chunk: Chunk) -> str:
    """What BM25 sees of a chunk: its title, then its text."""
    return f"{chunk.title}\n{chunk.text}" if chunk.title else chunk.text


def checked_query_stopwords(value: str) -> QueryStopwords:
    """``value`` as a query stopword option.

    Raises:
        ConfigError: ``value`` is not one of ``QUERY_STOPWORDS``.
    """
    if value == "english":
        return "english"
    if value == "none":
        return "none"
    raise ConfigError(f"query stopwords must be one of {QUERY_STOPWORDS}, not {value!r}")


def en_stem_analyzer(stopwords: QueryStopwords = "none") -> tantivy.TextAnalyzer:
    """Tantivy's built-in ``en_stem`` chain: simple tokenizer, drop long, lowercase, stem.

    Args:
        stopwords: ``"english"`` also drops English stopwords, after lowercasing (so "The"
            goes) and before stemming (so only words as written are stopwords: "ifs" stems
            to "if" and stays), so the terms that remain are exactly ``en_stem``'s.
    """
    builder = (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(MAX_TOKEN_LENGTH))
        .filter(tantivy.Filter.lowercase())
    )
    if stopwords == "english":
        builder = builder.filter(tantivy.Filter.stopword("english"))
    return builder.filter(tantivy.Filter.stemmer("english")).build()


@functools.cache
def _shared_analyzer(stopwords: QueryStopwords) -> tantivy.TextAnalyzer:
    # Building an analyzer costs more than analysing a query; one per option per process.
    return en_stem_analyzer(stopwords)


def document_terms(text: str) -> list[str]:
    """Terms of ``text`` as both stores index it (``en_stem``: every term, repeats kept)."""
    return list(_shared_analyzer("none").analyze(text))


def query_terms(text: str, stopwords: QueryStopwords = "english") -> list[str]:
    """Terms of query ``text`` that BM25 scores, in order, repeats kept.

    A repeated term stays repeated: both stores score a term once per occurrence in the
    query, so a verbose query keeps its term frequencies.

    Args:
        text: the query.
        stopwords: ``"english"`` drops English stopwords, unless that leaves no term (a
            query such as "to be or not to be" then keeps them all); ``"none"`` keeps every
            term, as documents are indexed.

    Raises:
        ConfigError: ``stopwords`` is not one of ``QUERY_STOPWORDS``.
    """
    if checked_query_stopwords(stopwords) == "english":
        terms = list(_shared_analyzer("english").analyze(text))
        if terms:
            return terms
    return document_terms(text)
