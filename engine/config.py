"""``Settings``: every knob of braid in one pydantic-settings class.

Environment variables use the ``BRAID_`` prefix and ``__`` between a section and its field:
``BRAID_DATA_DIR``, ``BRAID_QDRANT__URL``, ``BRAID_FUSION__RRF_K``. Build it once per process
(``Settings()``) and pass it down.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from braid.engine.fusion import RRF_K, FusionMethod
from braid.engine.models import DEFAULT_MODEL


class EmbedderSettings(BaseModel):
    model: str = DEFAULT_MODEL
    device: str = "auto"
    backend: Literal["auto", "torch", "onnx", "onnx-int8"] = Field(
        default="auto",
        description="auto (the default): onnx-int8 on a CPU-only machine with onnxruntime "
        "installed, else torch; torch: sentence-transformers (CUDA + fp16 when present); "
        "onnx: onnxruntime fp32 on the CPU (torch's rankings); onnx-int8: queries through a "
        "dynamically quantised copy, passages fp32. Exported once into onnx_cache_dir; the "
        "same model id and version, so an index stays valid across backends",
    )
    onnx_cache_dir: Path | None = Field(
        default=None,
        description="where ONNX exports are kept, per model version (default: "
        "$XDG_CACHE_HOME/braid/onnx, else ~/.cache/braid/onnx)",
    )
    cpu_threads: int | None = Field(
        default=None, ge=1, description="torch (or onnxruntime intra-op) threads on the CPU"
    )
    spin_wait: bool | None = Field(
        default=None,
        description="onnx backends: onnxruntime's intra-op threads busy-wait for the next "
        "run (a single query encodes sooner, but under concurrent searches the spinning "
        "takes the cores the other requests need). None (auto): on, except in `braid serve`",
    )
    query_prefix: str = ""
    passage_prefix: str = ""
    batch_size: int = Field(default=64, ge=1, le=4096)
    max_seq_length: int | None = Field(default=None, ge=8)


class RerankerSettings(BaseModel):
    enabled: bool = True
    model: str | None = Field(
        default=None, description="CrossEncoder name or folder; none configured means no reranking"
    )
    device: str = "auto"
    backend: Literal["torch", "onnx", "onnx-int8"] = "torch"
    max_length: int = Field(default=256, ge=16, le=4096)
    batch_size: int = Field(default=32, ge=1, le=1024)
    depth: int = Field(default=30, ge=1, le=1000, description="fused candidates that are reranked")
    blend: float = Field(
        default=1.0,
        ge=0.0,
        le=1.0,
        description="the cross-encoder's share of a reranked hit's score, the rest the "
        "first-stage score (each min-max normalised over the reranked hits); 1: the "
        "cross-encoder alone",
    )


class QdrantSettings(BaseModel):
    mode: Literal["edge", "server", "local"] = Field(
        default="edge",
        description="edge: embedded Qdrant Edge (default); server: a Qdrant URL; "
        "local: qdrant-client's brute-force local mode (tests, tiny corpora)",
    )
    url: str | None = Field(default=None, description="server URL; https:// for TLS")
    api_key: SecretStr | None = None
    collection: str = Field(
        default="braid_chunks",
        description="the alias searches use; each embedding model version gets its own "
        "collection behind it (server and local modes)",
    )
    timeout_s: int = Field(default=30, ge=1)
    prefer_grpc: bool = False
    grpc_port: int = Field(default=6334, ge=1, le=65535)
    search_threads: int | None = Field(default=None, ge=1)
    on_disk_vectors: bool = False
    on_disk_payload: bool = True
    quantization: Literal["none", "scalar", "binary"] = "none"
    rescore: bool = Field(
        default=True, description="rescore quantized candidates with full vectors"
    )
    oversampling: float = Field(default=2.0, ge=1.0, le=16.0)
    hnsw_ef: int | None = Field(default=None, ge=1)
    shard_number: int = Field(default=1, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    upsert_batch: int = Field(default=256, ge=1)
    upsert_parallel: int = Field(default=1, ge=1, le=32)
    retries: int = Field(default=3, ge=0, le=20, description="retries on transient errors")

    @model_validator(mode="after")
    def _url_for_server(self) -> QdrantSettings:
        if self.mode == "server" and not self.url:
            raise ValueError("qdrant.mode 'server' needs qdrant.url (BRAID_QDRANT__URL)")
        return self


class TantivySettings(BaseModel):
    writer_threads: int = Field(default=1, ge=1, le=16)


class SparseSettings(BaseModel):
    backend: Literal["tantivy", "qdrant"] = Field(
        default="tantivy",
        description="tantivy: a Tantivy index in the data dir (default); qdrant: BM25 as "
        "Qdrant sparse vectors with the IDF modifier, in the same Qdrant as the dense side "
        "(Edge, local or server: it then scales out with the Qdrant cluster)",
    )
    avg_len: float | None = Field(
        default=None,
        gt=0,
        description="qdrant backend: the average chunk length (terms) BM25 normalises by; "
        "default: measured on the first write, re-measured by `braid optimize`",
    )
    query_stopwords: Literal["english", "none"] = Field(
        default="english",
        description="english: drop Tantivy's English stopwords (Lucene's list) from query "
        "text before BM25 (a query of stopwords only keeps them all); documents are indexed "
        "with every term either way, so switching needs no re-index; none: keep every term",
    )


class ChunkingSettings(BaseModel):
    max_tokens: int | None = Field(
        default=None, ge=32, description="tokens per chunk; default: the embedder's max_seq_length"
    )
    overlap_tokens: int = Field(default=32, ge=0)
    max_document_chars: int = Field(
        default=1_000_000,
        ge=1,
        description="longer documents are refused as input errors (about 1,000 chunks and "
        "minutes of embedding on a CPU at the default)",
    )
    max_chunks_per_document: int = Field(
        default=2000,
        ge=1,
        description="a document that chunks into more is refused as an input error (a small "
        "max_tokens can make a document within max_document_chars thousands of chunks)",
    )


class MetadataSettings(BaseModel):
    max_keys: int = Field(
        default=64, ge=1, description="metadata fields per document; more is an input error"
    )
    max_value_chars: int = Field(
        default=4096,
        ge=1,
        description="characters of one string value (each item of a list); longer is an "
        "input error (metadata is for filtering and facets, the text belongs in 'text')",
    )


class MaintenanceSettings(BaseModel):
    """When the writer compacts Tantivy and builds Qdrant's index on its own (after an
    ingest or an API job); ``braid optimize`` does both at once, whatever these say."""

    compact_min_deleted_chunks: int = Field(
        default=1000,
        ge=0,
        description="compact Tantivy once at least this many chunks were deleted or "
        "replaced since the last compaction (BM25 statistics count deleted chunks until "
        "their segment is rewritten) ...",
    )
    compact_deleted_ratio: float = Field(
        default=0.2,
        ge=0.0,
        description="... and they are at least this share of the live chunks",
    )
    optimize_min_new_points: int = Field(
        default=5000,
        ge=1,
        description="build Qdrant Edge's HNSW index after a load that added at least this "
        "many chunks",
    )


class FusionSettings(BaseModel):
    method: FusionMethod = Field(
        default="adaptive",
        description="adaptive (min-max fusion with per-query weights from the dense top "
        "score: engine/adaptive.py), rrf, convex (min-max), dbsf (Qdrant's "
        "distribution-based) or zscore",
    )
    level: Literal["chunk", "document"] = Field(
        default="chunk",
        description="chunk: fuse the retrievers' chunk lists; document: cut each list to "
        "each document's best chunk first (fetches every candidate's payload)",
    )
    rrf_k: float = Field(default=RRF_K, gt=0)
    weights: dict[str, float] = Field(default_factory=lambda: {"bm25": 1.0, "dense": 1.0})
    candidates: int = Field(default=100, ge=1, le=10_000, description="hits per retriever")

    @model_validator(mode="after")
    def _known_retrievers(self) -> FusionSettings:
        unknown = set(self.weights) - {"bm25", "dense"}
        if unknown:
            raise ValueError(f"fusion.weights: unknown retrievers {sorted(unknown)}")
        if any(w < 0 for w in self.weights.values()):
            raise ValueError("fusion.weights must not be negative")
        return self


class ApiSettings(BaseModel):
    role: Literal["owner", "reader"] = Field(
        default="owner",
        description="owner: the server owns the data dir and runs the ingestion worker "
        "(embedded default); reader: it opens the stores read-only and queues writes for a "
        "separate `braid worker` (needs qdrant.mode=server; allows --workers > 1)",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    keys: list[SecretStr] = Field(
        default_factory=list,
        description="keys that may read and write (BRAID_API__KEYS, JSON list)",
    )
    read_keys: list[SecretStr] = Field(
        default_factory=list, description="read-only keys (BRAID_API__READ_KEYS, JSON list)"
    )
    cors_origins: list[str] = Field(default_factory=list)
    max_query_chars: int = Field(default=2048, ge=1)
    max_top_k: int = Field(default=100, ge=1, le=1000)
    max_candidates: int = Field(default=1000, ge=1, le=10_000)
    max_batch_documents: int = Field(default=1000, ge=1)
    max_document_chars: int = Field(default=1_000_000, ge=1)
    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    max_embed_texts: int = Field(default=256, ge=1)
    max_queue_jobs: int = Field(default=1000, ge=1)
    max_concurrent_searches: int = Field(
        default=16,
        ge=1,
        description="searches and embeddings answered at once (per process); one more gets "
        "503 overloaded with Retry-After instead of waiting in a queue that only grows",
    )
    micro_batch: bool | None = Field(
        default=None,
        description="embed the queries of concurrent searches together in one batch. None "
        "(auto): only where the query encoder runs on a GPU; on a CPU a batch costs what its "
        "queries cost apart, plus padding and a thread hand-off (measured: see the README)",
    )
    search_threads: int | None = Field(
        default=None,
        ge=1,
        description="searches that run at once in the engine (per process); the others "
        "admitted wait their turn. None (auto): one per CPU available to the process. "
        "More threads than cores only contend for the GIL (measured: see the README)",
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="BRAID_", env_nested_delimiter="__", extra="ignore", env_file=None
    )

    data_dir: Path = Path("braid-data")
    profile: str | None = Field(
        default=None,
        description="a tuned profile in <data_dir>/profiles/<name>.json (BRAID_PROFILE), from "
        "`braid eval sweep`; its fusion and reranking values override these settings",
    )
    embedder: EmbedderSettings = Field(default_factory=EmbedderSettings)
    reranker: RerankerSettings = Field(default_factory=RerankerSettings)
    qdrant: QdrantSettings = Field(default_factory=QdrantSettings)
    tantivy: TantivySettings = Field(default_factory=TantivySettings)
    sparse: SparseSettings = Field(default_factory=SparseSettings)
    fusion: FusionSettings = Field(default_factory=FusionSettings)
    chunking: ChunkingSettings = Field(default_factory=ChunkingSettings)
    metadata: MetadataSettings = Field(default_factory=MetadataSettings)
    maintenance: MaintenanceSettings = Field(default_factory=MaintenanceSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)

    @model_validator(mode="after")
    def _reader_needs_server(self) -> Settings:
        if self.api.role == "reader" and self.qdrant.mode != "server":
            raise ValueError(
                "api.role 'reader' needs qdrant.mode 'server': Qdrant Edge and local mode "
                "belong to one process"
            )
        return self

    @property
    def dense_dir(self) -> Path:
        return self.data_dir / "dense"

    @property
    def sparse_dir(self) -> Path:
        return self.data_dir / "sparse"

    @property
    def sparse_label(self) -> str:
        """Where BM25 lives, as stats report it: ``tantivy`` or ``qdrant-<mode>``."""
        return "tantivy" if self.sparse.backend == "tantivy" else f"qdrant-{self.qdrant.mode}"

    @property
    def sparse_files(self) -> Path | None:
        """The BM25 store's own folder in the data dir (``None``: it lives in a server)."""
        if self.sparse.backend == "tantivy":
            return self.sparse_dir
        return self.sparse_qdrant_dir if self.qdrant.mode == "edge" else None

    @property
    def sparse_qdrant_dir(self) -> Path:
        """Qdrant Edge shard of the ``qdrant`` sparse backend in embedded mode."""
        return self.data_dir / "sparse-qdrant"
