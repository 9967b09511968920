"""``JobService``: submit, follow and run the write jobs of a data dir.

It is the one interface to the jobs for both of their users:

* the REST API (``api/runtime.py`` and the routes) submits jobs, reads their status and waits
  for them; an owner server also runs the worker in a thread;
* ``braid worker`` (``run_worker`` below) owns the data dir beside reader servers and runs the
  jobs they submit. In that split deployment the readers' services have no worker: the worker
  process finds their jobs by polling the shared queue (SQLite in WAL mode: a committed job
  is visible to it at once).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from pydantic import JsonValue

from braid.engine.config import Settings
from braid.ingestion.documents import SourceDocument
from braid.ingestion.jobs.models import Job, JobState, WorkerStatus
from braid.ingestion.jobs.store import JOBS_FILE, JobQueue
from braid.ingestion.jobs.worker import IngestWorker
from braid.ingestion.pipeline import IngestPipeline
from braid.ingestion.service import open_workspace

WORKER_ROLE = "braid worker"
# How often a wait re-reads a job: the API answers soon after the job ends; a blocking
# caller (a script, a test) need not poll that hard.
ASYNC_POLL_S = 0.02
BLOCKING_POLL_S = 0.1
_log = logging.getLogger("braid.worker")


class JobService:
    """The jobs of one data dir: its queue and, in the process that owns it, its worker.

    Args:
        queue: the data dir's job queue (``JobService.open`` opens it from settings).
    """

    def __init__(self, queue: JobQueue) -> None:
        self.queue = queue
        self._worker: IngestWorker | None = None

    @classmethod
    def open(cls, settings: Settings) -> JobService:
        """The service over ``settings.data_dir/jobs.sqlite`` (created when missing), with
        at most ``settings.api.max_queue_jobs`` unfinished jobs."""
        path = settings.data_dir / JOBS_FILE
        return cls(JobQueue(path, max_unfinished=settings.api.max_queue_jobs))

    # -- running -------------------------------------------------------------------------

    @property
    def worker(self) -> IngestWorker | None:
        """The worker this process runs; ``None`` where another process runs the jobs."""
        return self._worker

    def start_worker(
        self,
        pipeline: IngestPipeline,
        *,
        poll_s: float = 0.5,
        on_finished: Callable[[Job], None] | None = None,
    ) -> IngestWorker:
        """Run the queued jobs through ``pipeline`` in a thread, oldest first.

        Only the data dir's owner may call it (it holds the lock the pipeline writes under).
        A job a stopped process left running is queued again first.

        Args:
            pipeline: the owner's pipeline (``open_workspace(...).pipeline``).
            poll_s: how often the queue is read for jobs other processes submitted.
            on_finished: called, in the worker thread, with each job that finished.
        """
        if self._worker is not None:
            raise RuntimeError("the worker is already running")
        self._worker = IngestWorker(self.queue, pipeline, poll_s=poll_s, on_finished=on_finished)
        self._worker.start()
        return self._worker

    def stop_worker(self) -> None:
        """Stop the worker: a running upsert stops between documents and is queued again."""
        if self._worker is not None:
            self._worker.stop()

    def worker_status(self) -> WorkerStatus | None:
        """The counters of this process's worker; ``None`` when it runs none."""
        return self._worker.status if self._worker is not None else None

    def close(self) -> None:
        """Stop the worker, then close the queue."""
        self.stop_worker()
        self.queue.close()

    # -- submitting ----------------------------------------------------------------------

    def submit_upsert(self, documents: Sequence[SourceDocument]) -> Job:
        """Queue documents to be chunked, embedded and written (replacing older versions).

        Raises:
            QueueFullError: the queue holds its maximum of unfinished jobs.
        """
        return self._wake(self.queue.submit_upsert(documents))

    def submit_delete(self, doc_ids: Sequence[str]) -> Job:
        """Queue the deletion of documents by id.

        Raises:
            QueueFullError: the queue holds its maximum of unfinished jobs.
        """
        return self._wake(self.queue.submit_delete(doc_ids))

    def submit_delete_filter(self, raw_filter: Mapping[str, JsonValue]) -> Job:
        """Queue the deletion of every document matching a filter (the caller checked it).

        Raises:
            QueueFullError: the queue holds its maximum of unfinished jobs.
        """
        return self._wake(self.queue.submit_delete_filter(raw_filter))

    def _wake(self, job: Job) -> Job:
        # An in-process worker starts on it now; a separate one at its next poll.
        if self._worker is not None:
            self._worker.notify()
        return job

    # -- following -----------------------------------------------------------------------

    def status(self, job_id: str) -> Job:
        """A job's state, progress and outcome.

        Raises:
            JobNotFoundError: no job has this id (or it was pruned).
        """
        return self.queue.get(job_id)

    def recent(self, state: JobState | None = None, limit: int = 50) -> list[Job]:
        """The most recent jobs first, optionally of one state."""
        return self.queue.list(state, limit)

    def wait(self, job_id: str, timeout_s: float, *, poll_s: float = BLOCKING_POLL_S) -> Job:
        """The job once it has finished, or as it is after ``timeout_s`` (blocks the thread).

        Raises:
            JobNotFoundError: no job has this id.
        """
        deadline = time.monotonic() + timeout_s
        job = self.status(job_id)
        while not job.finished and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(poll_s, left))
            job = self.status(job_id)
        return job

    async def wait_async(
        self, job_id: str, timeout_s: float, *, poll_s: float = ASYNC_POLL_S
    ) -> Job:
        """``wait`` for an event loop: it sleeps between reads instead of holding a thread.

        Raises:
            JobNotFoundError: no job has this id.
        """
        deadline = time.monotonic() + timeout_s
        job = await asyncio.to_thread(self.status, job_id)
        while not job.finished and (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(poll_s, left))
            job = await asyncio.to_thread(self.status, job_id)
        return job


def run_worker(
    settings: Settings,
    stop: threading.Event,
    *,
    poll_s: float = 0.5,
    on_started: Callable[[], None] | None = None,
    on_finished: Callable[[Job], None] | None = None,
) -> WorkerStatus:
    """``braid worker``: own ``settings.data_dir`` and run its queued jobs until ``stop`` is set.

    At the start, a job that a stopped process left running is queued again. When ``stop``
    is set, a running upsert stops between documents and is queued again (re-running it is
    idempotent), then the stores are closed and the lock released.

    Args:
        settings: the worker's settings (the same data dir and Qdrant as the readers).
        stop: set it (from a signal handler) to stop.
        poll_s: how often the queue is read for jobs submitted by other processes.
        on_started: called once the stores are open and the worker thread runs.
        on_finished: called with each job that finished (done or failed).

    Returns:
        The worker's final counters.

    Raises:
        IndexLockedError: another process (a server, an ingest, a worker) owns the data dir.
        ModelMismatchError: the stores were built with another embedding model.
        BackendUnavailableError: Qdrant cannot be reached.
    """
    workspace = open_workspace(settings, role=WORKER_ROLE)
    try:
        service = JobService.open(settings)
        try:
            worker = service.start_worker(
                workspace.pipeline, poll_s=poll_s, on_finished=on_finished
            )
            _log.info(
                "running the jobs of %s (%d queued)", settings.data_dir, service.queue.depth()
            )
            if on_started is not None:
                on_started()
            # A timed wait: a signal handler that sets ``stop`` runs in this (the main) thread.
            while not stop.wait(1.0):
                pass
            _log.info("stopping")
        finally:
            service.close()
    finally:
        workspace.close()
    return worker.status
