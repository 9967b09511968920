"""The durable job queue: one SQLite table in ``data_dir/jobs.sqlite``, safe across processes.

A job is a row committed (WAL, ``synchronous=FULL``) before its id is handed out, so it
survives a crash, a restart or a power cut. Jobs are claimed oldest first (``seq`` order), so
a delete submitted after an upsert of the same document always runs after it.

Stored payloads, by kind: an upsert holds the list of its documents as ``DocumentPayload``
JSON (the REST API's record shape); a delete ``{"doc_ids": [...]}``; a delete by filter
``{"filter": {...}}``. A finished job's payload is dropped.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

from pydantic import JsonValue, TypeAdapter

from braid.ingestion.documents import SourceDocument
from braid.ingestion.jobs.models import (
    JOB_STATES,
    NO_PROGRESS,
    ClaimedJob,
    Job,
    JobKind,
    JobNotFoundError,
    JobProgress,
    JobState,
    QueueFullError,
)
from braid.ingestion.payload import DocumentPayload

JOBS_FILE = "jobs.sqlite"
# Finished jobs kept for status queries; older ones are pruned (their ids then answer 404).
KEEP_FINISHED_JOBS = 10_000
DEFAULT_MAX_UNFINISHED = 1000

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
_UNFINISHED = "state IN ('queued', 'running')"
_DOCUMENTS = TypeAdapter(list[DocumentPayload])


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _progress_json(progress: JobProgress) -> str:
    return json.dumps(
        {
            "documents": progress.documents,
            "chunks": progress.chunks,
            "skipped": progress.skipped,
            "errors": progress.errors,
        }
    )


def _progress_from_json(text: str) -> JobProgress:
    # '{}' until the worker first reports (and again after a requeue).
    raw = json.loads(text)
    return JobProgress(
        documents=int(raw.get("documents", 0)),
        chunks=int(raw.get("chunks", 0)),
        skipped=int(raw.get("skipped", 0)),
        errors=int(raw.get("errors", 0)),
    )


def _job_from_row(row: tuple[object, ...]) -> Job:
    (job_id, kind, state, items, progress, result, error, attempts, created, started, finished) = (
        row
    )
    return Job(
        id=str(job_id),
        kind=cast(JobKind, kind),
        state=cast(JobState, state),
        items=int(cast(int, items)),
        progress=_progress_from_json(str(progress)),
        result=json.loads(str(result)) if result is not None else None,
        error=None if error is None else str(error),
        attempts=int(cast(int, attempts)),
        created_at=str(created),
        started_at=None if started is None else str(started),
        finished_at=None if finished is None else str(finished),
    )


def _claimed(job: Job, payload: str | None) -> ClaimedJob:
    """Decode a job's stored payload into the work it stands for."""
    try:
        # Only a finished job has no payload, and a finished job is never claimed.
        raw = json.loads(payload or "null")
        if job.kind == "upsert":
            return ClaimedJob(job, documents=tuple(_DOCUMENTS.validate_python(raw)))
        work = cast(dict[str, JsonValue], raw)
        if job.kind == "delete":
            doc_ids = cast(list[str], work["doc_ids"])
            return ClaimedJob(job, doc_ids=tuple(str(d) for d in doc_ids))
        return ClaimedJob(job, filter=cast(dict[str, JsonValue], work["filter"]))
    except (ValueError, KeyError, TypeError) as exc:  # ValidationError is a ValueError
        # The worker fails the job (and goes on to the next one) rather than dying here.
        return ClaimedJob(job, error=f"the job's stored payload cannot be read: {exc}")


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (or ``ROLLBACK`` on an exception)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self._conn.execute("BEGIN IMMEDIATE")
        return self._conn

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        self._conn.execute("ROLLBACK" if exc_type is not None else "COMMIT")


class JobQueue:
    """Durable FIFO of write jobs in ``data_dir/jobs.sqlite`` (WAL; safe across processes).

    Any process may submit and read jobs; only the data dir's owner runs a worker on them.
    Each thread has its own connection.
    """

    def __init__(self, path: Path, *, max_unfinished: int = DEFAULT_MAX_UNFINISHED) -> None:
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

    def _submit(self, kind: JobKind, items: int, payload: JsonValue) -> Job:
        job_id = uuid.uuid4().hex
        text = json.dumps(payload, ensure_ascii=False)
        with self._transaction() as conn:
            (unfinished,) = conn.execute(
                f"SELECT COUNT(*) FROM jobs WHERE {_UNFINISHED}"
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
        """Queue documents to be chunked, embedded and written (replacing older versions).

        Raises:
            QueueFullError: ``max_unfinished`` jobs are queued or running.
        """
        payload: list[JsonValue] = [DocumentPayload.from_document(d).to_json() for d in documents]
        return self._submit("upsert", len(documents), payload)

    def submit_delete(self, doc_ids: Sequence[str]) -> Job:
        """Queue the deletion of documents by id."""
        return self._submit("delete", len(doc_ids), {"doc_ids": list(doc_ids)})

    def submit_delete_filter(self, raw_filter: Mapping[str, JsonValue]) -> Job:
        """Queue the deletion of every document matching a filter (checked by the caller)."""
        return self._submit("delete_filter", 0, {"filter": dict(raw_filter)})

    # -- reading -------------------------------------------------------------------------

    def get(self, job_id: str) -> Job:
        """Raises: JobNotFoundError: no job has this id."""
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
        query = f"SELECT COUNT(*) FROM jobs WHERE {_UNFINISHED}"
        (count,) = self._conn().execute(query).fetchone()
        return int(count)

    # -- running (the worker) ------------------------------------------------------------

    def claim_next(self) -> ClaimedJob | None:
        """Mark the oldest queued job running and return it with its decoded work."""
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
        return _claimed(_job_from_row(job_row), payload)

    def requeue_running(self) -> int:
        """Queue again the jobs a stopped process left running; returns how many."""
        with self._transaction() as conn:
            cursor = conn.execute(
                "UPDATE jobs SET state = 'queued', progress = '{}' WHERE state = 'running'"
            )
            return int(cursor.rowcount)

    def requeue(self, job_id: str) -> None:
        """Put a job the worker stopped in the middle of back in line (it keeps its place)."""
        with self._transaction() as conn:
            conn.execute(
                "UPDATE jobs SET state = 'queued', progress = '{}' WHERE id = ?", (job_id,)
            )

    def set_progress(self, job_id: str, progress: JobProgress) -> None:
        with self._transaction() as conn:
            conn.execute(
                "UPDATE jobs SET progress = ? WHERE id = ?", (_progress_json(progress), job_id)
            )

    def finish(
        self, job_id: str, result: Mapping[str, object], progress: JobProgress = NO_PROGRESS
    ) -> None:
        """Mark a job done; its payload is dropped (the documents are in the stores now)."""
        self._close_job(job_id, "done", json.dumps(dict(result)), None, progress)

    def fail(self, job_id: str, error: str, progress: JobProgress = NO_PROGRESS) -> None:
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
                (state, result, error, _progress_json(progress), _now(), job_id),
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
        """Close this thread's connection (another thread's closes with its thread)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
