"""``TantivySparseStore``: BM25 over chunks in a Tantivy index on disk.

Layout: ``content`` (title + text, ``en_stem``: simple tokenizer, lowercase, English
Snowball stemmer) is the one BM25 field, as Anserini's "flat" BEIR baseline indexes it;
``key_hi``/``key_lo`` are the point id's two 64-bit halves in fast fields, so a hit maps to
its point id without loading the stored document; ``payload`` keeps the chunk for ``fetch``;
``meta``/``num``/``dt`` hold metadata for filtering (see ``tantivy_filters``). Query text
may drop English stopwords (``analysis.query_terms``); the index keeps every term, so that
choice needs no re-index.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path

import tantivy

from braid.engine.errors import BackendUnavailableError, IndexLockedError
from braid.engine.filters import FilterExpr, iso_to_epoch
from braid.engine.models import Chunk, ScoredPoint
from braid.engine.payload import chunk_from_payload, chunk_payload
from braid.engine.sparse.analysis import (
    QueryStopwords,
    bm25_text,
    checked_query_stopwords,
    query_terms,
)
from braid.engine.sparse.tantivy_filters import meta_string, ordered_code, to_tantivy_query

BM25_FIELD = "content"
WRITER_HEAP_BYTES = 128_000_000
_SCROLL_PAGE = 10_000


def build_schema() -> tantivy.Schema:
    """The index schema (changing it needs a re-index)."""
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("point_id", stored=False, tokenizer_name="raw", index_option="basic")
    builder.add_text_field("doc_id", stored=False, tokenizer_name="raw", index_option="basic")
    builder.add_unsigned_field("key_hi", stored=False, indexed=False, fast=True)
    builder.add_unsigned_field("key_lo", stored=False, indexed=False, fast=True)
    builder.add_text_field(BM25_FIELD, stored=False, tokenizer_name="en_stem", index_option="freq")
    builder.add_json_field("meta", stored=False, tokenizer_name="raw", index_option="basic")
    builder.add_json_field(
        "num", stored=False, fast=True, tokenizer_name="raw", index_option="basic"
    )
    builder.add_json_field(
        "dt", stored=False, fast=True, tokenizer_name="raw", index_option="basic"
    )
    builder.add_bytes_field("payload", stored=True, indexed=False)
    return builder.build()


class TantivySparseStore:
    """BM25 store on a Tantivy index directory; one writer per index (a file lock)."""

    def __init__(
        self,
        path: str | Path,
        *,
        read_only: bool = False,
        writer_threads: int = 1,
        query_stopwords: QueryStopwords = "english",
    ) -> None:
        """Open or create the index at ``path``.

        Args:
            path: index directory (created when missing).
            read_only: open without a writer (another process writes; call ``reload()``).
            writer_threads: Tantivy indexing threads.
            query_stopwords: what ``search`` drops from query text (``analysis.query_terms``);
                chunks are indexed with every term, so changing it needs no re-index.

        Raises:
            IndexLockedError: another process holds the writer lock.
            BackendUnavailableError: the directory is not a compatible index.
            ConfigError: ``query_stopwords`` is not a known option.
        """
        self._query_stopwords = checked_query_stopwords(query_stopwords)
        self._path = Path(path)
        self._path.mkdir(parents=True, exist_ok=True)
        try:
            self._index = tantivy.Index(build_schema(), path=str(self._path), reuse=True)
        except ValueError as exc:
            raise BackendUnavailableError(
                f"cannot open Tantivy index at {self._path}: {exc}"
            ) from exc
        self._schema = self._index.schema
        self._lock = threading.Lock()
        self._writer: tantivy.IndexWriter | None = None
        self._read_only = read_only
        self._writer_threads = writer_threads
        if not read_only:
            self._writer = self._open_writer()
        self._index.reload()

    def _open_writer(self) -> tantivy.IndexWriter:
        try:
            return self._index.writer(heap_size=WRITER_HEAP_BYTES, num_threads=self._writer_threads)
        except ValueError as exc:
            if "LockBusy" in str(exc):
                raise IndexLockedError(
                    f"the Tantivy index at {self._path} is being written by another process"
                ) from exc
            raise BackendUnavailableError(str(exc)) from exc

    @property
    def path(self) -> Path:
        return self._path

    def _require_writer(self) -> tantivy.IndexWriter:
        if self._writer is None:
            raise IndexLockedError(f"the Tantivy index at {self._path} is open read-only")
        return self._writer

    def upsert(self, chunks: Sequence[Chunk]) -> None:
        """Add chunks, replacing any stored chunk with the same point id (visible after commit)."""
        writer = self._require_writer()
        with self._lock:
            for chunk in chunks:
                writer.delete_documents_by_term("point_id", chunk.point_id)
                writer.add_document(self._document(chunk))

    def _document(self, chunk: Chunk) -> tantivy.Document:
        key = uuid.UUID(chunk.point_id).int
        doc = tantivy.Document()
        doc.add_text("point_id", chunk.point_id)
        doc.add_text("doc_id", chunk.doc_id)
        doc.add_unsigned("key_hi", key >> 64)
        doc.add_unsigned("key_lo", key & 0xFFFF_FFFF_FFFF_FFFF)
        doc.add_text(BM25_FIELD, bm25_text(chunk))
        meta, num, dt = _split_metadata(chunk)
        if meta:
            doc.add_json("meta", meta)
        if num:
            doc.add_json("num", num)
        if dt:
            doc.add_json("dt", dt)
        doc.add_bytes("payload", json.dumps(chunk_payload(chunk)).encode())
        return doc

    def delete_docs(self, doc_ids: Sequence[str]) -> None:
        """Delete every chunk of these documents (visible after commit)."""
        writer = self._require_writer()
        with self._lock:
            for doc_id in doc_ids:
                writer.delete_documents_by_term("doc_id", doc_id)

    def commit(self) -> None:
        """Make buffered writes durable and visible to searches."""
        writer = self._require_writer()
        with self._lock:
            writer.commit()
        self._index.reload()

    def rollback(self) -> None:
        """Drop writes buffered since the last commit."""
        writer = self._require_writer()
        with self._lock:
            writer.rollback()

    def reload(self) -> None:
        """See the latest commit (a reader whose writer lives in another process)."""
        self._index.reload()

    def analyze(self, text: str) -> list[str]:
        """Terms of query ``text`` as ``search`` scores them (stopwords per the option).

        The surviving terms are exactly the index's (``en_stem``); with ``"none"``, or a query
        of stopwords only, they are all of them.
        """
        return query_terms(text, self._query_stopwords)

    def search(self, query: str, limit: int, filter: FilterExpr | None = None) -> list[ScoredPoint]:
        """Best ``limit`` chunks by BM25 (k1 1.2, b 0.75), best first.

        Every query term is an OR-ed term query on ``content`` (no query syntax, so user text
        cannot fail to parse); a repeated term is one clause per occurrence, so its score
        counts once per occurrence, as the Qdrant store's query vector does. The filter is a
        zero-score required clause: it restricts the candidates before top-k and leaves BM25
        scores unchanged.
        """
        terms = self.analyze(query)
        if not terms or limit <= 0:
            return []
        text_query = tantivy.Query.boolean_query(
            [
                (tantivy.Occur.Should, tantivy.Query.term_query(self._schema, BM25_FIELD, term))
                for term in terms
            ]
        )
        if filter is not None:
            text_query = tantivy.Query.boolean_query(
                [
                    (tantivy.Occur.Must, text_query),
                    (
                        tantivy.Occur.Must,
                        tantivy.Query.const_score_query(to_tantivy_query(filter, self._index), 0.0),
                    ),
                ]
            )
        searcher = self._index.searcher()
        hits = searcher.search(text_query, limit, count=False).hits
        return _sorted(
            zip(self._point_ids(searcher, [a for _, a in hits]), (s for s, _ in hits), strict=True)
        )

    @staticmethod
    def _point_ids(searcher: tantivy.Searcher, addresses: list[tantivy.DocAddress]) -> list[str]:
        his = searcher.fast_field_values("key_hi", addresses)
        los = searcher.fast_field_values("key_lo", addresses)
        # Both fields are u64 fast fields present on every document: never None here.
        return [
            _uuid_text(int(hi), int(lo))  # type: ignore[arg-type]
            for hi, lo in zip(his, los, strict=True)
        ]

    def fetch(self, point_ids: Sequence[str]) -> dict[str, Chunk]:
        """Stored chunks by point id."""
        if not point_ids:
            return {}
        query = tantivy.Query.term_set_query(self._schema, "point_id", list(point_ids))
        return {c.point_id: c for c in self._stored(query, len(point_ids))}

    def _stored(self, query: tantivy.Query, limit: int) -> Iterable[Chunk]:
        searcher = self._index.searcher()
        for _, address in searcher.search(query, limit, count=False).hits:
            raw = searcher.doc(address).get_first("payload")
            yield chunk_from_payload(json.loads(bytes(raw or b"")))

    def chunks(
        self, filter: FilterExpr | None = None, searcher: tantivy.Searcher | None = None
    ) -> Iterable[Chunk]:
        """Every stored chunk matching ``filter`` (all of them without one).

        ``searcher`` pins a snapshot: it keeps seeing the same chunks whatever is written.
        """
        query = (
            tantivy.Query.all_query() if filter is None else to_tantivy_query(filter, self._index)
        )
        searcher = searcher or self._index.searcher()
        total = int(searcher.search(query, 1, count=True).count)  # type: ignore[attr-defined]
        offset = 0
        while offset < total:
            page = searcher.search(query, _SCROLL_PAGE, count=False, offset=offset).hits
            for _, address in page:
                yield chunk_from_payload(
                    json.loads(bytes(searcher.doc(address).get_first("payload") or b""))
                )
            offset += _SCROLL_PAGE

    def doc_ids(self, filter: FilterExpr | None = None) -> set[str]:
        """Ids of documents with a chunk matching ``filter``."""
        return {chunk.doc_id for chunk in self.chunks(filter)}

    def count(self) -> int:
        """Live (not deleted) chunks in the last committed state."""
        return int(self._index.searcher().num_docs)

    def num_segments(self) -> int:
        return int(self._index.searcher().num_segments)

    def optimize(self) -> None:
        """Compact the index: rewrite every live chunk and drop deleted ones.

        Tantivy keeps deleted documents in its segments, and in BM25's document counts and
        average length, until a merge rewrites them; its default merge policy never merges
        for deletes alone, and the Python binding exposes no merge call. So compaction
        deletes everything and re-adds the live chunks in one commit: atomic (a crash
        before the commit leaves the old index as it was), and fully-deleted segments are
        dropped at the commit. Costs a re-index of the sparse side, not an embedding.
        """
        writer = self._require_writer()
        with self._lock:
            writer.commit()
            self._index.reload()
            snapshot = self._index.searcher()  # streams the live chunks while we rewrite
            writer.delete_all_documents()
            for chunk in self.chunks(searcher=snapshot):
                writer.add_document(self._document(chunk))
            writer.commit()
            writer.garbage_collect_files()
        self._index.reload()

    def close(self) -> None:
        """Release the writer lock (uncommitted writes are dropped)."""
        with self._lock:
            if self._writer is not None:
                self._writer.rollback()
                self._writer.wait_merging_threads()
                self._writer = None


def _split_metadata(
    chunk: Chunk,
) -> tuple[dict[str, object], dict[str, int], dict[str, int | list[int]]]:
    meta: dict[str, object] = {}
    num: dict[str, int] = {}
    dt: dict[str, int | list[int]] = {}
    for key, value in chunk.metadata.items():
        if isinstance(value, bool):
            meta[key] = value
        elif isinstance(value, list):
            meta[key] = [meta_string(v) for v in value]
            # A date range matches a list holding a date in range, as in Qdrant.
            codes = [ordered_code(e) for v in value if (e := iso_to_epoch(v)) is not None]
            if codes:
                dt[key] = codes
        elif isinstance(value, int | float):
            num[key] = ordered_code(float(value))
        else:
            meta[key] = meta_string(value)
            if (epoch := iso_to_epoch(value)) is not None:
                dt[key] = ordered_code(epoch)
    return meta, num, dt


def _sorted(pairs: Iterable[tuple[str, float]]) -> list[ScoredPoint]:
    return [
        ScoredPoint(pid, float(score)) for pid, score in sorted(pairs, key=lambda p: (-p[1], p[0]))
    ]


def _uuid_text(hi: int, lo: int) -> str:
    """``str(uuid.UUID(int=hi << 64 | lo))`` without building the UUID: a search turns up to
    ``limit`` ids per query into text, and ``UUID``'s checks cost 3x this formatting."""
    digits = f"{hi:016x}{lo:016x}"
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"
