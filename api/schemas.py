"""Request and response bodies: one class per direction, separate from the engine's models.

Field limits here are the hard ones. The configurable ones (``Settings.api``: query length,
top_k, candidates, batch sizes, text sizes) are checked in ``api/deps.py`` (within the hard
maxima, which therefore are not on those fields: they would answer first, naming the wrong
limit) and written into the OpenAPI document by ``api/main.py``, so the published schema
states the limits the running service enforces.

Numbers and booleans are strict: ``"5"``, ``true`` or ``5.0`` for an integer and ``"yes"``
or ``1`` for a boolean answer 422 instead of being converted. A float field takes any JSON
number (``1`` too).
"""

from __future__ import annotations

from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    model_validator,
)
from pydantic_core import PydanticCustomError

from braid.engine.facets import MAX_FACETS
from braid.engine.fusion import FusionMethod
from braid.engine.highlight import snippet_html
from braid.engine.models import DocumentHit, Hit, ModelInfo, SearchResponse
from braid.engine.paging import MAX_CURSOR_CHARS
from braid.ingestion.jobs import Job, JobQueue, WorkerStatus
from braid.ingestion.ledger import LedgerEntry
from braid.ingestion.payload import DocumentPayload

# The hard maximum of a query's length; api.max_query_chars is checked within it (deps.py).
MAX_QUERY_CHARS = 100_000
FilterJson = dict[str, JsonValue]
# What a metadata value can be (engine.metadata.validate_metadata).
MetadataOut = dict[str, StrictBool | StrictInt | StrictFloat | StrictStr | list[StrictStr]]
_FILTER_DOC = (
    'Metadata filter (the engine\'s filter language): `{"source": "docs"}`, '
    '`{"year": {"$gte": 2019, "$lt": 2024}}`, `{"tags": {"$in": ["a", "b"]}}`, combined with '
    "`$and`, `$or`, `$not`; at most 8 levels deep and 256 conditions. Errors answer 422 with "
    "the JSON path of the offending part."
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- search -------------------------------------------------------------------------------


class Weights(_Strict):
    """Per-retriever fusion weights (hybrid mode); a weight of 0 drops that retriever."""

    bm25: StrictFloat = Field(default=1.0, ge=0, le=1000, allow_inf_nan=False)
    dense: StrictFloat = Field(default=1.0, ge=0, le=1000, allow_inf_nan=False)

    @model_validator(mode="after")
    def _one_positive(self) -> Weights:
        # Both 0 would fuse nothing: every hit scoring 0, in no meaningful order.
        if self.bm25 == 0 and self.dense == 0:
            raise PydanticCustomError("weights_all_zero", "at least one weight must be positive")
        return self


class SearchRequest(_Strict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "query": "how does reciprocal rank fusion combine rankings",
                    "top_k": 5,
                    "mode": "hybrid",
                    "filter": {"source": "docs", "year": {"$gte": 2019}},
                    "facets": ["source", "tags"],
                    "explain": True,
                },
                {"query": "reciprocal rank fusion", "cursor": "eyJ2IjoxLCJvIjoxMCwi..."},
                {"query": "bm25", "group_by": "chunk", "mode": "bm25", "top_k": 3},
            ]
        },
    )

    query: str = Field(
        min_length=1,
        description="the text to search for (at most api.max_query_chars characters)",
    )
    top_k: StrictInt = Field(
        default=10,
        ge=1,
        description="results per page: documents, or chunks with group_by chunk (at most "
        "api.max_top_k)",
    )
    mode: Literal["hybrid", "bm25", "dense"] = Field(
        default="hybrid", description="BM25 only, dense only, or both fused"
    )
    filter: FilterJson | None = Field(default=None, description=_FILTER_DOC)
    weights: Weights | None = Field(
        default=None, description="fusion weights; default from the server's settings"
    )
    fusion: FusionMethod | None = Field(
        default=None,
        description="adaptive (the default): min-max normalised scores summed with per-query "
        "weights, the BM25 share falling as the dense leg's top cosine rises (the rule ships "
        "with braid, fitted on SciFact train; the weights used come back as fusion_weights), "
        "a fused score in [0, 1]; rrf: weighted reciprocal rank fusion, w / (k + rank); "
        "convex: weighted sum of min-max normalised scores; dbsf: Qdrant's distribution-based score fusion, each "
        "list's scores mapped linearly so that mean - 3 sd is 0 and mean + 3 sd is 1 (not "
        "clipped, as in Qdrant), weighted sum; zscore: weighted sum of (score - mean) / sd, a "
        "hit missing from a list taking its lowest z; default from the server's settings",
        examples=["adaptive", "rrf", "dbsf"],
    )
    rrf_k: StrictFloat | None = Field(
        default=None,
        gt=0,
        le=1_000_000,
        allow_inf_nan=False,
        description="RRF constant k in w / (k + rank), ranks 1-based (default 60)",
    )
    candidates: StrictInt | None = Field(
        default=None,
        ge=1,
        description="hits fetched from each retriever before fusion (at most api.max_candidates)",
    )
    rerank: StrictBool | None = Field(
        default=None,
        description="rerank the fused head with the cross-encoder; default: when one is "
        "configured. true without a configured reranker answers 422",
    )
    rerank_depth: StrictInt | None = Field(
        default=None,
        ge=1,
        description="fused hits that are reranked (at most api.max_candidates)",
    )
    group_by: Literal["document", "chunk"] = Field(
        default="document",
        description="document (the default): one result per document, ranked where its best "
        "chunk ranks, with its best passages; chunk: one result per chunk (before 0.4, the "
        "only shape)",
    )
    passages: StrictInt = Field(
        default=3, ge=1, le=10, description="group_by document: passages per document"
    )
    offset: StrictInt = Field(
        default=0,
        ge=0,
        le=10_000,
        description="results to skip. Pages are slices of one list, the query's fused "
        "candidates: offset must stay below the candidate depth (candidates, default 100), "
        "else 400 past_candidate_depth; the last page may be short",
    )
    cursor: str | None = Field(
        default=None,
        max_length=MAX_CURSOR_CHARS,
        description="the previous page's next_cursor, with the same query, mode, filter, "
        "fusion, weights, reranking, grouping and min_score (top_k may change); replaces "
        "offset. Another search's cursor answers 400 invalid_cursor; a cursor made before the "
        "index was last written answers 409 index_changed",
    )
    facets: list[StrictStr] | None = Field(
        default=None,
        max_length=MAX_FACETS,
        description="metadata fields to count: documents per value over the query's "
        "candidate documents (every document either retriever found for the query and "
        "filter, at or above min_score: the set paging walks), at most 20 values per field, "
        "most frequent first. A field no document has answers 422",
        examples=[["source", "tags", "year"]],
    )
    highlight: StrictBool = Field(
        default=True,
        description="mark the query's terms in each passage BM25 found: character offsets "
        "into text, and an HTML-safe snippet with <mark> tags; a passage only dense "
        "retrieval found gets no marks",
    )
    min_score: StrictFloat | None = Field(
        default=None,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="drop results whose fused score is below it. The fused score lies in "
        "[0, 1] with adaptive and convex fusion in hybrid mode, the only ones this accepts "
        "(others answer 422); with reranking the threshold still applies to the fused score",
    )
    include_text: StrictBool = Field(default=True, description="return each hit's chunk text")
    explain: StrictBool = Field(
        default=False, description="return each hit's rank and score in every stage"
    )


class StageOut(BaseModel):
    rank: int = Field(description="1-based rank in this stage")
    score: float = Field(description="this stage's own score")


class HitOut(BaseModel):
    rank: int = Field(description="1-based position in the results")
    doc_id: str
    chunk_id: str = Field(description="'<doc_id>#<chunk index>'")
    score: float = Field(
        description="the final stage's score: rerank, else fusion, else the retriever's"
    )
    title: str | None = None
    text: str | None = Field(default=None, description="absent when include_text is false")
    start: int | None = Field(default=None, description="character offset in the document")
    end: int | None = None
    metadata: MetadataOut = Field(default_factory=dict)
    highlights: list[tuple[int, int]] | None = Field(
        default=None,
        description="with highlight: [start, end) character offsets of the query's terms in "
        "text (empty when BM25 did not find this chunk)",
        examples=[[[0, 4], [27, 33]]],
    )
    snippet: str | None = Field(
        default=None,
        description="with highlight: an HTML-safe excerpt of text (at most 240 characters, "
        "'…' where cut) with the terms in <mark> tags",
        examples=["<mark>BM25</mark> is a bag-of-words <mark>ranking</mark> function…"],
    )
    stages: dict[str, StageOut] | None = Field(
        default=None,
        description="with explain: rank and score per stage ('bm25', 'dense', the fusion "
        "method's name such as 'adaptive' or 'rrf', 'rerank'); a retriever that did not find "
        "the hit is absent",
    )

    @classmethod
    def from_engine(cls, rank: int, hit: Hit, include_text: bool, explain: bool) -> HitOut:
        chunk = hit.chunk
        highlights = hit.highlights
        return cls(
            rank=rank,
            doc_id=hit.doc_id,
            chunk_id=hit.chunk_id,
            score=hit.score,
            title=chunk.title if chunk else None,
            text=chunk.text if chunk and include_text else None,
            start=chunk.start if chunk else None,
            end=chunk.end if chunk else None,
            metadata=dict(chunk.metadata) if chunk else {},
            highlights=highlights,
            snippet=snippet_html(chunk.text, highlights)
            if chunk is not None and highlights is not None
            else None,
            stages=_stages(hit) if explain else None,
        )


def _stages(hit: Hit) -> dict[str, StageOut]:
    return {k: StageOut(rank=s.rank, score=s.score) for k, s in hit.stages.items()}


class PassageOut(BaseModel):
    """One chunk of a result document."""

    chunk_id: str = Field(description="'<doc_id>#<chunk index>'")
    score: float = Field(description="this chunk's final score")
    text: str | None = Field(default=None, description="absent when include_text is false")
    start: int | None = Field(default=None, description="character offset in the document")
    end: int | None = None
    highlights: list[tuple[int, int]] | None = Field(
        default=None, description="as in hits: offsets of the query's terms in text"
    )
    snippet: str | None = Field(default=None, description="as in hits: HTML-safe, <mark>ed")
    stages: dict[str, StageOut] | None = Field(
        default=None, description="with explain: this chunk's rank and score per stage"
    )

    @classmethod
    def from_engine(cls, hit: Hit, include_text: bool, explain: bool) -> PassageOut:
        one = HitOut.from_engine(0, hit, include_text, explain)
        return cls(
            chunk_id=one.chunk_id,
            score=one.score,
            text=one.text,
            start=one.start,
            end=one.end,
            highlights=one.highlights,
            snippet=one.snippet,
            stages=one.stages,
        )


class DocumentResultOut(BaseModel):
    """One result document (group_by document)."""

    rank: int = Field(description="1-based position in the whole result list")
    doc_id: str
    score: float = Field(description="its best chunk's score (the fused score unless reranked)")
    title: str | None = None
    metadata: MetadataOut = Field(default_factory=dict)
    passages: list[PassageOut] = Field(
        description="its best chunks, best first (at most `passages`)"
    )

    @classmethod
    def from_engine(
        cls, document: DocumentHit, include_text: bool, explain: bool
    ) -> DocumentResultOut:
        chunk = document.best.chunk
        return cls(
            rank=document.rank,
            doc_id=document.doc_id,
            score=document.score,
            title=chunk.title if chunk else None,
            metadata=dict(chunk.metadata) if chunk else {},
            passages=[PassageOut.from_engine(p, include_text, explain) for p in document.passages],
        )


class FacetCountOut(BaseModel):
    value: StrictBool | StrictInt | StrictFloat | StrictStr
    count: int = Field(description="candidate documents with this value")


class ModelOut(BaseModel):
    id: str
    version: str = Field(description="first 12 hex digits of the weights' SHA-256")
    dim: int

    @classmethod
    def from_engine(cls, info: ModelInfo) -> ModelOut:
        return cls(id=info.model_id, version=info.version, dim=info.dim)


class SearchResponseOut(BaseModel):
    hits: list[HitOut] = Field(
        description="group_by chunk: the chunks of this page; group_by document: each "
        "document's best passage, in document order (so a client that reads hits gets one "
        "per document)"
    )
    documents: list[DocumentResultOut] | None = Field(
        default=None, description="group_by document: the documents of this page, best first"
    )
    offset: int = Field(default=0, description="results skipped before this page")
    next_cursor: str | None = Field(
        default=None,
        description="pass it as cursor for the next page; null when there is none (the "
        "results or the candidate depth end here)",
    )
    facets: dict[str, list[FacetCountOut]] | None = Field(
        default=None,
        description="with facets: per field, values and how many candidate documents have them",
        examples=[{"source": [{"value": "docs", "count": 7}, {"value": "blog", "count": 2}]}],
    )
    mode: Literal["hybrid", "bm25", "dense"]
    timings_ms: dict[str, float] = Field(
        description="milliseconds per stage: embed, dense, sparse, fuse, rerank, fetch, total"
    )
    embedding_model: ModelOut | None = None
    reranker_model: str | None = Field(default=None, description="set when hits were reranked")
    fusion_weights: dict[str, float] | None = Field(
        default=None,
        description="hybrid mode: the per-retriever weights fusion used for this query "
        "(adaptive fusion: this query's own, given weights included)",
        examples=[{"bm25": 0.29, "dense": 0.71}],
    )

    @classmethod
    def from_engine(
        cls, response: SearchResponse, include_text: bool, explain: bool
    ) -> SearchResponseOut:
        model = response.embedding_model
        documents = response.documents
        if documents is not None:
            hits = [HitOut.from_engine(d.rank, d.best, include_text, explain) for d in documents]
        else:
            hits = [
                HitOut.from_engine(i, h, include_text, explain)
                for i, h in enumerate(response.hits, start=response.offset + 1)
            ]
        return cls(
            hits=hits,
            documents=[DocumentResultOut.from_engine(d, include_text, explain) for d in documents]
            if documents is not None
            else None,
            offset=response.offset,
            next_cursor=response.next_cursor,
            facets={
                field: [FacetCountOut(value=v.value, count=v.count) for v in values]
                for field, values in response.facets.items()
            }
            if response.facets is not None
            else None,
            mode=response.mode,
            timings_ms={k: round(v, 3) for k, v in response.timings_ms.items()},
            embedding_model=ModelOut.from_engine(model) if model else None,
            reranker_model=response.reranker_model,
            fusion_weights=(
                {k: round(v, 6) for k, v in response.fusion_weights.items()}
                if response.fusion_weights is not None
                else None
            ),
        )


# -- documents and jobs -------------------------------------------------------------------


class DocumentIn(DocumentPayload):
    """One document in the CLI's JSONL record shape: every other key is metadata."""

    # The shared DocumentPayload (the shape remote ingest sends and the job queue stores),
    # under its API name, with the example and the limit the API documents.
    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "id": "rrf-fusion",
                    "title": "Reciprocal rank fusion",
                    "text": "Reciprocal rank fusion combines several rankings ...",
                    "source": "docs",
                    "year": 2021,
                    "tags": ["fusion", "ranking"],
                }
            ]
        },
    )

    text: StrictStr = Field(description="the body (at most api.max_document_chars characters)")


class DocumentsIn(_Strict):
    documents: list[DocumentIn] = Field(
        min_length=1,
        description="documents to add or replace (at most api.max_batch_documents); other "
        "keys of each are metadata: strings, finite numbers, bools or lists of strings, keys "
        "of letters, digits and '_'",
    )


class DeleteIn(_Strict):
    """Exactly one of ``ids`` and ``filter``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"ids": ["rrf-fusion"]}, {"filter": {"source": "blog"}}]},
    )

    ids: list[StrictStr] | None = Field(
        default=None,
        min_length=1,
        max_length=10_000,
        description="document ids to delete (any id, also ones a URL path cannot carry)",
    )
    filter: FilterJson | None = Field(
        default=None,
        description="delete every document with a chunk matching this filter. " + _FILTER_DOC,
    )


class JobProgressOut(BaseModel):
    documents: int = Field(description="documents written so far")
    chunks: int = Field(description="chunks written so far")
    skipped: int = Field(description="documents skipped as unchanged")
    errors: int


class JobOut(BaseModel):
    id: str
    kind: Literal["upsert", "delete", "delete_filter"]
    state: Literal["queued", "running", "done", "failed"]
    items: int = Field(description="documents to upsert or ids to delete")
    progress: JobProgressOut
    result: dict[str, JsonValue] | None = Field(
        default=None,
        description="when done: for an upsert {documents, chunks, skipped_unchanged, deleted, "
        "errors, seconds}; for a delete {deleted, not_found}",
    )
    error: str | None = Field(default=None, description="when failed: why")
    attempts: int = Field(description="times a worker started it (more than 1 after a restart)")
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None

    @classmethod
    def from_job(cls, job: Job) -> JobOut:
        p = job.progress
        return cls(
            id=job.id,
            kind=job.kind,
            state=job.state,
            items=job.items,
            progress=JobProgressOut(
                documents=p.documents, chunks=p.chunks, skipped=p.skipped, errors=p.errors
            ),
            result=job.result,  # type: ignore[arg-type]
            error=job.error,
            attempts=job.attempts,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
        )


class JobAccepted(BaseModel):
    job_id: str
    status_url: str = Field(description="GET it to follow the job")
    job: JobOut


class JobList(BaseModel):
    jobs: list[JobOut]


class ChunkOut(BaseModel):
    chunk_id: str
    chunk_index: int
    text: str | None
    start: int | None
    end: int | None
    in_dense: bool = Field(description="present in the dense store (Qdrant)")
    in_sparse: bool = Field(description="present in the sparse store (Tantivy)")


class DocumentOut(BaseModel):
    doc_id: str
    state: Literal["pending", "indexed"] = Field(
        description="ledger state: pending while being written"
    )
    content_hash: str
    chunk_count: int
    embedding_model: str
    embedding_model_version: str
    updated_at: str
    title: str | None = None
    metadata: MetadataOut = Field(default_factory=dict)
    chunks: list[ChunkOut]

    @classmethod
    def from_parts(
        cls,
        entry: LedgerEntry,
        chunks: list[ChunkOut],
        title: str | None,
        metadata: MetadataOut,
    ) -> DocumentOut:
        return cls(
            doc_id=entry.doc_id,
            state=entry.state,
            content_hash=entry.content_hash,
            chunk_count=entry.chunk_count,
            embedding_model=entry.model_id,
            embedding_model_version=entry.model_version,
            updated_at=entry.updated_at,
            title=title,
            metadata=metadata,
            chunks=chunks,
        )


# -- embeddings ---------------------------------------------------------------------------


class EmbedRequest(_Strict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"texts": ["what is BM25?"], "kind": "query"}]},
    )

    texts: list[StrictStr] = Field(
        min_length=1,
        description="texts to embed, at most api.max_embed_texts per request. Each is cut "
        "at the model's max_seq_length tokens (see `truncated`); a query may have at most "
        "api.max_query_chars characters, a passage api.max_document_chars.",
    )
    kind: Literal["query", "passage"] = Field(
        default="query",
        description="query or passage: models with prefixes (E5, BGE) embed them differently",
    )


class EmbedResponse(BaseModel):
    embeddings: list[list[float]] = Field(description="one L2-normalised vector per text")
    tokens: list[int] = Field(description="tokens of each text, special tokens included")
    truncated: list[bool] = Field(description="text longer than max_seq_length, cut by the model")
    model: ModelOut
    max_seq_length: int


# -- service ------------------------------------------------------------------------------


class StoreStats(BaseModel):
    backend: str
    chunks: int


class LedgerModel(BaseModel):
    id: str
    version: str
    documents: int


class LedgerStats(BaseModel):
    documents: int
    chunks: int
    pending_documents: int
    models: list[LedgerModel]


class QueueStats(BaseModel):
    depth: int = Field(description="queued plus running jobs")
    max_unfinished: int
    jobs: dict[str, int] = Field(description="jobs per state")


class WorkerOut(BaseModel):
    location: Literal["in_process", "separate"] = Field(
        description="in_process: this server runs the ingestion worker (api.role owner); "
        "separate: a `braid worker` process runs it (api.role reader), and the fields below "
        "are read from the shared job queue"
    )
    state: str = Field(
        description="in_process: starting, idle, running, stopping or stopped; separate: "
        "running (a job is running), waiting (jobs are queued, none running) or idle "
        "(whether the worker process is alive cannot be seen from here)"
    )
    current_job: str | None
    jobs_done: int = Field(
        description="in_process: since this server started; separate: done jobs the queue holds"
    )
    jobs_failed: int
    last_error: str | None

    @classmethod
    def from_status(cls, status: WorkerStatus) -> WorkerOut:
        return cls(
            location="in_process",
            state=status.state,
            current_job=status.current_job,
            jobs_done=status.jobs_done,
            jobs_failed=status.jobs_failed,
            last_error=status.last_error,
        )

    @classmethod
    def from_queue(cls, queue: JobQueue) -> WorkerOut:
        """A separate worker as the shared queue shows it."""
        counts = queue.counts()
        running = queue.list("running", 1)
        failed = queue.list("failed", 1)
        state = "idle"
        if running:
            state = "running"
        elif counts["queued"]:
            state = "waiting"
        return cls(
            location="separate",
            state=state,
            current_job=running[0].id if running else None,
            jobs_done=counts["done"],
            jobs_failed=counts["failed"],
            last_error=failed[0].error if failed else None,
        )


class StatsOut(BaseModel):
    data_dir: str
    dense: StoreStats
    sparse: StoreStats
    ledger: LedgerStats
    embedding_model: ModelOut
    reranker_model: str | None
    metadata_fields: list[str] = Field(
        description="metadata fields some document has: what filters and facets can name",
        examples=[["reviewed", "source", "tags", "year"]],
    )
    queue: QueueStats
    worker: WorkerOut
    consistent: bool = Field(
        description="ledger, dense and sparse chunk counts agree and nothing is pending"
    )


class HealthOut(BaseModel):
    status: Literal["ok"] = "ok"


class ReadyOut(BaseModel):
    ready: bool
    status: str = Field(description="loading, ready, stopping or failed")
    error: str | None = None
