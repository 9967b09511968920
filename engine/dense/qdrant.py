"""``QdrantDenseStore``: a Qdrant server through qdrant-client.

The same class serves qdrant-client's local mode (``:memory:`` or a path), which the tests use
as a stand-in for the server: same client, same models. Local mode searches by brute force,
so it is never the default for real corpora.

Model versions side by side: ``open_aliased`` keeps one collection per embedding model
version (``<alias>__<model>__<version>``) behind an alias that searches and writes use, so a
new model can be indexed beside the old one (``braid reindex``), judged (``braid eval
compare``) and switched to atomically (``promote``); the old collection stays until ``drop``.
"""

from __future__ import annotations

import re
import threading
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from qdrant_client import QdrantClient
from qdrant_client import models as qm
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from braid.engine.dense.common import (
    CORE_INDEXES,
    IndexKind,
    check_model,
    manifest,
    metadata_index_kinds,
    stored_point_ids,
)
from braid.engine.dense.qdrant_filters import METADATA_KEY, to_qdrant_filter
from braid.engine.errors import BackendUnavailableError, ConfigError
from braid.engine.filters import FilterExpr
from braid.engine.models import Chunk, ModelInfo, ScoredPoint
from braid.engine.payload import chunk_from_payload, chunk_payload
from braid.engine.protocols import Vectors

_SCHEMA_TYPES: dict[IndexKind, qm.PayloadSchemaType] = {
    "keyword": qm.PayloadSchemaType.KEYWORD,
    "float": qm.PayloadSchemaType.FLOAT,
    "bool": qm.PayloadSchemaType.BOOL,
}
_SCROLL_PAGE = 10_000
BACKEND_ERRORS = (UnexpectedResponse, ResponseHandlingException, ConnectionError, TimeoutError)
_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class QdrantOptions:
    """Collection and request options for a Qdrant server (``Settings.qdrant``)."""

    on_disk_vectors: bool = False
    on_disk_payload: bool = True
    quantization: Literal["none", "scalar", "binary"] = "none"
    rescore: bool = True
    oversampling: float = 2.0
    hnsw_ef: int | None = None
    shard_number: int = 1
    replication_factor: int = 1
    upsert_batch: int = 256
    upsert_parallel: int = 1
    retries: int = 3


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, UnexpectedResponse):
        return exc.status_code in _TRANSIENT_STATUS
    return isinstance(exc, ResponseHandlingException | ConnectionError | TimeoutError)


def create_if_missing(create: Callable[[], object]) -> None:
    """Create a collection, accepting that another process created it first.

    A worker and the API readers start together against a fresh server: all of them see no
    collection, one creation wins and the others get 409 Conflict.
    """
    try:
        create()
    except UnexpectedResponse as exc:
        if exc.status_code != 409:
            raise


def retrying(retries: int) -> Retrying:
    """Retry transient Qdrant errors (timeouts, 429, 5xx) with jittered exponential backoff."""
    return Retrying(
        retry=retry_if_exception(_transient),
        stop=stop_after_attempt(retries + 1),
        wait=wait_exponential_jitter(multiplier=0.2, max=5.0),
        reraise=True,
    )


def collection_for(alias: str, model: ModelInfo) -> str:
    """The collection that holds ``model``'s vectors behind ``alias``."""
    slug = re.sub(r"[^a-z0-9]+", "-", model.model_id.lower()).strip("-")
    return f"{alias}__{slug}__{model.version}"


class QdrantDenseStore:
    """Dense store in one Qdrant collection (or alias), reached through ``QdrantClient``."""

    def __init__(
        self,
        client: QdrantClient,
        collection: str,
        model: ModelInfo,
        options: QdrantOptions | None = None,
    ) -> None:
        """Use ``collection`` (a collection or an alias), creating it for ``model`` when missing.

        The model manifest lives in the collection's metadata.

        Raises:
            ModelMismatchError: the collection was built with another model.
            BackendUnavailableError: the server cannot be reached.
        """
        self._client = client
        self._collection = collection
        self._model = model
        self._options = options or QdrantOptions()
        self._lock = threading.Lock()
        self._retrying = retrying(self._options.retries)
        try:
            if not client.collection_exists(collection):
                create_if_missing(lambda: self._create(collection))
            stored = client.get_collection(collection).config.metadata
            check_model(stored or {}, model, f"the Qdrant collection {collection!r}")
            self._indexed: set[str] = set(client.get_collection(collection).payload_schema)
            self._ensure_indexes(dict(CORE_INDEXES))
        except BACKEND_ERRORS as exc:
            raise BackendUnavailableError(f"Qdrant at {collection!r}: {exc}") from exc

    @classmethod
    def open_aliased(
        cls,
        client: QdrantClient,
        alias: str,
        model: ModelInfo,
        options: QdrantOptions | None = None,
    ) -> QdrantDenseStore:
        """Open the collection behind ``alias``, or create ``model``'s collection and the alias.

        Raises:
            ModelMismatchError: the alias points at another model's collection (re-index with
                ``braid reindex`` and ``braid promote``, or configure that model).
        """
        try:
            target = aliases(client).get(alias)
            if target is None and not client.collection_exists(alias):
                target = collection_for(alias, model)
                cls(client, target, model, options)  # creates it, with its indexes
                promote(client, alias, target)
        except BACKEND_ERRORS as exc:
            raise BackendUnavailableError(f"Qdrant at {alias!r}: {exc}") from exc
        return cls(client, alias, model, options)

    def _create(self, collection: str) -> None:
        opts = self._options
        quantization: Any = None
        if opts.quantization == "scalar":
            quantization = qm.ScalarQuantization(
                scalar=qm.ScalarQuantizationConfig(type=qm.ScalarType.INT8, always_ram=True)
            )
        elif opts.quantization == "binary":
            quantization = qm.BinaryQuantization(
                binary=qm.BinaryQuantizationConfig(always_ram=True)
            )
        self._client.create_collection(
            collection,
            vectors_config=qm.VectorParams(
                size=self._model.dim, distance=qm.Distance.COSINE, on_disk=opts.on_disk_vectors
            ),
            on_disk_payload=opts.on_disk_payload,
            quantization_config=quantization,
            shard_number=opts.shard_number,
            replication_factor=opts.replication_factor,
            metadata=manifest(self._model),
        )

    def _call(self, what: str, action: Callable[[], T]) -> T:
        """Run one request with retries on transient errors; failures become BraidErrors."""
        try:
            return self._retrying(action)
        except BACKEND_ERRORS as exc:
            raise BackendUnavailableError(f"Qdrant {what} failed: {exc}") from exc

    @property
    def model(self) -> ModelInfo:
        return self._model

    @property
    def collection(self) -> str:
        return self._collection

    @property
    def client(self) -> QdrantClient:
        return self._client

    @property
    def options(self) -> QdrantOptions:
        return self._options

    def _ensure_indexes(self, kinds: dict[str, IndexKind]) -> None:
        for field, kind in kinds.items():
            key = field if field in CORE_INDEXES else f"{METADATA_KEY}.{field}"
            if key not in self._indexed:
                with warnings.catch_warnings():
                    # Local mode warns that indexes do nothing there; a server uses them.
                    warnings.simplefilter("ignore", UserWarning)
                    self._client.create_payload_index(self._collection, key, _SCHEMA_TYPES[kind])
                self._indexed.add(key)

    def upsert(self, chunks: Sequence[Chunk], vectors: Vectors) -> None:
        """Upsert in batches (in parallel when configured), retrying transient errors."""
        if not chunks:
            return
        points = [
            qm.PointStruct(id=c.point_id, vector=v.tolist(), payload=chunk_payload(c, self._model))
            for c, v in zip(chunks, vectors, strict=True)
        ]
        opts = self._options
        with self._lock:
            self._call("index creation", lambda: self._ensure_indexes(metadata_index_kinds(chunks)))
            if len(points) <= opts.upsert_batch or opts.upsert_parallel == 1:
                for start in range(0, len(points), opts.upsert_batch):
                    self._upsert_batch(points[start : start + opts.upsert_batch])
            else:
                self._call(
                    "upsert",
                    lambda: self._client.upload_points(
                        self._collection,
                        points,
                        batch_size=opts.upsert_batch,
                        parallel=opts.upsert_parallel,
                        max_retries=opts.retries,
                        wait=True,
                    ),
                )

    def _upsert_batch(self, points: list[qm.PointStruct]) -> None:
        self._call(
            "upsert", lambda: self._client.upsert(self._collection, points=points, wait=True)
        )

    def delete_docs(self, doc_ids: Sequence[str]) -> None:
        if not doc_ids:
            return
        selector = qm.Filter(
            must=[qm.FieldCondition(key="doc_id", match=qm.MatchAny(any=list(doc_ids)))]
        )
        self._call(
            "delete",
            lambda: self._client.delete(
                self._collection, points_selector=qm.FilterSelector(filter=selector), wait=True
            ),
        )

    def _search_params(self) -> qm.SearchParams | None:
        opts = self._options
        if opts.quantization == "none" and opts.hnsw_ef is None:
            return None
        quantization = (
            qm.QuantizationSearchParams(rescore=opts.rescore, oversampling=opts.oversampling)
            if opts.quantization != "none"
            else None
        )
        return qm.SearchParams(hnsw_ef=opts.hnsw_ef, quantization=quantization)

    def search(
        self, vector: Vectors, limit: int, filter: FilterExpr | None = None
    ) -> list[ScoredPoint]:
        found = self._call(
            "search",
            lambda: (
                self._client.query_points(
                    self._collection,
                    query=vector.tolist(),
                    query_filter=to_qdrant_filter(filter, qm),
                    search_params=self._search_params(),
                    limit=limit,
                    with_payload=False,
                ).points
            ),
        )
        return sorted(
            (ScoredPoint(str(p.id), float(p.score)) for p in found),
            key=lambda p: (-p.score, p.point_id),
        )

    def fetch(self, point_ids: Sequence[str]) -> dict[str, Chunk]:
        ids = stored_point_ids(point_ids)
        if not ids:
            return {}
        records = self._call(
            "retrieve",
            lambda: self._client.retrieve(self._collection, ids=list(ids), with_payload=True),
        )
        return {str(r.id): chunk_from_payload(r.payload or {}) for r in records}

    def doc_ids(self, filter: FilterExpr | None = None) -> set[str]:
        found: set[str] = set()
        offset: Any = None
        while True:
            records, offset = self._call(
                "scroll",
                lambda offset=offset: self._client.scroll(  # type: ignore[misc]
                    self._collection,
                    scroll_filter=to_qdrant_filter(filter, qm),
                    limit=_SCROLL_PAGE,
                    offset=offset,
                    with_payload=["doc_id"],
                ),
            )
            found.update(str((r.payload or {})["doc_id"]) for r in records)
            if offset is None:
                return found

    def count(self) -> int:
        return int(
            self._call("count", lambda: self._client.count(self._collection, exact=True)).count
        )

    def optimize(self) -> None:
        """A server indexes in the background; nothing to force here."""

    def close(self) -> None:
        self._client.close()


def aliases(client: QdrantClient) -> dict[str, str]:
    """Alias name -> collection name."""
    return {a.alias_name: a.collection_name for a in client.get_aliases().aliases}


def model_collections(client: QdrantClient, alias: str) -> list[dict[str, Any]]:
    """Collections built for ``alias`` (one per model version), and which one it serves."""
    serving = aliases(client).get(alias)
    found = []
    for description in client.get_collections().collections:
        if description.name.startswith(f"{alias}__"):
            metadata = client.get_collection(description.name).config.metadata or {}
            found.append(
                {
                    "collection": description.name,
                    "model_id": metadata.get("model_id"),
                    "model_version": metadata.get("model_version"),
                    "dim": metadata.get("dim"),
                    "points": client.count(description.name, exact=True).count,
                    "serving": description.name == serving,
                }
            )
    return found


def promote(client: QdrantClient, alias: str, collection: str) -> None:
    """Point ``alias`` at ``collection`` in one atomic request."""
    if not client.collection_exists(collection):
        raise ConfigError(f"no Qdrant collection {collection!r}")
    operations: list[Any] = []
    if alias in aliases(client):
        operations.append(qm.DeleteAliasOperation(delete_alias=qm.DeleteAlias(alias_name=alias)))
    operations.append(
        qm.CreateAliasOperation(
            create_alias=qm.CreateAlias(collection_name=collection, alias_name=alias)
        )
    )
    client.update_collection_aliases(change_aliases_operations=operations)


def drop(client: QdrantClient, alias: str, collections: Iterable[str]) -> list[str]:
    """Delete model collections that the alias does not serve; returns what was dropped."""
    serving = aliases(client).get(alias)
    dropped = []
    for name in collections:
        if name == serving:
            raise ConfigError(f"{name!r} is what {alias!r} serves: promote another one first")
        if client.delete_collection(name):
            dropped.append(name)
    return dropped
