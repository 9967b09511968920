"""What a write job is: its kind, state and progress, the worker's status, the queue's errors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import JsonValue

from braid.engine.errors import BraidError
from braid.ingestion.payload import DocumentPayload
from braid.ingestion.pipeline import Progress

JobKind = Literal["upsert", "delete", "delete_filter"]
JobState = Literal["queued", "running", "done", "failed"]
JOB_STATES: tuple[JobState, ...] = ("queued", "running", "done", "failed")
FINISHED_STATES: tuple[JobState, ...] = ("done", "failed")
WorkerState = Literal["starting", "idle", "running", "stopping", "stopped"]

# A job's progress is the pipeline's own counters as it last reported them: documents and
# chunks written, documents skipped as unchanged, bad records. A delete reports none.
JobProgress = Progress
NO_PROGRESS = JobProgress(documents=0, chunks=0, skipped=0, errors=0)


class QueueFullError(BraidError):
    """The job queue holds its maximum number of unfinished jobs; retry later."""


class JobNotFoundError(BraidError):
    """No job has this id (never submitted, or pruned long after it finished)."""


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
        return self.state in FINISHED_STATES


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """A job the worker has claimed, with its work decoded from the queue: the documents
    of an upsert, the ids of a delete or the filter of a delete by filter; ``error`` when
    the stored payload could not be decoded (the job then fails)."""

    job: Job
    documents: tuple[DocumentPayload, ...] = ()
    doc_ids: tuple[str, ...] = ()
    filter: Mapping[str, JsonValue] | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    """What the worker is doing, for ``/v1/stats``, the metrics and ``braid worker --json``."""

    state: WorkerState
    current_job: str | None
    jobs_done: int
    jobs_failed: int
    last_error: str | None
