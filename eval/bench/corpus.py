"""A real corpus scaled up for benchmarks: sentence windows of a BEIR corpus.

Windows of 1, 2, 3... consecutive sentences of every document give passages with real
vocabulary and realistic lengths; past what windows of up to 6 sentences give (about 200k
passages for SciFact), passages are 2 to 6 sentences of one document drawn at random, in order. Each gets
seeded synthetic metadata (source, year, tags) so filtered queries have something to filter on.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from pathlib import Path

from braid.ingestion.documents import SourceDocument
from braid.ingestion.readers import read_beir

SOURCES = ("pubmed", "arxiv", "journal", "preprint", "review", "thesis", "book", "web")
TAGS = ("biology", "medicine", "genetics", "oncology", "neuro", "immunology", "cardio", "methods")
# Wider windows would be longer than any chunk (braid chunks hold at most 256 tokens).
MAX_WINDOW = 6
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def scaled_corpus(folder: Path, size: int, seed: int = 13) -> Iterator[SourceDocument]:
    """``size`` passages built from the BEIR corpus in ``folder``."""
    docs = [d for d in read_beir(folder) if isinstance(d, SourceDocument)]
    sentences = {d.doc_id: [s for s in _SENTENCE_END.split(d.text) if s.strip()] for d in docs}
    rng = random.Random(seed)
    produced = 0
    width = 1
    while produced < size and width <= MAX_WINDOW:
        added = 0
        for doc in docs:
            parts = sentences[doc.doc_id]
            for start in range(0, max(0, len(parts) - width + 1)):
                text = " ".join(parts[start : start + width])
                yield SourceDocument(
                    doc_id=f"{doc.doc_id}-w{width}-{start}",
                    text=text,
                    title=doc.title,
                    metadata=_metadata(rng),
                    origin=f"{folder}:{doc.doc_id}",
                )
                produced += 1
                added += 1
                if produced >= size:
                    return
        if added == 0:
            break  # no window this wide anywhere: the windows are exhausted
        width += 1
    yield from _sampled(docs, sentences, size - produced, rng, folder)


def _sampled(
    docs: list[SourceDocument],
    sentences: dict[str, list[str]],
    count: int,
    rng: random.Random,
    folder: Path,
) -> Iterator[SourceDocument]:
    long_enough = [d for d in docs if len(sentences[d.doc_id]) >= 2]
    for n in range(count):
        doc = rng.choice(long_enough)
        parts = sentences[doc.doc_id]
        picked = sorted(rng.sample(range(len(parts)), min(len(parts), rng.randint(2, 6))))
        yield SourceDocument(
            doc_id=f"{doc.doc_id}-s{n}",
            text=" ".join(parts[i] for i in picked),
            title=doc.title,
            metadata=_metadata(rng),
            origin=f"{folder}:{doc.doc_id}",
        )


def _metadata(rng: random.Random) -> dict[str, str | int | list[str]]:
    return {
        "source": rng.choice(SOURCES),
        "year": rng.randint(1990, 2024),
        "tags": rng.sample(TAGS, rng.randint(1, 3)),
    }


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
