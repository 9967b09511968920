"""``QdrantSparseStore``: BM25 as Qdrant sparse vectors with the IDF modifier.

The second ``SparseStore``, for deployments that outgrow one Tantivy writer: BM25 then lives
in Qdrant (Edge in-process, or a server / cluster with shards and replicas), so the sparse side
scales, replicates and filters exactly like the dense side, and API processes hold no index
files. Scoring is Tantivy's BM25 (``bm25_vectors``) with the same analysis (query stopwords
included); the stored average chunk length is the one approximation.

Writes are buffered until ``commit()``, as in Tantivy, so the ingestion pipeline's ordering
(ledger pending, both stores, commit, ledger indexed) holds unchanged. Qdrant makes each
applied batch durable through its WAL; a crash during ``commit()`` leaves documents that the
ledger still marks pending, and the pipeline's recovery deletes them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from braid.engine.errors import ConfigError, IndexLockedError
from braid.engine.filters import FilterExpr
from braid.engine.models import Chunk, ScoredPoint
from braid.engine.payload import chunk_from_payload, chunk_payload
from braid.engine.qdrant.points import CORE_INDEXES, Point, metadata_index_kinds
from braid.engine.qdrant.protocol import Collection
from braid.engine.sparse.analysis import QueryStopwords, bm25_text
from braid.engine.sparse.bm25_vectors import K1, B, Bm25Encoder

SCORING = "bm25-tantivy-en_stem-blake2b32"
# optimize() rewrites the vectors when the corpus average length moved further than this.
AVG_LEN_TOLERANCE = 0.01
_WRITE_BATCH = 1_000


@dataclass(frozen=True, slots=True)
class _Upsert:
    chunks: list[Chunk]


@dataclass(frozen=True, slots=True)
class _Delete:
    doc_ids: list[str]


class QdrantSparseStore:
    """BM25 over chunks in a Qdrant collection (or Edge shard) of sparse vectors."""

    def __init__(
        self,
        collection: Collection,
        *,
        avg_len: float | None = None,
        read_only: bool = False,
        query_stopwords: QueryStopwords = "english",
    ) -> None:
        """Open the store kept in ``collection``.

        Args:
            collection: a ``Collection`` with the BM25 layout (``qdrant_backends``).
            avg_len: average chunk length (terms) to normalise by when the store is new;
                ``None`` measures it on the first commit.
            read_only: search only (an API reader beside ``braid worker``): never writes,
                not even the manifest, which belongs to the writer.
            query_stopwords: what ``search`` drops from query text (``analysis.query_terms``);
                chunks are stored with every term, so changing it needs no re-index.

        Raises:
            ConfigError: the collection was written with another BM25 scoring scheme, or
                ``query_stopwords`` is not a known option.
        """
        self._collection = collection
        self._read_only = read_only
        self._encoder = Bm25Encoder(K1, B, query_stopwords=query_stopwords)
        self._lock = threading.Lock()
        self._pending: list[_Upsert | _Delete] = []
        stored = collection.manifest()
        if stored is not None and stored.get("scoring") != SCORING:
            raise ConfigError(
                f"the BM25 collection was written with scoring {stored.get('scoring')!r}, "
                f"this braid writes {SCORING!r}: re-index the sparse side"
            )
        self._avg_len: float | None = (stored or {}).get("avg_len") or avg_len
        if not read_only:
            if stored is None:
                collection.write_manifest(self._manifest())
            collection.ensure_indexes(dict(CORE_INDEXES))

    def _manifest(self) -> dict[str, Any]:
        return {"scoring": SCORING, "k1": K1, "b": B, "avg_len": self._avg_len}

    @property
    def avg_len(self) -> float | None:
        """The average chunk length the stored vectors were written with."""
        return self._avg_len

    def _require_writer(self) -> None:
        if self._read_only:
            raise IndexLockedError("this BM25 store is open read-only: braid worker writes it")

    def upsert(self, chunks: Sequence[Chunk]) -> None:
        """Add or replace chunks (by point id); applied at ``commit()``."""
        self._require_writer()
        if chunks:
            with self._lock:
                self._pending.append(_Upsert(list(chunks)))

    def delete_docs(self, doc_ids: Sequence[str]) -> None:
        """Delete every chunk of these documents; applied at ``commit()``."""
        self._require_writer()
        if doc_ids:
            with self._lock:
                self._pending.append(_Delete(list(doc_ids)))

    def rollback(self) -> None:
        """Drop writes buffered since the last commit."""
        with self._lock:
            self._pending.clear()

    def commit(self) -> None:
        """Apply the buffered writes in order; they are then durable and searchable."""
        self._require_writer()
        with self._lock:
            pending, self._pending = self._pending, []
            if self._avg_len is None:
                self._measure_avg_len(
                    [c for op in pending if isinstance(op, _Upsert) for c in op.chunks]
                )
            for op in pending:
                if isinstance(op, _Delete):
                    self._collection.delete_docs(op.doc_ids)
                else:
                    self._write(op.chunks)

    def _measure_avg_len(self, chunks: list[Chunk]) -> None:
        if not chunks:
            return
        total = sum(len(self._encoder.terms(bm25_text(c))) for c in chunks)
        self._avg_len = max(total / len(chunks), 1.0)
        self._collection.write_manifest(self._manifest())

    def _write(self, chunks: list[Chunk]) -> None:
        assert self._avg_len is not None  # measured before the first write
        self._collection.ensure_indexes(metadata_index_kinds(chunks))
        for start in range(0, len(chunks), _WRITE_BATCH):
            batch = chunks[start : start + _WRITE_BATCH]
            self._collection.upsert([self._point(c, self._avg_len) for c in batch])

    def _point(self, chunk: Chunk, avg_len: float) -> Point:
        vector = self._encoder.document(self._encoder.terms(bm25_text(chunk)), avg_len)
        return Point(chunk.point_id, vector, chunk_payload(chunk))

    def analyze(self, text: str) -> list[str]:
        """Terms of query ``text`` as ``search`` scores them (stopwords per the option)."""
        return self._encoder.query_terms(text)

    def search(self, query: str, limit: int, filter: FilterExpr | None = None) -> list[ScoredPoint]:
        """Best ``limit`` chunks by BM25 (k1 1.2, b 0.75), best first, ties by point id.

        The filter is applied inside Qdrant before the top-k is cut, and does not change the
        scores (IDF counts every live chunk, as in Tantivy).
        """
        vector = self._encoder.query(query)
        if not vector.indices or limit <= 0:
            return []
        return self._collection.query(vector, limit, filter)

    def fetch(self, point_ids: Sequence[str]) -> dict[str, Chunk]:
        """Stored chunks by point id; unknown ids are absent."""
        chunks = (chunk_from_payload(r.payload) for r in self._collection.retrieve(point_ids))
        return {c.point_id: c for c in chunks}

    def chunks(self, filter: FilterExpr | None = None) -> Iterable[Chunk]:
        """Every stored chunk matching ``filter``."""
        for record in self._collection.scroll(filter, True):
            yield chunk_from_payload(record.payload)

    def doc_ids(self, filter: FilterExpr | None = None) -> set[str]:
        """Ids of documents with a chunk matching ``filter``."""
        return {str(r.payload["doc_id"]) for r in self._collection.scroll(filter, ["doc_id"])}

    def count(self) -> int:
        """Chunks stored (committed)."""
        return self._collection.count()

    def optimize(self) -> None:
        """Re-measure the average chunk length, rewrite the vectors if it moved, optimize.

        Qdrant's IDF already counts only live chunks; the length normalisation is what
        drifts as a corpus grows or shrinks. Rewriting re-analyses the stored text (no
        embedding), one batch at a time.
        """
        self._require_writer()
        with self._lock:
            lengths = {
                r.id: len(self._encoder.terms(bm25_text(chunk_from_payload(r.payload))))
                for r in self._collection.scroll(None, True)
            }
            if lengths:
                measured = max(sum(lengths.values()) / len(lengths), 1.0)
                old = self._avg_len
                if old is None or abs(measured - old) > AVG_LEN_TOLERANCE * old:
                    self._avg_len = measured
                    self._collection.write_manifest(self._manifest())
                    self._rewrite_all(measured)
            self._collection.optimize()

    def _rewrite_all(self, avg_len: float) -> None:
        batch: list[Point] = []
        for record in self._collection.scroll(None, True):
            batch.append(self._point(chunk_from_payload(record.payload), avg_len))
            if len(batch) >= _WRITE_BATCH:
                self._collection.upsert(batch)
                batch = []
        if batch:
            self._collection.upsert(batch)

    def close(self) -> None:
        """Close the collection (writes not committed are dropped)."""
        with self._lock:
            self._pending.clear()
            self._collection.close()
