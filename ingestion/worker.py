"""The ingestion worker: a durable job queue in the data dir and one thread that drains it.

The REST API accepts documents and deletes as *jobs*: each is a row in ``jobs.sqlite`` (WAL,
committed before the client gets its job id), so a job survives a crash or a restart. One
``IngestWorker`` thread, in the process that owns the data dir, runs the jobs one at a time in
the order they were submitted, through the same ``IngestPipeline`` as ``braid ingest``: a delete
submitted after an upsert of the same document always runs after it.

A job that was running when the process stopped is queued again at the next start; the
pipeline's own recovery removes whatever it had half-written, and re-running it is idempotent
(unchanged documents are skipped, point ids are deterministic).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, cast

from braid.engine.errors import BraidError
from braid.engine.filters import parse_filter
from braid.engine.models import MetadataValue
from braid.ingestion.documents import SourceDocument
from braid.ingestion.pipeline import IngestPipeline, Progress

JOBS_FILE = "jobs.sqlite"
JobKind = Literal["upsert", "delete", "delete_filter"]
JobState = Literal["queued", "running", "done", "failed"]
JOB_STATES: tuple[JobState, ...] = ("queued", "running", "done", "failed")
WorkerState = Literal["starting", "idle", "running", "stopping", "stopped"]
# Finished jobs kept for status queries; older ones are pruned (their ids then answer 404).
KEEP_FINISHED_JOBS = 10_000
# Progress of a running job is written to SQLite at most this often.
PROGRESS_INTERVAL_S = 0.25
_log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('upsert', 'delete', 'delete_filter')),
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
    items INTEGER NOT NULL,
    payload TEXT,
    progress TEXT NOT NULL DEFAULT '{}',
    result TEXT,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, seq);
"""
_COLUMNS = (
    "id, kind, state, items, progress, result, error, attempts, created_at, started_at, finished_at"
)


class QueueFullError(BraidError):
    """The job queue holds its maximum number of unfinished jobs; retry later."""


class JobNotFoundError(BraidError):
    """No job has this id (never submitted, or pruned long after it finished)."""


def _now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass(frozen=True, slots=True)
class JobProgress:
    """How far a job got: documents written, chunks written, unchanged skipped, bad records."""

    documents: int = 0
    chunks: int = 0
    skipped: int = 0
    errors: int = 0


@dataclass(frozen=True, slots=True)
class Job:
    """One queued write: its state, progress and, once finished, its result or error."""

    id: str
    kind: JobKind
    state: JobState
    items: int  # documents to upsert or ids to delete (0 for a delete by filter)
    progress: JobProgress
    result: dict[str, object] | None
    error: str | None
    attempts: int
    created_at: str
    started_at: str | None
    finished_at: str | None

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed")


def _job_from_row(row: tuple[object, ...]) -> Job:
    (job_id, kind, state, items, progress, result, error, attempts, created, started, finished) = (
        row
    )
    return Job(
        id=str(job_id),
        kind=cast(JobKind, kind),
        state=cast(JobState, state),
        items=int(cast(int, items)),
        progress=JobProgress(**json.loads(str(progress))),
        result=json.loads(str(result)) if result is not None else None,
        error=None if error is None else str(error),
        attempts=int(cast(int, attempts)),
        created_at=str(created),
        started_at=None if started is None else str(started),
        finished_at=None if finished is None else str(finished),
    )


def document_payload(doc: SourceDocument) -> dict[str, object]:
    """The JSON form a document is queued in (metadata already validated)."""
    return {"id": doc.doc_id, "text": doc.text, "title": doc.title, "metadata": dict(doc.metadata)}


def document_from_payload(raw: Mapping[str, object], origin: str) -> SourceDocument:
    return SourceDocument(
        doc_id=str(raw["id"]),
        text=str(raw["text"]),
        title=str(raw.get("title") or ""),
        metadata=cast(Mapping[str, MetadataValue], raw.get("metadata") or {}),
        origin=origin,
    )


class JobQueue:
    """Durable FIFO of write jobs in ``data_dir/jobs.sqlite`` (WAL; safe across processes).

    Any process may submit and read jobs; only the data dir's owner runs a worker on them.
    """

    def __init__(self, path: Path, *, max_unfinished: int = 1000) -> None:
        self.path = path
        self.max_unfinished = max_unfinished
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._conn().executescript(_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            # Autocommit mode: every transaction below is an explicit BEGIN IMMEDIATE.
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            # FULL: a job id handed to a client must survive a power cut, not only a crash.
            conn.execute("PRAGMA synchronous=FULL")
            self._local.conn = conn
        return conn

    def _transaction(self) -> _Transaction:
        return _Transaction(self._conn())

    # -- submitting ----------------------------------------------------------------------

    def _submit(self, kind: JobKind, items: int, payload: object) -> Job:
        job_id = uuid.uuid4().hex
        text = json.dumps(payload, ensure_ascii=False)
        with self._transaction() as conn:
            (unfinished,) = conn.execute(
                "SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running')"
            ).fetchone()
            if unfinished >= self.max_unfinished:
                raise QueueFullError(
                    f"the ingestion queue holds {unfinished} unfinished jobs (the maximum); "
                    "retry when some have finished"
                )
            conn.execute(
                "INSERT INTO jobs (id, kind, state, items, payload, created_at) "
                "VALUES (?, ?, 'queued', ?, ?, ?)",
                (job_id, kind, items, text, _now()),
            )
        return self.get(job_id)

    def submit_upsert(self, documents: Sequence[SourceDocument]) -> Job:
        """Queue documents to be chunked, embedded and written (replacing older versions)."""
        return self._submit("upsert", len(documents), [document_payload(d) for d in documents])

    def submit_delete(self, doc_ids: Sequence[str]) -> Job:
        """Queue the deletion of documents by id."""
        return self._submit("delete", len(doc_ids), {"doc_ids": list(doc_ids)})

    def submit_delete_filter(self, raw_filter: Mapping[str, object]) -> Job:
        """Queue the deletion of every document matching a filter (checked by the caller)."""
        return self._submit("delete_filter", 0, {"filter": dict(raw_filter)})

    # -- reading -------------------------------------------------------------------------

    def get(self, job_id: str) -> Job:
        row = (
            self._conn().execute(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        )
        if row is None:
            raise JobNotFoundError(f"no job {job_id!r}")
        return _job_from_row(row)

    def list(self, state: JobState | None = None, limit: int = 50) -> list[Job]:
        """Most recent jobs first."""
        where = " WHERE state = ?" if state else ""
        params: tuple[object, ...] = (state, limit) if state else (limit,)
        rows = self._conn().execute(
            f"SELECT {_COLUMNS} FROM jobs{where} ORDER BY seq DESC LIMIT ?", params
        )
        return [_job_from_row(r) for r in rows]

    def counts(self) -> dict[str, int]:
        """Jobs per state (every state present, zero when none)."""
        found: dict[str, int] = dict.fromkeys(JOB_STATES, 0)
        for state, count in self._conn().execute("SELECT state, COUNT(*) FROM jobs GROUP BY 1"):
            found[str(state)] = int(count)
        return found

    def depth(self) -> int:
        """Unfinished jobs: queued plus running."""
        (count,) = (
            self._conn()
            .execute("SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running')")
            .fetchone()
        )
        return int(count)

    # -- running (the worker) ------------------------------------------------------------

    def claim_next(self) -> tuple[Job, object] | None:
        """Mark the oldest queued job running and return it with its payload."""
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT seq, payload FROM jobs WHERE state = 'queued' ORDER BY seq LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            seq, payload = row
            conn.execute(
                "UPDATE jobs SET state = 'running', started_at = ?, attempts = attempts + 1 "
                "WHERE seq = ?",
                (_now(), seq),
            )
            job_row = conn.execute(f"SELECT {_COLUMNS} FROM jobs WHERE seq = ?", (seq,)).fetchone()
        return _job_from_row(job_row), json.loads(payload) if payload is not None else None

    def requeue_running(self) -> int:
        """Queue again the jobs a stopped process left running; returns how many."""
        with self._transaction() as conn:
            cursor = conn.execute(
                "UPDATE jobs SET state = 'queued', progress = '{}' WHERE state = 'running'"
            )
            return int(cursor.rowcount)

    def requeue(self, job_id: str) -> None:
        with self._transaction() as conn:
            conn.execute(
                "UPDATE jobs SET state = 'queued', progress = '{}' WHERE id = ?", (job_id,)
            )

    def set_progress(self, job_id: str, progress: JobProgress) -> None:
        with self._transaction() as conn:
            conn.execute(
                "UPDATE jobs SET progress = ? WHERE id = ?",
                (json.dumps(_progress_dict(progress)), job_id),
            )

    def finish(self, job_id: str, result: Mapping[str, object], progress: JobProgress) -> None:
        """Mark a job done; its payload is dropped (the documents are in the stores now)."""
        self._close_job(job_id, "done", json.dumps(dict(result)), None, progress)

    def fail(self, job_id: str, error: str, progress: JobProgress) -> None:
        self._close_job(job_id, "failed", None, error, progress)

    def _close_job(
        self,
        job_id: str,
        state: JobState,
        result: str | None,
        error: str | None,
        progress: JobProgress,
    ) -> None:
        with self._transaction() as conn:
            conn.execute(
                "UPDATE jobs SET state = ?, result = ?, error = ?, progress = ?, "
                "finished_at = ?, payload = NULL WHERE id = ?",
                (state, result, error, json.dumps(_progress_dict(progress)), _now(), job_id),
            )

    def prune(self, keep: int = KEEP_FINISHED_JOBS) -> int:
        """Forget all but the ``keep`` most recent finished jobs; returns how many went."""
        with self._transaction() as conn:
            cursor = conn.execute(
                "DELETE FROM jobs WHERE state IN ('done', 'failed') AND seq NOT IN "
                "(SELECT seq FROM jobs WHERE state IN ('done', 'failed') "
                "ORDER BY seq DESC LIMIT ?)",
                (keep,),
            )
            return int(cursor.rowcount)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def _progress_dict(progress: JobProgress) -> dict[str, int]:
    return {
        "documents": progress.documents,
        "chunks": progress.chunks,
        "skipped": progress.skipped,
        "errors": progress.errors,
    }


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (or ``ROLLBACK`` on an exception)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self._conn.execute("BEGIN IMMEDIATE")
        return self._conn

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        self._conn.execute("ROLLBACK" if exc_type is not None else "COMMIT")


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    """What the worker is doing, for ``/v1/stats`` and the metrics."""

    state: WorkerState
    current_job: str | None
    jobs_done: int
    jobs_failed: int
    last_error: str | None


@dataclass
class _Counters:
    done: int = 0
    failed: int = 0
    last_error: str | None = None
    current: str | None = None
    state: WorkerState = "starting"
    finished_callbacks: list[Callable[[Job], None]] = field(default_factory=list)


class IngestWorker:
    """One thread that runs queued jobs through the pipeline, oldest first.

    ``stop()`` lets the running upsert finish the documents it is writing and puts the job
    back in the queue for the next start (re-running it is idempotent).
    """

    def __init__(
        self,
        queue: JobQueue,
        pipeline: IngestPipeline,
        *,
        poll_s: float = 0.5,
        on_finished: Callable[[Job], None] | None = None,
    ) -> None:
        self.queue = queue
        self.pipeline = pipeline
        self.poll_s = poll_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._counters = _Counters()
        if on_finished is not None:
            self._counters.finished_callbacks.append(on_finished)
        self._thread: threading.Thread | None = None

    @property
    def status(self) -> WorkerStatus:
        with self._lock:
            c = self._counters
            return WorkerStatus(c.state, c.current, c.done, c.failed, c.last_error)

    def start(self) -> None:
        """Queue again what a previous process left running, then start the thread."""
        requeued = self.queue.requeue_running()
        if requeued:
            _log.info("requeued %d job(s) left running by a previous process", requeued)
        self.queue.prune()
        self._thread = threading.Thread(target=self._loop, name="braid-ingest-worker", daemon=True)
        self._thread.start()

    def notify(self) -> None:
        """A job was submitted: look at the queue now instead of at the next poll."""
        self._wake.set()

    def stop(self, timeout: float | None = None) -> None:
        self._set_state("stopping")
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._set_state("stopped")

    def _set_state(self, state: WorkerState, current: str | None = None) -> None:
        with self._lock:
            self._counters.state = state
            self._counters.current = current

    def _loop(self) -> None:
        self._set_state("idle")
        while not self._stop.is_set():
            try:
                claimed = self.queue.claim_next()
            except sqlite3.Error:
                _log.exception("cannot read the job queue; retrying")
                self._stop.wait(self.poll_s)
                continue
            if claimed is None:
                self._wake.wait(self.poll_s)
                self._wake.clear()
                continue
            job, payload = claimed
            self._set_state("running", job.id)
            try:
                self.run_job(job, payload)
            finally:
                self._set_state("idle")

    def run_job(self, job: Job, payload: object) -> None:
        """Run one claimed job and record its outcome (never raises)."""
        tracker = _ProgressTracker(self.queue, job.id)
        interrupted = False
        try:
            if job.kind == "upsert":
                result, interrupted = self._upsert(job, payload, tracker)
            elif job.kind == "delete":
                result = self._delete(payload)
            else:
                result = self._delete_filter(payload)
        except BraidError as exc:
            self._record_failure(job, str(exc), tracker.latest)
            return
        except Exception as exc:  # a bug or a backend crash: keep the worker alive
            _log.exception("job %s failed", job.id)
            self._record_failure(job, f"internal error: {type(exc).__name__}", tracker.latest)
            return
        if interrupted:
            self.queue.requeue(job.id)
            return
        self.queue.finish(job.id, result, tracker.latest)
        with self._lock:
            self._counters.done += 1
        self._finished(job.id)

    def _record_failure(self, job: Job, message: str, progress: JobProgress) -> None:
        self.queue.fail(job.id, message, progress)
        with self._lock:
            self._counters.failed += 1
            self._counters.last_error = message
        self._finished(job.id)

    def _finished(self, job_id: str) -> None:
        if not self._counters.finished_callbacks:
            return
        job = self.queue.get(job_id)
        for callback in self._counters.finished_callbacks:
            callback(job)

    def _upsert(
        self, job: Job, payload: object, tracker: _ProgressTracker
    ) -> tuple[dict[str, object], bool]:
        raw_docs = cast(list[Mapping[str, object]], payload)
        stopped = False

        def records() -> Iterator[SourceDocument]:
            nonlocal stopped
            for i, raw in enumerate(raw_docs):
                if self._stop.is_set():
                    stopped = True
                    return
                yield document_from_payload(raw, f"job {job.id}: documents[{i}]")

        report = self.pipeline.run(records(), on_progress=tracker.update)
        tracker.flush()
        return report.as_dict(), stopped

    def _delete(self, payload: object) -> dict[str, object]:
        doc_ids = [str(d) for d in cast(Mapping[str, list[object]], payload)["doc_ids"]]
        deleted = self.pipeline.delete(doc_ids)
        self.pipeline.maybe_compact()
        return {"deleted": deleted, "not_found": sorted(set(doc_ids) - set(deleted))}

    def _delete_filter(self, payload: object) -> dict[str, object]:
        expr = parse_filter(cast(Mapping[str, object], payload)["filter"])
        deleted = self.pipeline.delete_by_filter(expr) if expr is not None else []
        self.pipeline.maybe_compact()
        return {"deleted": deleted, "not_found": []}


class _ProgressTracker:
    """Receives the pipeline's progress callbacks (from its threads); writes them throttled."""

    def __init__(self, queue: JobQueue, job_id: str) -> None:
        self._queue = queue
        self._job_id = job_id
        self._lock = threading.Lock()
        self.latest = JobProgress()
        self._written_at = 0.0

    def update(self, progress: Progress) -> None:
        now = time.monotonic()
        with self._lock:
            self.latest = JobProgress(
                progress.documents, progress.chunks, progress.skipped, progress.errors
            )
            due = now - self._written_at >= PROGRESS_INTERVAL_S
            if due:
                self._written_at = now
        if due:
            self.flush()

    def flush(self) -> None:
        try:
            self._queue.set_progress(self._job_id, self.latest)
        except sqlite3.Error:
            _log.warning("cannot record the progress of job %s", self._job_id)
