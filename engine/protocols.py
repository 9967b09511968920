"""The replaceable parts of the engine, as Protocols whose docstrings are the contract.

Every implementation is run through the same contract-test class (``tests/engine``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from braid.engine.filters import FilterExpr
from braid.engine.models import Chunk, ModelInfo, ScoredPoint

Vectors = npt.NDArray[np.float32]


@runtime_checkable
class Embedder(Protocol):
    """Turns text into L2-normalised float32 vectors.

    ``encode_queries`` and ``encode_passages`` apply the model's query/passage prefixes
    (E5/BGE style; empty for models that need none). Inputs longer than
    ``max_seq_length`` tokens are truncated by the model: callers that must not lose text
    (ingestion) measure with ``count_tokens`` first.
    """

    @property
    def info(self) -> ModelInfo: ...

    @property
    def max_seq_length(self) -> int: ...

    @property
    def passage_prefix(self) -> str: ...

    def encode_queries(self, texts: Sequence[str]) -> Vectors: ...

    def encode_passages(self, texts: Sequence[str], batch_size: int | None = None) -> Vectors: ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens each text takes in the model, special tokens included."""
        ...


@runtime_checkable
class DenseStore(Protocol):
    """Vectors of chunks with their payload, searchable by cosine similarity.

    The store records the embedding model that built it; opening it with another model id,
    version or dimension raises ``ModelMismatchError``. Opened without a model, it serves the
    model its manifest records (``model`` is ``None`` while the store is empty and new: it
    then reads as empty and refuses writes). Point ids are ``Chunk.point_id``, so
    upserting a chunk twice keeps one copy. Filters are applied inside the engine before
    the top-k is cut (pre-filtering). Backend errors surface as ``BraidError`` subclasses.
    """

    @property
    def model(self) -> ModelInfo | None:
        """The model the stored vectors come from; ``None``: a new store opened without one."""
        ...

    def upsert(self, chunks: Sequence[Chunk], vectors: Vectors) -> None: ...

    def delete_docs(self, doc_ids: Sequence[str]) -> None: ...

    def search(
        self, vector: Vectors, limit: int, filter: FilterExpr | None = None
    ) -> list[ScoredPoint]:
        """Best ``limit`` chunks by cosine similarity, best first, ties by point id."""
        ...

    def fetch(self, point_ids: Sequence[str]) -> dict[str, Chunk]:
        """Stored chunks by point id; unknown ids are absent from the result."""
        ...

    def doc_ids(self, filter: FilterExpr | None = None) -> set[str]:
        """Ids of the documents with at least one chunk matching ``filter``."""
        ...

    def metadata_fields(self) -> set[str]:
        """Metadata fields that some stored chunk has."""
        ...

    def count(self) -> int:
        """Number of chunks (points)."""
        ...

    def optimize(self) -> None:
        """Build the vector and payload indexes now (after bulk loads)."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class SparseStore(Protocol):
    """BM25 over chunk titles and text, with the same metadata filters as the dense side.

    Writes are buffered until ``commit()``, which also makes them visible to searches.
    A filter restricts the candidates without changing their BM25 scores.
    """

    def upsert(self, chunks: Sequence[Chunk]) -> None: ...

    def delete_docs(self, doc_ids: Sequence[str]) -> None: ...

    def commit(self) -> None: ...

    def search(self, query: str, limit: int, filter: FilterExpr | None = None) -> list[ScoredPoint]:
        """Best ``limit`` chunks by BM25, best first, ties by point id."""
        ...

    def fetch(self, point_ids: Sequence[str]) -> dict[str, Chunk]: ...

    def analyze(self, text: str) -> list[str]:
        """Terms of query ``text`` as ``search`` scores them (for highlighting)."""
        ...

    def chunks(self, filter: FilterExpr | None = None) -> Iterable[Chunk]:
        """Every stored chunk matching ``filter`` (re-indexing reads the corpus back here)."""
        ...

    def doc_ids(self, filter: FilterExpr | None = None) -> set[str]: ...

    def count(self) -> int: ...

    def optimize(self) -> None:
        """Merge segments and drop deleted documents from the BM25 statistics."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class Reranker(Protocol):
    """Scores (query, passage) pairs; higher is more relevant."""

    @property
    def model_id(self) -> str: ...

    def score(self, query: str, passages: Sequence[str]) -> list[float]: ...
