"""The ingestion worker: one thread that runs queued jobs through the pipeline, oldest first.

It runs in the one process that owns the data dir (an owner ``braid serve``, or
``braid worker`` beside reader servers), through the same ``IngestPipeline`` as
``braid ingest``. A job that was running when its process stopped is queued again at the
next start; the pipeline's own recovery removes whatever it had half-written, and re-running
it is idempotent (unchanged documents are skipped, point ids are deterministic).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from braid.engine.errors import BraidError
from braid.engine.filters import parse_filter
from braid.ingestion.jobs.models import (
    NO_PROGRESS,
    ClaimedJob,
    Job,
    JobProgress,
    WorkerState,
    WorkerStatus,
)
from braid.ingestion.jobs.store import JobQueue
from braid.ingestion.pipeline import IngestPipeline
from braid.ingestion.readers import Record

# Progress of a running job is written to SQLite at most this often.
PROGRESS_INTERVAL_S = 0.25
_log = logging.getLogger(__name__)


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
            self._set_state("running", claimed.job.id)
            try:
                self.run_job(claimed)
            finally:
                self._set_state("idle")

    def run_job(self, claimed: ClaimedJob) -> None:
        """Run one claimed job and record its outcome (never raises)."""
        job = claimed.job
        progress = _ProgressWriter(self.queue, job.id)
        if claimed.error is not None:
            self._record_failure(job, claimed.error, progress.latest)
            return
        interrupted = False
        try:
            if job.kind == "upsert":
                result, interrupted = self._upsert(claimed, progress)
            elif job.kind == "delete":
                result = self._delete(list(claimed.doc_ids))
            else:
                result = self._delete_filter(claimed)
        except BraidError as exc:
            self._record_failure(job, str(exc), progress.latest)
            return
        except Exception as exc:  # a bug or a backend crash: keep the worker alive
            _log.exception("job %s failed", job.id)
            self._record_failure(job, f"internal error: {type(exc).__name__}", progress.latest)
            return
        if interrupted:
            self.queue.requeue(job.id)
            return
        self.queue.finish(job.id, result, progress.latest)
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
        self, claimed: ClaimedJob, progress: _ProgressWriter
    ) -> tuple[dict[str, object], bool]:
        stopped = False

        def records() -> Iterator[Record]:
            nonlocal stopped
            for i, payload in enumerate(claimed.documents):
                if self._stop.is_set():
                    stopped = True
                    return
                # Validated when submitted; a record that no longer reads is a job error.
                yield payload.to_record(f"job {claimed.job.id}: documents[{i}]")

        report = self.pipeline.run(records(), on_progress=progress.update)
        progress.flush()
        return report.as_dict(), stopped

    def _delete(self, doc_ids: list[str]) -> dict[str, object]:
        deleted = self.pipeline.delete(doc_ids)
        self.pipeline.maybe_compact()
        return {"deleted": deleted, "not_found": sorted(set(doc_ids) - set(deleted))}

    def _delete_filter(self, claimed: ClaimedJob) -> dict[str, object]:
        expr = parse_filter(claimed.filter)
        deleted = self.pipeline.delete_by_filter(expr) if expr is not None else []
        self.pipeline.maybe_compact()
        return {"deleted": deleted, "not_found": []}


class _ProgressWriter:
    """Keeps the pipeline's latest ``Progress`` (reported from its threads) and writes it to
    the queue at most every ``PROGRESS_INTERVAL_S``."""

    def __init__(self, queue: JobQueue, job_id: str) -> None:
        self._queue = queue
        self._job_id = job_id
        self._lock = threading.Lock()
        self.latest = NO_PROGRESS
        self._written_at = 0.0

    def update(self, progress: JobProgress) -> None:
        now = time.monotonic()
        with self._lock:
            self.latest = progress
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
