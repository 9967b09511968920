"""What BM25 sees of a chunk, and how its text becomes terms: shared by both sparse stores.

Both stores analyse text the same way (Tantivy's ``en_stem`` chain), so a corpus moved from
one to the other matches the same terms.
"""

from __future__ import annotations

import tantivy

from braid.engine.models import Chunk

MAX_TOKEN_LENGTH = 40  # Tantivy's en_stem drops tokens longer than this (RemoveLongFilter)


def bm25_text(chunk: Chunk) -> str:
    """What BM25 sees of a chunk: its title, then its text."""
    return f"{chunk.title}\n{chunk.text}" if chunk.title else chunk.text


def en_stem_analyzer() -> tantivy.TextAnalyzer:
    """Tantivy's built-in ``en_stem`` chain: simple tokenizer, drop long, lowercase, stem."""
    return (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(MAX_TOKEN_LENGTH))
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.stemmer("english"))
        .build()
    )
