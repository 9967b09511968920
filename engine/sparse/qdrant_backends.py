"""Where ``QdrantSparseStore`` keeps its points: a Qdrant Edge shard or a qdrant-client collection.

Both adapters hold points with one sparse vector (``bm25``, IDF modifier) and the chunk
payload, and answer the same few calls, so the BM25 logic is written once.
"""

from __future__ import annotations

import json
import os
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

from braid.engine.dense.common import CORE_INDEXES, IndexKind
from braid.engine.dense.qdrant_filters import METADATA_KEY, to_qdrant_filter
from braid.engine.errors import BackendUnavailableError
from braid.engine.filters import FilterExpr
from braid.engine.sparse.bm25_vectors import SparseVectorData

VECTOR_NAME = "bm25"
MANIFEST_FILE = "braid-bm25.json"
_SCROLL_PAGE = 2_000
T = TypeVar("T")

# One stored point: id, sparse vector, payload.
SparsePoint = tuple[str, SparseVectorData, dict[str, Any]]


class SparseCollection(Protocol):
    """The calls ``QdrantSparseStore`` makes of the engine that stores its points."""

    def manifest(self) -> dict[str, Any] | None: ...

    def write_manifest(self, manifest: dict[str, Any]) -> None: ...

    def ensure_indexes(self, kinds: dict[str, IndexKind]) -> None: ...

    def upsert(self, points: Sequence[SparsePoint]) -> None: ...

    def delete_docs(self, doc_ids: Sequence[str]) -> None: ...

    def query(
        self, vector: SparseVectorData, limit: int, filter: FilterExpr | None
    ) -> list[tuple[str, float]]: ...

    def retrieve(self, point_ids: Sequence[str]) -> list[dict[str, Any]]: ...

    def scroll(
        self, filter: FilterExpr | None, payload: bool | list[str]
    ) -> Iterator[tuple[str, dict[str, Any]]]: ...

    def count(self) -> int: ...

    def optimize(self) -> None: ...

    def close(self) -> None: ...


def _built(point_class: Any, vector_class: Any, points: Sequence[SparsePoint]) -> list[Any]:
    """Points in the engine's own classes (Edge and qdrant-client name them differently)."""
    return [
        point_class(
            id=pid,
            vector={VECTOR_NAME: vector_class(indices=v.indices, values=v.values)},
            payload=payload,
        )
        for pid, v, payload in points
    ]


def _index_key(field: str) -> str:
    return field if field in CORE_INDEXES else f"{METADATA_KEY}.{field}"


class EdgeSparseCollection:
    """A Qdrant Edge shard directory holding only the ``bm25`` sparse vector."""

    def __init__(self, path: Path, *, search_threads: int | None = None) -> None:
        import qdrant_edge as qe

        self._qe = qe
        self._path = path
        self._lock = threading.Lock()
        config = qe.EdgeConfig(
            sparse_vectors={VECTOR_NAME: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
            max_search_threads=search_threads,
        )
        self._config = config
        try:
            if (path / MANIFEST_FILE).exists():
                self._shard = qe.EdgeShard.load(str(path), config)
            else:
                path.mkdir(parents=True, exist_ok=True)
                self._shard = qe.EdgeShard.create(str(path), config)
        except Exception as exc:  # the binding raises plain exceptions
            raise BackendUnavailableError(
                f"cannot open the Qdrant Edge BM25 shard at {path}: {exc}"
            ) from exc
        self._indexed: set[str] = set(self._shard.info().payload_schema)
        self._schema_types = {
            "keyword": qe.PayloadSchemaType.Keyword,
            "float": qe.PayloadSchemaType.Float,
            "bool": qe.PayloadSchemaType.Bool,
        }

    def manifest(self) -> dict[str, Any] | None:
        path = self._path / MANIFEST_FILE
        return dict(json.loads(path.read_text())) if path.exists() else None

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        path = self._path / MANIFEST_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(manifest))
        os.replace(tmp, path)  # atomic: a crash leaves the old manifest or the new one

    def ensure_indexes(self, kinds: dict[str, IndexKind]) -> None:
        with self._lock:
            for field, kind in kinds.items():
                key = _index_key(field)
                if key not in self._indexed:
                    op = self._qe.UpdateOperation.create_field_index(key, self._schema_types[kind])
                    self._shard.update(op)
                    self._indexed.add(key)

    def upsert(self, points: Sequence[SparsePoint]) -> None:
        qe = self._qe
        built = _built(qe.Point, qe.SparseVector, points)
        with self._lock:
            self._shard.update(qe.UpdateOperation.upsert_points(built))

    def delete_docs(self, doc_ids: Sequence[str]) -> None:
        qe = self._qe
        condition = qe.FieldCondition(key="doc_id", match=qe.MatchAny(any=list(doc_ids)))
        with self._lock:
            self._shard.update(
                qe.UpdateOperation.delete_points_by_filter(qe.Filter(must=[condition]))
            )

    def query(
        self, vector: SparseVectorData, limit: int, filter: FilterExpr | None
    ) -> list[tuple[str, float]]:
        qe = self._qe
        request = qe.QueryRequest(
            limit=limit,
            query=qe.Query.Nearest(
                qe.SparseVector(indices=vector.indices, values=vector.values), using=VECTOR_NAME
            ),
            filter=to_qdrant_filter(filter, qe),
            with_payload=False,
        )
        return [(str(p.id), float(p.score)) for p in self._shard.query(request)]

    def retrieve(self, point_ids: Sequence[str]) -> list[dict[str, Any]]:
        records = self._shard.retrieve(list(point_ids), with_payload=True, with_vector=False)
        return [dict(r.payload or {}) for r in records]

    def scroll(
        self, filter: FilterExpr | None, payload: bool | list[str]
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        qe = self._qe
        offset: Any = None
        while True:
            records, offset = self._shard.scroll(
                qe.ScrollRequest(
                    offset=offset,
                    limit=_SCROLL_PAGE,
                    filter=to_qdrant_filter(filter, qe),
                    with_payload=payload,
                )
            )
            for record in records:
                yield str(record.id), dict(record.payload or {})
            if offset is None:
                return

    def count(self) -> int:
        return int(self._shard.count(self._qe.CountRequest(exact=True)))

    def optimize(self) -> None:
        """Merge segments, then reload: the shard keeps counting deleted points in IDF
        until it is loaded again (measured with qdrant-edge-py 0.9.0)."""
        with self._lock:
            self._shard.optimize()
            self._shard.flush()
            self._shard.close()
            self._shard = self._qe.EdgeShard.load(str(self._path), self._config)

    def close(self) -> None:
        with self._lock:
            self._shard.flush()
            self._shard.close()


class ClientSparseCollection:
    """A collection on a Qdrant server (or qdrant-client's local mode) via qdrant-client.

    The client may be shared with the dense store (local mode allows one client per folder);
    ``close`` then leaves it open for its owner.
    """

    def __init__(
        self,
        client: Any,
        collection: str,
        *,
        shard_number: int = 1,
        replication_factor: int = 1,
        on_disk_payload: bool = True,
        on_disk_index: bool = False,
        upsert_batch: int = 256,
        retries: int = 3,
        owns_client: bool = False,
    ) -> None:
        from qdrant_client import models as qm

        from braid.engine.dense.qdrant import BACKEND_ERRORS, create_if_missing, retrying

        self._qm = qm
        self._client = client
        self._collection = collection
        self._upsert_batch = upsert_batch
        self._owns_client = owns_client
        self._retrying = retrying(retries)
        self._errors = BACKEND_ERRORS
        self._schema_types = {
            "keyword": qm.PayloadSchemaType.KEYWORD,
            "float": qm.PayloadSchemaType.FLOAT,
            "bool": qm.PayloadSchemaType.BOOL,
        }
        try:
            if not client.collection_exists(collection):
                create_if_missing(
                    lambda: client.create_collection(
                        collection,
                        vectors_config={},
                        sparse_vectors_config={
                            VECTOR_NAME: qm.SparseVectorParams(
                                index=qm.SparseIndexParams(on_disk=on_disk_index),
                                modifier=qm.Modifier.IDF,
                            )
                        },
                        shard_number=shard_number,
                        replication_factor=replication_factor,
                        on_disk_payload=on_disk_payload,
                    )
                )
            self._indexed: set[str] = set(client.get_collection(collection).payload_schema)
        except BACKEND_ERRORS as exc:
            raise BackendUnavailableError(f"Qdrant at {collection!r}: {exc}") from exc

    def _call(self, what: str, action: Callable[[], T]) -> T:
        try:
            return self._retrying(action)
        except self._errors as exc:
            raise BackendUnavailableError(f"Qdrant {what} failed: {exc}") from exc

    def manifest(self) -> dict[str, Any] | None:
        info = self._call("get collection", lambda: self._client.get_collection(self._collection))
        return dict(info.config.metadata) if info.config.metadata else None

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        self._call(
            "update collection",
            lambda: self._client.update_collection(self._collection, metadata=manifest),
        )

    def ensure_indexes(self, kinds: dict[str, IndexKind]) -> None:
        for field, kind in kinds.items():
            key = _index_key(field)
            if key not in self._indexed:
                with warnings.catch_warnings():
                    # Local mode warns that indexes do nothing there; a server uses them.
                    warnings.simplefilter("ignore", UserWarning)
                    self._call(
                        "index creation",
                        lambda key=key, kind=kind: self._client.create_payload_index(  # type: ignore[misc]
                            self._collection, key, self._schema_types[kind]
                        ),
                    )
                self._indexed.add(key)

    def upsert(self, points: Sequence[SparsePoint]) -> None:
        built = _built(self._qm.PointStruct, self._qm.SparseVector, points)
        for start in range(0, len(built), self._upsert_batch):
            batch = built[start : start + self._upsert_batch]
            self._call(
                "upsert",
                lambda batch=batch: self._client.upsert(  # type: ignore[misc]
                    self._collection, points=batch, wait=True
                ),
            )

    def delete_docs(self, doc_ids: Sequence[str]) -> None:
        qm = self._qm
        selector = qm.FilterSelector(
            filter=qm.Filter(
                must=[qm.FieldCondition(key="doc_id", match=qm.MatchAny(any=list(doc_ids)))]
            )
        )
        self._call(
            "delete",
            lambda: self._client.delete(self._collection, points_selector=selector, wait=True),
        )

    def query(
        self, vector: SparseVectorData, limit: int, filter: FilterExpr | None
    ) -> list[tuple[str, float]]:
        qm = self._qm
        found = self._call(
            "search",
            lambda: (
                self._client.query_points(
                    self._collection,
                    query=qm.SparseVector(indices=vector.indices, values=vector.values),
                    using=VECTOR_NAME,
                    query_filter=to_qdrant_filter(filter, qm),
                    limit=limit,
                    with_payload=False,
                ).points
            ),
        )
        return [(str(p.id), float(p.score)) for p in found]

    def retrieve(self, point_ids: Sequence[str]) -> list[dict[str, Any]]:
        records = self._call(
            "retrieve",
            lambda: self._client.retrieve(self._collection, ids=list(point_ids), with_payload=True),
        )
        return [dict(r.payload or {}) for r in records]

    def scroll(
        self, filter: FilterExpr | None, payload: bool | list[str]
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        offset: Any = None
        while True:
            records, offset = self._call(
                "scroll",
                lambda offset=offset: self._client.scroll(  # type: ignore[misc]
                    self._collection,
                    scroll_filter=to_qdrant_filter(filter, self._qm),
                    limit=_SCROLL_PAGE,
                    offset=offset,
                    with_payload=payload,
                ),
            )
            for record in records:
                yield str(record.id), dict(record.payload or {})
            if offset is None:
                return

    def count(self) -> int:
        return int(
            self._call("count", lambda: self._client.count(self._collection, exact=True)).count
        )

    def optimize(self) -> None:
        """A server optimizes segments in the background."""

    def close(self) -> None:
        if self._owns_client:
            self._client.close()
