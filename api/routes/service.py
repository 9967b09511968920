"""Service endpoints: liveness, readiness, statistics and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from braid.api.deps import READ, EngineDep, JobsDep, LedgerDep, ReadyDep, RuntimeDep
from braid.api.errors import NotReady, error_responses
from braid.api.metrics import CONTENT_TYPE
from braid.api.routing import JsonRoute
from braid.api.schemas import (
    HealthOut,
    LedgerModel,
    LedgerStats,
    ModelOut,
    QueueStats,
    ReadyOut,
    StatsOut,
    StoreStats,
    WorkerOut,
)

router = APIRouter(tags=["service"], route_class=JsonRoute)


@router.get("/healthz", response_model=HealthOut, summary="Liveness")
def healthz() -> HealthOut:
    """200 while the process serves requests (even while it loads its models)."""
    return HealthOut()


# HEAD for the probes that use it (load balancers): the GET's status and headers, and
# no body (the server sends none for HEAD). FastAPI, unlike Starlette, adds no HEAD to a
# GET route; kept out of the schema, where it would be an operation without a body.
@router.head("/healthz", include_in_schema=False)
def healthz_head() -> JSONResponse:
    return JSONResponse(healthz().model_dump())


@router.get("/readyz", response_model=ReadyOut, responses=error_responses(503), summary="Readiness")
def readyz(runtime: RuntimeDep) -> ReadyOut:
    """200 once the models are loaded and warm, the stores open and (on an owner) the worker
    running; 503 (`not_ready`, with Retry-After) before that, while stopping, or after a failed
    start. A reader is ready without its separate `braid worker`: writes wait in the queue."""
    if not runtime.ready:
        detail = f": {runtime.error}" if runtime.error is not None else ""
        raise NotReady(f"the service is {runtime.status}{detail}")
    return ReadyOut(ready=True, status=runtime.status)


@router.head("/readyz", include_in_schema=False)
def readyz_head(runtime: RuntimeDep) -> JSONResponse:
    return JSONResponse(readyz(runtime).model_dump())


@router.get(
    "/v1/stats",
    response_model=StatsOut,
    dependencies=[READ],
    responses=error_responses(401, 503),
    summary="Index statistics",
)
def stats(runtime: ReadyDep, engine: EngineDep, ledger: LedgerDep, jobs: JobsDep) -> StatsOut:
    """Chunks per store and in the ledger, the embedding model, the queue and the worker
    (on a reader, `worker.location` is `separate`: a `braid worker` process runs the jobs)."""
    settings = runtime.settings
    totals = ledger.totals()
    dense_chunks = engine.dense.count()
    sparse_chunks = engine.sparse.count()
    queue = jobs.queue
    worker = jobs.worker_status()
    return StatsOut(
        data_dir=str(settings.data_dir),
        dense=StoreStats(backend=f"qdrant-{settings.qdrant.mode}", chunks=dense_chunks),
        sparse=StoreStats(backend=settings.sparse_label, chunks=sparse_chunks),
        ledger=LedgerStats(
            documents=totals["documents"],
            chunks=totals["chunks"],
            pending_documents=totals["pending_documents"],
            models=[LedgerModel(id=m, version=v, documents=n) for m, v, n in ledger.models()],
        ),
        embedding_model=ModelOut.from_engine(engine.embedder.info),
        reranker_model=engine.searcher.reranker.model_id if engine.searcher.reranker else None,
        metadata_fields=sorted(engine.dense.metadata_fields()),
        queue=QueueStats(
            depth=queue.depth(), max_unfinished=queue.max_unfinished, jobs=queue.counts()
        ),
        worker=WorkerOut.from_status(worker) if worker is not None else WorkerOut.from_queue(queue),
        consistent=dense_chunks == sparse_chunks == totals["chunks"]
        and totals["pending_documents"] == 0,
    )


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format"}},
    summary="Prometheus metrics",
)
def metrics(runtime: RuntimeDep) -> Response:
    """Request latency histograms per endpoint, search-stage histograms, queue depth,
    jobs finished, errors by code, readiness."""
    return Response(runtime.metrics.render(), media_type=CONTENT_TYPE)
