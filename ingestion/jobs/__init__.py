"""Write jobs: the durable queue in ``data_dir/jobs.sqlite``, the worker that runs it and the
``JobService`` that the REST API and ``braid worker`` both use.

* ``models``: ``Job``, ``JobProgress``, kinds and states, ``WorkerStatus``, the errors;
* ``store``: the SQLite schema and ``JobQueue`` (submission order, crash-safe);
* ``worker``: ``IngestWorker``, the thread that runs jobs through the ingestion pipeline;
* ``service``: ``JobService`` (submit, status, wait, run) and ``run_worker``.
"""

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
    WorkerState,
    WorkerStatus,
)
from braid.ingestion.jobs.service import WORKER_ROLE, JobService, run_worker
from braid.ingestion.jobs.store import JOBS_FILE, KEEP_FINISHED_JOBS, JobQueue
from braid.ingestion.jobs.worker import IngestWorker

__all__ = [
    "JOBS_FILE",
    "JOB_STATES",
    "KEEP_FINISHED_JOBS",
    "NO_PROGRESS",
    "WORKER_ROLE",
    "ClaimedJob",
    "IngestWorker",
    "Job",
    "JobKind",
    "JobNotFoundError",
    "JobProgress",
    "JobQueue",
    "JobService",
    "JobState",
    "QueueFullError",
    "WorkerState",
    "WorkerStatus",
    "run_worker",
]
