"""Typed records that flow through the engine: chunks, model identities, hits, responses."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

MetadataValue = str | int | float | bool | list[str]
Metadata = Mapping[str, MetadataValue]
SearchMode = Literal["bm25", "dense", "hybrid"]
# The embedding model when none is configured (here, so that Settings need not import torch).
DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"

# Fixed namespace so that point ids are the same on every machine and every run:
# a replayed ingest overwrites points instead of duplicating them.
POINT_ID_NAMESPACE = uuid.UUID("5b1f6c2e-8f0a-4d3e-9c57-b5a1d0e2f4a9")


def point_id_for(doc_id: str, chunk_index: int) -> str:
    """Deterministic Qdrant point id (uuid5) of one chunk of one document."""
    return str(uuid.uuid5(POINT_ID_NAMESPACE, f"{doc_id}\x1f{chunk_index}"))


def chunk_id_for(doc_id: str, chunk_index: int) -> str:
    """Human-readable chunk id, stable across runs."""
    return f"{doc_id}#{chunk_index}"


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """Identity of an embedding model: what a dense index was built with."""

    model_id: str
    version: str
    dim: int


@dataclass(frozen=True, slots=True)
class Chunk:
    """One indexed unit: a piece of a document with the document's title and metadata.

    ``start``/``end`` are character offsets of ``text`` inside the document body.
    ``content_hash`` is the hash of the whole document, so every chunk says which version
    of its document it came from.
    """

    doc_id: str
    chunk_index: int
    text: str
    title: str = ""
    metadata: Metadata = field(default_factory=dict)
    content_hash: str = ""
    start: int = 0
    end: int = 0

    @property
    def chunk_id(self) -> str:
        return chunk_id_for(self.doc_id, self.chunk_index)

    @property
    def point_id(self) -> str:
        return point_id_for(self.doc_id, self.chunk_index)


class ScoredPoint(NamedTuple):
    """A retriever's raw answer: a chunk's point id and the retriever's own score.

    A named tuple for speed, as ``StageScore``: each leg returns up to ``candidates`` of them
    per query.
    """

    point_id: str
    score: float


class StageScore(NamedTuple):
    """Where one stage put a hit: 1-based rank and that stage's score.

    A named tuple, not a frozen dataclass: fusion makes three per candidate (a few hundred
    per query), and a frozen dataclass's ``__init__`` costs about 4x a tuple's.
    """

    rank: int
    score: float


@dataclass(slots=True)
class Hit:
    """A search result with the evidence of every stage that saw it (explain)."""

    point_id: str
    score: float
    stages: dict[str, StageScore] = field(default_factory=dict)
    chunk: Chunk | None = None
    # With highlighting: character spans [start, end) of matched query terms in chunk.text
    # (engine/highlight.py); empty for a hit BM25 did not find.
    highlights: list[tuple[int, int]] | None = None

    @property
    def doc_id(self) -> str:
        return self.chunk.doc_id if self.chunk else ""

    @property
    def chunk_id(self) -> str:
        return self.chunk.chunk_id if self.chunk else ""


@dataclass(slots=True)
class DocumentHit:
    """One document of a result: its best chunk's score, its rank, its best passages.

    Built by ``engine.grouping.group_documents`` (the rules are in that module).
    """

    doc_id: str
    score: float
    rank: int
    passages: list[Hit] = field(default_factory=list)

    @property
    def best(self) -> Hit:
        """The chunk that placed the document (its first passage)."""
        return self.passages[0]


@dataclass(frozen=True, slots=True)
class FacetValue:
    """One value of a metadata field and how many candidate documents have it."""

    value: str | int | float | bool
    count: int


@dataclass(slots=True)
class SearchResponse:
    """Hits best first, per-stage timings in milliseconds and the models that produced them."""

    hits: list[Hit]
    timings_ms: dict[str, float]
    mode: SearchMode
    embedding_model: ModelInfo | None = None
    reranker_model: str | None = None
    # group_by="document": the documents, best first;
    # ``hits`` then holds their passages in the same order.
    documents: list[DocumentHit] | None = None
    # The per-retriever weights fusion used for this query (adaptive fusion: this query's own).
    fusion_weights: dict[str, float] | None = None
    # Paging: where this page starts, and the cursor of the next one (None: no more results).
    offset: int = 0
    next_cursor: str | None = None
    # Facet counts over the query's candidate documents (engine/facets.py), when asked for.
    facets: dict[str, list[FacetValue]] | None = None
