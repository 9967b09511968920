"""Highlights: the words BM25 matched, by hand and against Tantivy's own analysis."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from braid.engine.highlight import highlight_spans, snippet_html
from braid.engine.sparse.analysis import MAX_TOKEN_LENGTH, document_terms, query_terms

# Read in place, never copied into the project (as tests/conftest.py's SHARED_DATA).
SHARED_DATA = Path(__file__).parents[2] / ".." / "shared" / "data"


def marked(text: str, query: str) -> list[str]:
    return [text[s:e] for s, e in highlight_spans(text, query_terms(query))]


def test_stemmed_words_are_marked_and_stopwords_are_not() -> None:
    text = "Running dogs ran; the DOG runs. Fusion of rankings, ranked."
    assert marked(text, "the running dog") == ["Running", "dogs", "DOG", "runs"]
    assert marked(text, "fusion of ranking") == ["Fusion", "rankings", "ranked"]
    # A query of stopwords only keeps them (as BM25 does), so they are marked.
    assert marked(text, "the") == ["the"]


def test_offsets_split_where_tantivy_splits() -> None:
    text = "x_y e-mail BM25's don't 3.5"
    assert highlight_spans(text, query_terms("mail")) == [(6, 10)]
    assert highlight_spans(text, query_terms("bm25")) == [(11, 15)]
    assert highlight_spans(text, query_terms("y")) == [(2, 3)]
    assert highlight_spans(text, query_terms("5")) == [(26, 27)]
    assert highlight_spans(text, []) == []


def test_unicode_words_and_long_tokens() -> None:
    long_word = "a" * MAX_TOKEN_LENGTH
    text = f"Café naïve {long_word} dögs"
    assert marked(text, "café") == ["Café"]
    assert marked(text, "naive naïve") == ["naïve"]
    assert marked(text, "dögs") == ["dögs"]
    assert marked(text, long_word) == []  # Tantivy drops it from the index: BM25 never matched


def test_a_text_whose_lower_case_is_longer_keeps_its_offsets() -> None:
    # "İ" lower-cases to two characters: offsets then come from the text itself.
    text = "İstanbul fusion; FUSION"
    assert len(text.lower()) == len(text) + 1
    assert highlight_spans(text, query_terms("fusion")) == [(9, 15), (17, 23)]
    assert marked("Ranked İ ranks", "rank") == ["Ranked", "ranks"]


def test_snippet_escapes_and_marks() -> None:
    text = "<b>bold</b> & BM25 ranks"
    spans = highlight_spans(text, query_terms("rank bold"))
    assert snippet_html(text, spans) == (
        "&lt;b&gt;<mark>bold</mark>&lt;/b&gt; &amp; BM25 <mark>ranks</mark>"
    )


def test_snippet_window_holds_the_marks_and_shows_cuts() -> None:
    words = [f"w{i}" for i in range(200)]
    words[120] = "fusion"
    text = " ".join(words)
    spans = highlight_spans(text, query_terms("fusion"))
    snippet = snippet_html(text, spans, width=60)
    assert "<mark>fusion</mark>" in snippet
    assert snippet.startswith("…") and snippet.endswith("…")
    assert len(re.sub(r"</?mark>", "", snippet)) <= 62
    assert snippet_html("short", [], width=60) == "short"


@pytest.mark.skipif(not (SHARED_DATA / "scifact").exists(), reason="needs ../shared/data")
def test_every_marked_word_is_an_index_term_on_real_text() -> None:
    """On SciFact, each word's term is what Tantivy indexes, and the marks are exactly the
    words whose own analysis meets the query's terms (a word-by-word reference)."""
    with (SHARED_DATA / "scifact" / "corpus.jsonl").open() as handle:
        texts = [json.loads(line)["text"] for line, _ in zip(handle, range(300), strict=False)]
    with (SHARED_DATA / "scifact" / "queries.jsonl").open() as handle:
        queries = [json.loads(line)["text"] for line, _ in zip(handle, range(300), strict=False)]
    word = re.compile(r"[^\W_]+")
    marks = 0
    for text, query in zip(texts, queries, strict=True):
        words = [m for m in word.finditer(text) if len(m.group().encode()) < MAX_TOKEN_LENGTH]
        # The split is Tantivy's: one term per kept word, in order.
        assert [t for m in words for t in document_terms(m.group())] == document_terms(text)
        # Each query also against a text that surely shares its words: itself.
        for passage in (text, query):
            terms = set(query_terms(query))
            expected = [
                m.span()
                for m in word.finditer(passage)
                if m.group()
                and len(m.group().encode()) < MAX_TOKEN_LENGTH
                and terms & set(document_terms(m.group()))
            ]
            found = highlight_spans(passage, terms)
            assert found == expected, (query, passage[:80])
            marks += len(found)
    assert marks > 300
