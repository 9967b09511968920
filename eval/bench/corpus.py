"""A real corpus scaled up for benchmarks: sentence windows of a BEIR corpus.

Windows of 1, 2, 3... consecutive sentences of every document give passages with real
vocabulary and realistic lengths, as many as asked for; each gets seeded synthetic metadata
(source, year, tags) so filtered queries have something to filter on.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from pathlib import Path

from ingestion.documents import SourceDocument
from ingestion.readers import read_beir

SOURCES = ("pubmed", "arxiv", "journal", "preprint", "review", "thesis", "book", "web")
TAGS = ("biology", "medicine", "genetics", "oncology", "neuro", "immunology", "cardio", "methods")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def scaled_corpus(folder: Path, size: int, seed: int = 13) -> Iterator[SourceDocument]:
    """``size`` passages built from the BEIR corpus in ``folder``."""
    docs = [d for d in read_beir(folder) if isinstance(d, SourceDocument)]
    sentences = {d.doc_id: [s for s in _SENTENCE_END.split(d.text) if s.strip()] for d in docs}
    rng = random.Random(seed)
    produced = 0
    width = 1
    while produced < size:
        added = 0
        for doc in docs:
            parts = sentences[doc.doc_id]
            for start in range(0, max(0, len(parts) - width + 1)):
                text = " ".join(parts[start : start + width])
                yield SourceDocument(
                    doc_id=f"{doc.doc_id}-w{width}-{start}",
                    text=text,
                    title=doc.title,
                    metadata={
                        "source": rng.choice(SOURCES),
                        "year": rng.randint(1990, 2024),
                        "tags": rng.sample(TAGS, rng.randint(1, 3)),
                    },
                    origin=f"{folder}:{doc.doc_id}",
                )
                produced += 1
                added += 1
                if produced >= size:
                    return
        if added == 0:
            return  # no window this wide anywhere: the corpus is exhausted
        width += 1


def queries(folder: Path, limit: int) -> list[str]:
    """The first ``limit`` query texts of the BEIR dataset in ``folder``."""
    import json

    found: list[str] = []
    with (folder / "queries.jsonl").open() as handle:
        for line in handle:
            if line.strip():
                found.append(str(json.loads(line)["text"]))
            if len(found) >= limit:
                break
    return found
