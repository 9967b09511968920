"""``ClientCollection``: a collection (or alias) reached through qdrant-client.

Serves a Qdrant server and qdrant-client's local mode (``:memory:`` or a path), which the
tests use as the server's stand-in: same client, same models. Local mode searches by brute
force, so it is never the default for real corpora. Every request is retried on transient
errors (timeouts, 429, 5xx) with jittered exponential backoff; what still fails becomes
``BackendUnavailableError``.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from qdrant_client import QdrantClient
from qdrant_client import models as qm

from braid.engine.errors import BackendUnavailableError
from braid.engine.filters import FilterExpr
from braid.engine.models import ScoredPoint
from braid.engine.qdrant.convert import doc_ids_filter, engine_vector, record_from
from braid.engine.qdrant.filters import to_qdrant_filter
from braid.engine.qdrant.points import (
    DenseLayout,
    IndexKind,
    Layout,
    Point,
    Record,
    SparseLayout,
    SparseVector,
    Vector,
    index_key,
    metadata_fields,
    ranked,
    stored_point_ids,
)
from braid.engine.qdrant.retries import BACKEND_ERRORS, Caller, create_if_missing

_SCHEMA_TYPES: dict[IndexKind, qm.PayloadSchemaType] = {
    "keyword": qm.PayloadSchemaType.KEYWORD,
    "float": qm.PayloadSchemaType.FLOAT,
    "bool": qm.PayloadSchemaType.BOOL,
}
SCROLL_PAGE = 2_000


@dataclass(frozen=True, slots=True)
class QdrantOptions:
    """Collection and request options for a Qdrant server (``Settings.qdrant``)."""

    on_disk_vectors: bool = False
    on_disk_payload: bool = True
    on_disk_sparse_index: bool = False
    quantization: Literal["none", "scalar", "binary"] = "none"
    rescore: bool = True
    oversampling: float = 2.0
    hnsw_ef: int | None = None
    shard_number: int = 1
    replication_factor: int = 1
    upsert_batch: int = 256
    upsert_parallel: int = 1
    retries: int = 3


def collection_exists(client: QdrantClient, name: str, retries: int = 3) -> bool:
    """Whether ``name`` is a collection or an alias on ``client``."""
    return Caller(retries)("collection lookup", lambda: client.collection_exists(name))


class ClientCollection:
    """The points of one layout in the collection (or alias) ``name``."""

    def __init__(
        self,
        client: QdrantClient,
        name: str,
        layout: Layout,
        options: QdrantOptions | None = None,
        *,
        manifest: Mapping[str, Any] | None = None,
        owns_client: bool = False,
    ) -> None:
        """Open ``name``, creating it for ``layout`` (with ``manifest``) when it is missing.

        Args:
            client: the connection; shared by the dense and the sparse stores (local mode
                allows one client per folder).
            name: a collection or an alias.
            layout: what the points hold.
            options: server options (quantization, on-disk, shards, batches, retries).
            manifest: the collection's metadata when it is created here.
            owns_client: ``close`` closes the client too.

        Raises:
            BackendUnavailableError: the server cannot be reached.
        """
        self._client = client
        self._name = name
        self._layout = layout
        self._options = options or QdrantOptions()
        self._owns_client = owns_client
        self._call = Caller(self._options.retries)
        self._lock = threading.Lock()
        try:
            if not self._call("collection lookup", lambda: client.collection_exists(name)):
                create_if_missing(lambda: self._create(dict(manifest or {}) or None))
            info = self._call("get collection", lambda: client.get_collection(name))
        except BACKEND_ERRORS as exc:  # a 4xx on creation: not transient, not retried
            raise BackendUnavailableError(f"Qdrant at {name!r}: {exc}") from exc
        self._indexed: set[str] = set(info.payload_schema)

    def _create(self, metadata: dict[str, Any] | None) -> None:
        opts = self._options
        if isinstance(self._layout, SparseLayout):
            self._client.create_collection(
                self._name,
                vectors_config={},
                sparse_vectors_config={
                    self._layout.name: qm.SparseVectorParams(
                        index=qm.SparseIndexParams(on_disk=opts.on_disk_sparse_index),
                        modifier=qm.Modifier.IDF,
                    )
                },
                shard_number=opts.shard_number,
                replication_factor=opts.replication_factor,
                on_disk_payload=opts.on_disk_payload,
                metadata=metadata,
            )
            return
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
            self._name,
            vectors_config=qm.VectorParams(
                size=self._layout.dim, distance=qm.Distance.COSINE, on_disk=opts.on_disk_vectors
            ),
            on_disk_payload=opts.on_disk_payload,
            quantization_config=quantization,
            shard_number=opts.shard_number,
            replication_factor=opts.replication_factor,
            metadata=metadata,
        )

    @property
    def name(self) -> str:
        return f"the Qdrant collection {self._name!r}"

    @property
    def collection(self) -> str:
        """The collection or alias name."""
        return self._name

    @property
    def layout(self) -> Layout:
        return self._layout

    @property
    def client(self) -> QdrantClient:
        return self._client

    @property
    def options(self) -> QdrantOptions:
        return self._options

    def manifest(self) -> dict[str, Any] | None:
        info = self._call("get collection", lambda: self._client.get_collection(self._name))
        return dict(info.config.metadata) if info.config.metadata else None

    def write_manifest(self, manifest: Mapping[str, Any]) -> None:
        self._call(
            "update collection",
            lambda: self._client.update_collection(self._name, metadata=dict(manifest)),
        )

    def ensure_indexes(self, kinds: Mapping[str, IndexKind]) -> None:
        with self._lock:
            for field, kind in kinds.items():
                key = index_key(field)
                if key in self._indexed:
                    continue
                with warnings.catch_warnings():
                    # Local mode warns that indexes do nothing there; a server uses them.
                    warnings.simplefilter("ignore", UserWarning)
                    self._call(
                        "index creation",
                        lambda key=key, kind=kind: self._client.create_payload_index(  # type: ignore[misc]
                            self._name, key, _SCHEMA_TYPES[kind]
                        ),
                    )
                self._indexed.add(key)

    def indexed_fields(self) -> set[str]:
        # Another process (a worker) may have indexed new fields: ask the collection.
        info = self._call("get collection", lambda: self._client.get_collection(self._name))
        with self._lock:
            self._indexed |= set(info.payload_schema)
            return metadata_fields(self._indexed)

    def upsert(self, points: Sequence[Point]) -> None:
        """Upsert in batches (in parallel when configured), retrying transient errors."""
        if not points:
            return
        built = [
            qm.PointStruct(
                id=p.id, vector=engine_vector(p.vector, self._layout, qm), payload=p.payload
            )
            for p in points
        ]
        opts = self._options
        if len(built) > opts.upsert_batch and opts.upsert_parallel > 1:
            self._call(
                "upsert",
                lambda: self._client.upload_points(
                    self._name,
                    built,
                    batch_size=opts.upsert_batch,
                    parallel=opts.upsert_parallel,
                    max_retries=opts.retries,
                    wait=True,
                ),
            )
            return
        for start in range(0, len(built), opts.upsert_batch):
            batch = built[start : start + opts.upsert_batch]
            self._call(
                "upsert",
                lambda batch=batch: self._client.upsert(  # type: ignore[misc]
                    self._name, points=batch, wait=True
                ),
            )

    def delete_docs(self, doc_ids: Sequence[str]) -> None:
        if not doc_ids:
            return
        selector = qm.FilterSelector(filter=doc_ids_filter(list(doc_ids), qm))
        self._call(
            "delete",
            lambda: self._client.delete(self._name, points_selector=selector, wait=True),
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

    def query(self, vector: Vector, limit: int, filter: FilterExpr | None) -> list[ScoredPoint]:
        if isinstance(vector, SparseVector):
            query: Any = qm.SparseVector(indices=vector.indices, values=vector.values)
            using = self._layout.name if isinstance(self._layout, SparseLayout) else None
            params = None  # quantization and HNSW settings are the dense vectors'
        else:
            query, using, params = vector, None, self._search_params()
        found = self._call(
            "search",
            lambda: (
                self._client.query_points(
                    self._name,
                    query=query,
                    using=using,
                    query_filter=to_qdrant_filter(filter, qm),
                    search_params=params,
                    limit=limit,
                    with_payload=False,
                ).points
            ),
        )
        return ranked((p.id, p.score) for p in found)

    def retrieve(self, point_ids: Sequence[str]) -> list[Record]:
        ids = stored_point_ids(point_ids)
        if not ids:
            return []
        records = self._call(
            "retrieve",
            lambda: self._client.retrieve(self._name, ids=ids, with_payload=True),
        )
        return [Record(str(r.id), dict(r.payload or {})) for r in records]

    def scroll(
        self, filter: FilterExpr | None, payload: bool | list[str], vectors: bool = False
    ) -> Iterator[Record]:
        offset: Any = None
        while True:
            records, offset = self._call(
                "scroll",
                lambda offset=offset: self._client.scroll(  # type: ignore[misc]
                    self._name,
                    scroll_filter=to_qdrant_filter(filter, qm),
                    limit=SCROLL_PAGE,
                    offset=offset,
                    with_payload=payload,
                    with_vectors=vectors,
                ),
            )
            for r in records:
                yield record_from(r, vectors)
            if offset is None:
                return

    def count(self) -> int:
        return int(self._call("count", lambda: self._client.count(self._name, exact=True)).count)

    def optimize(self) -> None:
        """A server optimizes segments and builds indexes in the background."""

    def close(self) -> None:
        if self._owns_client:
            self._client.close()


def dense_layout_of(client: QdrantClient, name: str, retries: int = 3) -> DenseLayout:
    """The dense layout an existing collection was created with."""
    info = Caller(retries)("get collection", lambda: client.get_collection(name))
    params = info.config.params.vectors
    size = getattr(params, "size", None)
    if size is None:
        raise BackendUnavailableError(f"Qdrant collection {name!r} holds no unnamed dense vector")
    return DenseLayout(int(size))
