"""The ingestion pipeline: read -> chunk -> embed -> write, pipelined and crash-safe.

Three threads share the work: a reader chunks documents and skips unchanged ones, the
calling thread embeds (torch uses the cores), a writer writes Qdrant, Tantivy and the ledger,
so writing overlaps with encoding. Queues between them are bounded, so memory stays flat on
any input size.

Crash safety, per group of documents:
1. the ledger marks them ``pending`` (committed);
2. their old chunks are deleted from both stores and the new ones written;
3. Tantivy commits, then the ledger marks them ``indexed``.
A crash anywhere leaves them ``pending``; ``recover()`` (run at the start of every ingest)
deletes pending documents from both stores and the ledger, and re-running the input adds
them again. Point ids are deterministic, so replays overwrite rather than duplicate.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from braid.engine.config import (
    ChunkingSettings,
    MaintenanceSettings,
    MetadataSettings,
    Settings,
)
from braid.engine.errors import ModelsNotLoadedError
from braid.engine.filters import FilterExpr
from braid.engine.metadata import metadata_over_limits
from braid.engine.models import Chunk
from braid.engine.protocols import DenseStore, Embedder, SparseStore, Vectors
from braid.ingestion.documents import InputError, SkippedFile, SourceDocument
from braid.ingestion.ledger import Ledger
from braid.ingestion.readers import ReadItem, without_duplicates

if TYPE_CHECKING:
    # Only for types: chunking imports transformers, which a pipeline opened without models
    # (deletes, compaction) never needs.
    from braid.ingestion.chunking import TokenChunker

DELETED_CHUNKS_KEY = "deleted_chunks_since_compaction"
CHUNKING_KEY = "chunking"
_DONE = object()
_CHUNKING = ChunkingSettings()
_METADATA = MetadataSettings()


@dataclass(frozen=True, slots=True)
class DocumentLimits:
    """Per-document limits; a document over one is an input error, the others still load.

    ``None`` turns the character or chunk limit off. The defaults are the settings' own
    (``chunking.max_document_chars``, ``chunking.max_chunks_per_document``,
    ``metadata.max_keys``, ``metadata.max_value_chars``).
    """

    max_document_chars: int | None = _CHUNKING.max_document_chars
    max_chunks: int | None = _CHUNKING.max_chunks_per_document
    max_metadata_keys: int = _METADATA.max_keys
    max_value_chars: int = _METADATA.max_value_chars

    @classmethod
    def from_settings(cls, settings: Settings) -> DocumentLimits:
        return cls(
            max_document_chars=settings.chunking.max_document_chars,
            max_chunks=settings.chunking.max_chunks_per_document,
            max_metadata_keys=settings.metadata.max_keys,
            max_value_chars=settings.metadata.max_value_chars,
        )


@dataclass
class IngestReport:
    """What a run did; ``errors`` are ``file:line: reason`` strings."""

    documents: int = 0
    chunks: int = 0
    skipped_unchanged: int = 0
    deleted: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    stopped_early: bool = False
    skipped_files: list[str] = field(default_factory=list)  # "path: reason", not errors

    def as_dict(self) -> dict[str, object]:
        return {
            "documents": self.documents,
            "chunks": self.chunks,
            "skipped_unchanged": self.skipped_unchanged,
            "deleted": self.deleted,
            "errors": self.errors,
            "skipped_files": self.skipped_files,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True, slots=True)
class Progress:
    documents: int
    chunks: int
    skipped: int
    errors: int


@dataclass(slots=True)
class _Batch:
    docs: list[SourceDocument]
    chunks: list[Chunk]
    replaced: int  # documents whose previous version is being replaced
    replaced_chunks: int  # chunks of those previous versions, deleted by this batch


class IngestPipeline:
    """Writes documents to both stores and the ledger, idempotently.

    Opened without a chunker (a workspace without models), it deletes, compacts and
    optimizes; ``run`` and ``chunker`` raise ``ModelsNotLoadedError``.
    """

    def __init__(
        self,
        embedder: Embedder,
        dense: DenseStore,
        sparse: SparseStore,
        ledger: Ledger,
        chunker: TokenChunker | None,
        *,
        batch_size: int = 64,
        commit_every: int = 4096,
        limits: DocumentLimits | None = None,
        maintenance: MaintenanceSettings | None = None,
    ) -> None:
        self.embedder = embedder
        # Documents over a limit are refused as input errors: one 5 MB file would otherwise
        # become thousands of chunks and many minutes of embedding without a word.
        self.limits = limits or DocumentLimits()
        self.maintenance = maintenance or MaintenanceSettings()
        self.dense = dense
        self.sparse = sparse
        self.ledger = ledger
        self._chunker = chunker
        self.batch_size = batch_size
        self.commit_every = commit_every
        self._rechunk_all = False

    @property
    def chunker(self) -> TokenChunker:
        """The token chunker (it measures with the embedding model's tokenizer).

        Raises:
            ModelsNotLoadedError: the pipeline was opened without models.
        """
        if self._chunker is None:
            raise ModelsNotLoadedError(
                "ingesting needs the embedding model and its tokenizer, but the workspace "
                "was opened without models (models=False)"
            )
        return self._chunker

    # -- recovery, deletes, maintenance -------------------------------------------------

    def recover(self) -> int:
        """Remove documents a crashed run left half-written; returns how many."""
        pending = self.ledger.doc_ids("pending")
        if pending:
            self._delete_everywhere(pending)
        return len(pending)

    def _delete_everywhere(self, doc_ids: Sequence[str]) -> None:
        entries = self.ledger.lookup(doc_ids)
        self.dense.delete_docs(doc_ids)
        self.sparse.delete_docs(doc_ids)
        self.sparse.commit()
        self.ledger.remove(doc_ids)
        self._note_deleted(sum(e.chunk_count for e in entries.values()))

    def _note_deleted(self, chunks: int) -> None:
        total = int(self.ledger.get_meta(DELETED_CHUNKS_KEY, "0")) + chunks
        self.ledger.set_meta(DELETED_CHUNKS_KEY, str(total))

    def delete(self, doc_ids: Sequence[str]) -> list[str]:
        """Delete documents from both stores and the ledger; returns the ids that existed."""
        known = sorted(self.ledger.lookup(list(doc_ids)))
        stray = sorted(set(doc_ids) - set(known))
        if stray:
            # Not in the ledger, but possibly in a store (an index built elsewhere): delete anyway.
            self.dense.delete_docs(stray)
            self.sparse.delete_docs(stray)
        if known or stray:
            self._delete_everywhere(known)
        return known

    def delete_by_filter(self, expr: FilterExpr) -> list[str]:
        """Delete every document with a chunk matching ``expr``; returns their ids."""
        doc_ids = sorted(self.dense.doc_ids(expr) | self.sparse.doc_ids(expr))
        if doc_ids:
            self.delete(doc_ids)
        return doc_ids

    def maybe_compact(self, force: bool = False) -> bool:
        """Compact Tantivy if enough chunks were deleted since the last compaction (both
        ``maintenance`` thresholds met), or when ``force``; returns whether it compacted."""
        deleted = int(self.ledger.get_meta(DELETED_CHUNKS_KEY, "0"))
        live = self.sparse.count()
        m = self.maintenance
        enough = deleted >= m.compact_min_deleted_chunks and deleted >= (
            m.compact_deleted_ratio * live
        )
        if not force and (not enough or deleted == 0):
            return False
        self.sparse.optimize()
        self.ledger.set_meta(DELETED_CHUNKS_KEY, "0")
        return True

    def optimize(self) -> None:
        """``braid optimize``: compact Tantivy and build Qdrant's indexes."""
        self.maybe_compact(force=True)
        self.dense.optimize()

    # -- the run ------------------------------------------------------------------------

    def run(
        self,
        records: Iterable[ReadItem],
        *,
        strict: bool = False,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> IngestReport:
        """Ingest every record; bad records are reported (or stop the run when ``strict``)."""
        started = time.perf_counter()
        report = IngestReport()
        self.recover()
        # Chunking settings changed since the stored chunks were cut: nothing is unchanged.
        self._rechunk_all = self.ledger.get_meta(CHUNKING_KEY, self.chunker.fingerprint) != (
            self.chunker.fingerprint
        )
        batches: queue.Queue[object] = queue.Queue(maxsize=4)
        encoded: queue.Queue[object] = queue.Queue(maxsize=4)
        stop = threading.Event()
        failures: list[BaseException] = []
        lock = threading.Lock()

        def progress() -> None:
            if on_progress is not None:
                with lock:
                    snapshot = Progress(
                        report.documents,
                        report.chunks,
                        report.skipped_unchanged,
                        len(report.errors),
                    )
                on_progress(snapshot)

        def read() -> None:
            try:
                self._read(records, report, strict, stop, batches, lock, progress)
            except BaseException as exc:  # surfaced in the calling thread
                failures.append(exc)
                stop.set()
            finally:
                batches.put(_DONE)

        def write() -> None:
            try:
                self._write(encoded, report, lock, progress)
            except BaseException as exc:
                failures.append(exc)
                stop.set()
                while encoded.get() is not _DONE:  # unblock the encoder
                    pass

        reader = threading.Thread(target=read, name="braid-read", daemon=True)
        writer = threading.Thread(target=write, name="braid-write", daemon=True)
        reader.start()
        writer.start()
        try:
            while (item := batches.get()) is not _DONE:
                if stop.is_set() and failures:
                    continue  # drain so the reader can finish
                todo: _Batch = item  # type: ignore[assignment]
                texts = [self.chunker.embed_input(c) for c in todo.chunks]
                vectors = self.embedder.encode_passages(texts, batch_size=self.batch_size)
                encoded.put((todo, vectors))
        finally:
            encoded.put(_DONE)
            reader.join()
            writer.join()
        if failures:
            raise failures[0]
        if not (strict and report.errors):
            self.ledger.set_meta(CHUNKING_KEY, self.chunker.fingerprint)
        self._after_load(report)
        report.stopped_early = strict and bool(report.errors)
        report.seconds = time.perf_counter() - started
        return report

    def _read(
        self,
        records: Iterable[ReadItem],
        report: IngestReport,
        strict: bool,
        stop: threading.Event,
        out: queue.Queue[object],
        lock: threading.Lock,
        progress: Callable[[], None],
    ) -> None:
        pending: list[SourceDocument] = []
        window = self.batch_size * 4  # chunks per hand-off: enough to group by length

        def flush() -> None:
            if pending:
                batch = self._prepare(pending, report, lock)
                if batch.chunks:
                    out.put(batch)
                else:
                    progress()
                pending.clear()

        chunk_estimate = 0
        for record in without_duplicates(records):
            if stop.is_set():
                break
            if isinstance(record, SkippedFile):
                with lock:
                    report.skipped_files.append(str(record))
                continue
            if not isinstance(record, InputError):
                record = self._within_limits(record)
            if isinstance(record, InputError):
                with lock:
                    report.errors.append(str(record))
                if strict:
                    break
                continue
            pending.append(record)
            chunk_estimate += 1 + len(record.text) // 1000
            if chunk_estimate >= window:
                flush()
                chunk_estimate = 0
        flush()

    def _within_limits(self, doc: SourceDocument) -> SourceDocument | InputError:
        limits = self.limits
        origin = doc.origin or doc.doc_id
        chars = limits.max_document_chars
        if chars is not None and len(doc.text) > chars:
            return InputError(
                origin,
                f"document {doc.doc_id!r} has {len(doc.text):,} characters, more than "
                f"chunking.max_document_chars ({chars:,}): split it, or raise "
                "BRAID_CHUNKING__MAX_DOCUMENT_CHARS",
            )
        over = metadata_over_limits(
            doc.metadata, max_keys=limits.max_metadata_keys, max_value_chars=limits.max_value_chars
        )
        if over is not None:
            return InputError(origin, f"document {doc.doc_id!r}: {over[0]}")
        return doc

    def _too_many_chunks(self, doc: SourceDocument, count: int) -> InputError | None:
        limit = self.limits.max_chunks
        if limit is None or count <= limit:
            return None
        return InputError(
            doc.origin or doc.doc_id,
            f"document {doc.doc_id!r} makes {count:,} chunks, more than "
            f"chunking.max_chunks_per_document ({limit:,}): split it, or raise "
            "BRAID_CHUNKING__MAX_CHUNKS_PER_DOCUMENT",
        )

    def _prepare(
        self, docs: list[SourceDocument], report: IngestReport, lock: threading.Lock
    ) -> _Batch:
        known = self.ledger.lookup([d.doc_id for d in docs])
        model = self.embedder.info
        fresh: list[SourceDocument] = []
        chunks: list[Chunk] = []
        replaced = 0
        replaced_chunks = 0
        skipped = 0
        refusals: list[str] = []
        for doc in docs:
            entry = known.get(doc.doc_id)
            if (
                entry is not None
                and entry.state == "indexed"
                and entry.content_hash == doc.content_hash
                and entry.model_id == model.model_id
                and entry.model_version == model.version
                and not self._rechunk_all
            ):
                skipped += 1
                continue
            doc_chunks = self.chunker.chunk(doc)
            refused = self._too_many_chunks(doc, len(doc_chunks))
            if refused is not None:
                # Refused before any write: a stored earlier version stays as it was.
                refusals.append(str(refused))
                continue
            if entry is not None:
                replaced += 1
                replaced_chunks += entry.chunk_count
            fresh.append(doc)
            chunks.extend(doc_chunks)
        with lock:
            report.skipped_unchanged += skipped
            report.errors.extend(refusals)
        return _Batch(docs=fresh, chunks=chunks, replaced=replaced, replaced_chunks=replaced_chunks)

    def _write(
        self,
        encoded: queue.Queue[object],
        report: IngestReport,
        lock: threading.Lock,
        progress: Callable[[], None],
    ) -> None:
        model = self.embedder.info
        uncommitted: list[str] = []
        uncommitted_chunks = 0
        while (item := encoded.get()) is not _DONE:
            batch: _Batch
            vectors: Vectors
            batch, vectors = item  # type: ignore[misc]
            counts: dict[str, int] = {}
            for chunk in batch.chunks:
                counts[chunk.doc_id] = counts.get(chunk.doc_id, 0) + 1
            doc_ids = [d.doc_id for d in batch.docs]
            self.ledger.mark_pending(
                ((d.doc_id, d.content_hash, counts.get(d.doc_id, 0)) for d in batch.docs),
                model.model_id,
                model.version,
            )
            self.dense.delete_docs(doc_ids)
            self.sparse.delete_docs(doc_ids)
            self.dense.upsert(batch.chunks, vectors)
            self.sparse.upsert(batch.chunks)
            self._note_deleted(batch.replaced_chunks)
            uncommitted.extend(doc_ids)
            uncommitted_chunks += len(batch.chunks)
            with lock:
                report.documents += len(batch.docs)
                report.chunks += len(batch.chunks)
                report.deleted += batch.replaced
            if uncommitted_chunks >= self.commit_every:
                self._commit(uncommitted)
                uncommitted, uncommitted_chunks = [], 0
            progress()
        if uncommitted:
            self._commit(uncommitted)

    def _commit(self, doc_ids: list[str]) -> None:
        self.sparse.commit()
        self.ledger.mark_indexed(doc_ids)

    def _after_load(self, report: IngestReport) -> None:
        self.maybe_compact()
        if report.chunks >= self.maintenance.optimize_min_new_points:
            self.dense.optimize()
