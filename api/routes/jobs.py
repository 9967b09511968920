"""Ingestion jobs: state and progress."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from braid.api.deps import READ, JobsDep
from braid.api.errors import error_responses
from braid.api.routing import JsonRoute
from braid.api.schemas import JobList, JobOut

router = APIRouter(prefix="/v1", tags=["jobs"], route_class=JsonRoute)


@router.get(
    "/jobs/{job_id}",
    response_model=JobOut,
    dependencies=[READ],
    responses=error_responses(401, 404, 503),
    summary="A job's state and progress",
)
def get_job(job_id: str, jobs: JobsDep) -> JobOut:
    """`queued` -> `running` (with progress) -> `done` (with its result) or `failed` (with
    the error). Jobs survive a restart: one that was running is queued again."""
    return JobOut.from_job(jobs.status(job_id))


@router.get(
    "/jobs",
    response_model=JobList,
    dependencies=[READ],
    responses=error_responses(401, 422, 503),
    summary="Recent jobs",
)
def list_jobs(
    jobs: JobsDep,
    state: Annotated[Literal["queued", "running", "done", "failed"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> JobList:
    """The most recent jobs first, optionally of one state."""
    return JobList(jobs=[JobOut.from_job(j) for j in jobs.recent(state, limit)])
