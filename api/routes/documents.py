"""Documents: upsert and delete as queued jobs, and a document's chunks and ledger state."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.concurrency import run_in_threadpool

from braid.api.deps import (
    JSON_BODY,
    READ,
    WRITE,
    CheckedDocuments,
    EngineDep,
    JobsDep,
    LedgerDep,
    request_filter,
)
from braid.api.errors import InvalidInput, error_responses
from braid.api.routing import JsonRoute
from braid.api.schemas import ChunkOut, DeleteIn, DocumentOut, JobAccepted, JobOut, MetadataOut
from braid.engine.errors import DocumentNotFoundError
from braid.engine.models import point_id_for
from braid.ingestion.jobs import Job, JobService

router = APIRouter(prefix="/v1", tags=["documents"], route_class=JsonRoute)

WaitParam = Annotated[
    bool,
    Query(description="answer when the job has finished (200), or after timeout_s (202)"),
]
TimeoutParam = Annotated[
    float, Query(gt=0, le=300, description="longest wait, in seconds, with wait=true")
]


def job_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    finished: dict[int | str, dict[str, Any]] = {
        200: {"model": JobAccepted, "description": "Finished (wait=true)"}
    }
    return finished | error_responses(*statuses)


async def accepted(
    job: Job, jobs: JobService, response: Response, wait: bool, timeout_s: float
) -> JobAccepted:
    """202 with the job (or 200 once finished, when the client chose to wait)."""
    if wait and not job.finished:
        job = await jobs.wait_async(job.id, timeout_s)
    url = f"/v1/jobs/{job.id}"
    response.status_code = 200 if job.finished else 202
    response.headers["Location"] = url
    return JobAccepted(job_id=job.id, status_url=url, job=JobOut.from_job(job))


@router.post(
    "/documents",
    response_model=JobAccepted,
    status_code=202,
    dependencies=[WRITE, JSON_BODY],
    responses=job_responses(400, 401, 403, 413, 415, 422, 503),
    summary="Add or replace documents",
)
async def upsert_documents(
    documents: CheckedDocuments,
    jobs: JobsDep,
    response: Response,
    wait: WaitParam = False,
    timeout_s: TimeoutParam = 30.0,
) -> JobAccepted:
    """Queue documents for the ingestion worker (chunk, embed, write both stores).

    The body is the CLI's JSONL record shape, validated by the same rules: `id` (or
    `_id`), `text`, optional `title`, every other key metadata. A document whose id exists
    is replaced; an unchanged one is skipped. The job is durable once this answers; follow
    it at `status_url`. Searches see the documents when the job is `done`.
    """
    job = await run_in_threadpool(jobs.submit_upsert, documents)
    return await accepted(job, jobs, response, wait, timeout_s)


@router.post(
    "/documents/delete",
    response_model=JobAccepted,
    status_code=202,
    dependencies=[WRITE, JSON_BODY],
    responses=job_responses(400, 401, 403, 413, 415, 422, 503),
    summary="Delete documents by ids or by filter",
)
async def delete_documents(
    body: DeleteIn,
    jobs: JobsDep,
    response: Response,
    wait: WaitParam = False,
    timeout_s: TimeoutParam = 30.0,
) -> JobAccepted:
    """Queue the deletion, from both stores and the ledger, of documents by id (`ids`) or
    of every document with a chunk matching a filter (`filter`, checked now: a bad one
    answers 422). The job's result lists what was deleted."""
    if (body.ids is None) == (body.filter is None):
        raise InvalidInput("give either 'ids' or 'filter'", "$")
    if body.ids is not None:
        job = await run_in_threadpool(jobs.submit_delete, body.ids)
    else:
        if request_filter(body.filter) is None:
            raise InvalidInput("an empty filter would delete everything; not allowed", "$.filter")
        job = await run_in_threadpool(jobs.submit_delete_filter, body.filter or {})
    return await accepted(job, jobs, response, wait, timeout_s)


@router.delete(
    "/documents/{doc_id:path}",
    response_model=JobAccepted,
    status_code=202,
    dependencies=[WRITE],
    responses=job_responses(401, 403, 404, 422, 503),
    summary="Delete a document",
)
async def delete_document(
    doc_id: str,
    jobs: JobsDep,
    response: Response,
    wait: WaitParam = False,
    timeout_s: TimeoutParam = 30.0,
) -> JobAccepted:
    """Queue the deletion of one document from both stores and the ledger. It runs after
    every write submitted before it; the job's result lists it under `not_found` when the
    index did not hold it. An id a URL path cannot carry (a newline) answers 404: delete it
    with `POST /v1/documents/delete {"ids": [...]}`."""
    job = await run_in_threadpool(jobs.submit_delete, [doc_id])
    return await accepted(job, jobs, response, wait, timeout_s)


@router.get(
    "/documents/{doc_id:path}",
    response_model=DocumentOut,
    dependencies=[READ],
    responses=error_responses(401, 404, 503),
    summary="A document's chunks and ledger state",
)
def get_document(doc_id: str, ledger: LedgerDep, engine: EngineDep) -> DocumentOut:
    """The ledger's record of a document and each of its chunks, with whether the dense
    and the sparse store hold it (both should, once the document is `indexed`)."""
    entry = ledger.get(doc_id)
    if entry is None:
        raise DocumentNotFoundError(f"no document {doc_id!r} in the index")
    point_ids = [point_id_for(doc_id, i) for i in range(entry.chunk_count)]
    dense = engine.dense.fetch(point_ids)
    sparse = engine.sparse.fetch(point_ids)
    chunks: list[ChunkOut] = []
    title: str | None = None
    metadata: MetadataOut = {}
    for index, pid in enumerate(point_ids):
        chunk = dense.get(pid) or sparse.get(pid)
        if chunk is not None and title is None:
            title, metadata = chunk.title, dict(chunk.metadata)
        chunks.append(
            ChunkOut(
                chunk_id=f"{doc_id}#{index}",
                chunk_index=index,
                text=chunk.text if chunk else None,
                start=chunk.start if chunk else None,
                end=chunk.end if chunk else None,
                in_dense=pid in dense,
                in_sparse=pid in sparse,
            )
        )
    return DocumentOut.from_parts(entry, chunks, title, metadata)
