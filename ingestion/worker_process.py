"""The ``braid worker`` process: the data dir's one writer, running the shared job queue.

In the split deployment, reader API servers (``api.role=reader``) take no lock and open the
stores read-only; they queue every write in ``jobs.sqlite``. One worker process owns the data
dir (its lock, the Tantivy writer, the ledger, the writes to Qdrant) and runs those jobs in
submission order. It finds jobs that other processes submitted by polling the queue every
``poll_s`` seconds (SQLite in WAL mode: a committed job is visible to it at once).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from braid.engine.config import Settings
from braid.ingestion.service import open_workspace
from braid.ingestion.worker import JOBS_FILE, IngestWorker, Job, JobQueue, WorkerStatus

WORKER_ROLE = "braid worker"
_log = logging.getLogger("braid.worker")


def run_worker(
    settings: Settings,
    stop: threading.Event,
    *,
    poll_s: float = 0.5,
    on_started: Callable[[], None] | None = None,
    on_finished: Callable[[Job], None] | None = None,
) -> WorkerStatus:
    """Own ``settings.data_dir`` and run its queued jobs until ``stop`` is set.

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
    queue: JobQueue | None = None
    worker: IngestWorker | None = None
    try:
        queue = JobQueue(settings.data_dir / JOBS_FILE, max_unfinished=settings.api.max_queue_jobs)
        worker = IngestWorker(queue, workspace.pipeline, poll_s=poll_s, on_finished=on_finished)
        worker.start()
        _log.info("running the jobs of %s (%d queued)", settings.data_dir, queue.depth())
        if on_started is not None:
            on_started()
        # A timed wait: a signal handler that sets ``stop`` runs in this (the main) thread.
        while not stop.wait(1.0):
            pass
        _log.info("stopping")
    finally:
        if worker is not None:
            worker.stop()
        if queue is not None:
            queue.close()
        workspace.close()
    return worker.status
