"""``EdgeCollection``: a Qdrant Edge shard directory in-process (qdrant-edge-py).

Edge is single-process: the shard belongs to the one process that holds the data dir's lock.
Its manifest is a JSON file beside the shard, replaced atomically.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import qdrant_edge as qe

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

_SCHEMA_TYPES: dict[IndexKind, Any] = {
    "keyword": qe.PayloadSchemaType.Keyword,
    "float": qe.PayloadSchemaType.Float,
    "bool": qe.PayloadSchemaType.Bool,
}
SCROLL_PAGE = 2_000


def read_manifest(path: Path, manifest_file: str) -> dict[str, Any] | None:
    """The manifest beside the shard at ``path``, ``None`` when there is none (no shard yet)."""
    file = path / manifest_file
    return dict(json.loads(file.read_text())) if file.exists() else None


QuantizationKind = Literal["int8", "binary"]


@dataclass(frozen=True, slots=True)
class EdgeQuantization:
    """A quantized copy of a dense shard's vectors, and how searches use it.

    Qdrant builds the quantized copy when its optimizer indexes a segment, and leaves a
    segment smaller than the indexing threshold (about 10 MB of vectors by default) plain
    and unquantized: give ``EdgeCollection`` a small ``indexing_threshold_kb`` to quantize a
    small shard. Searches pass ``rescore`` and ``oversampling`` explicitly: without them
    qdrant-edge-py 0.9.0 does not rescore (measured).
    """

    kind: QuantizationKind = "int8"
    quantile: float = 0.99  # int8: the share of values the int8 range covers (Qdrant's)
    rescore: bool = True  # re-rank the quantized candidates by the float32 originals
    oversampling: float = 2.0  # candidates fetched from the quantized index per result

    def engine_config(self) -> Any:
        if self.kind == "int8":
            return qe.ScalarQuantizationConfig(
                type=qe.ScalarType.Int8, quantile=self.quantile, always_ram=True
            )
        return qe.BinaryQuantizationConfig(always_ram=True)

    def search_params(self) -> Any:
        return qe.SearchParams(
            quantization=qe.QuantizationSearchParams(
                rescore=self.rescore, oversampling=self.oversampling
            )
        )


def _config(
    layout: Layout,
    search_threads: int | None,
    quantization: EdgeQuantization | None = None,
    indexing_threshold_kb: int | None = None,
) -> Any:
    if isinstance(layout, DenseLayout):
        tuning: dict[str, Any] = {}  # only what was asked for: the defaults stay Qdrant's
        if quantization is not None:
            tuning["quantization_config"] = quantization.engine_config()
        if indexing_threshold_kb is not None:
            tuning["optimizers"] = qe.EdgeOptimizersConfig(indexing_threshold=indexing_threshold_kb)
        return qe.EdgeConfig(
            vectors=qe.EdgeVectorParams(size=layout.dim, distance=qe.Distance.Cosine),
            max_search_threads=search_threads,
            **tuning,
        )
    if quantization is not None or indexing_threshold_kb is not None:
        raise ValueError("quantization and the indexing threshold apply to dense shards only")
    return qe.EdgeConfig(
        sparse_vectors={layout.name: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
        max_search_threads=search_threads,
    )


class EdgeCollection:
    """The points of one layout in a Qdrant Edge shard at ``path``."""

    def __init__(
        self,
        path: Path,
        layout: Layout,
        *,
        manifest_file: str,
        search_threads: int | None = None,
        quantization: EdgeQuantization | None = None,
        indexing_threshold_kb: int | None = None,
    ) -> None:
        """Load the shard when its manifest exists, otherwise create it.

        Args:
            path: shard directory.
            layout: dense (cosine, ``dim``) or sparse (IDF) vectors.
            manifest_file: the manifest's file name inside ``path``.
            search_threads: size of the shard's search pool (``None``: one per CPU).
            quantization: dense only: keep a quantized copy of the vectors and search it
                (``None``: float32 vectors only, as braid's own shards).
            indexing_threshold_kb: dense only: the optimizer indexes (HNSW) and quantizes a
                segment whose vectors take more kilobytes than this (``None``: Qdrant's
                default).

        Raises:
            BackendUnavailableError: the shard cannot be opened or created.
            ValueError: quantization or an indexing threshold for a sparse layout.
        """
        self._path = path
        self._layout = layout
        self._manifest_file = manifest_file
        self._lock = threading.Lock()
        self._config = _config(layout, search_threads, quantization, indexing_threshold_kb)
        self._params = quantization.search_params() if quantization is not None else None
        try:
            if (path / manifest_file).exists():
                self._shard = qe.EdgeShard.load(str(path), self._config)
            else:
                path.mkdir(parents=True, exist_ok=True)
                self._shard = qe.EdgeShard.create(str(path), self._config)
        except Exception as exc:  # the binding raises plain exceptions
            raise BackendUnavailableError(
                f"cannot open Qdrant Edge shard at {path}: {exc}"
            ) from exc
        self._indexed: set[str] = set(self._shard.info().payload_schema)

    @property
    def name(self) -> str:
        return f"the Qdrant Edge shard at {self._path}"

    @property
    def layout(self) -> Layout:
        return self._layout

    def manifest(self) -> dict[str, Any] | None:
        return read_manifest(self._path, self._manifest_file)

    def write_manifest(self, manifest: Mapping[str, Any]) -> None:
        path = self._path / self._manifest_file
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(dict(manifest)))
        os.replace(tmp, path)  # atomic: a crash leaves the old manifest or the new one

    def ensure_indexes(self, kinds: Mapping[str, IndexKind]) -> None:
        with self._lock:
            for field, kind in kinds.items():
                key = index_key(field)
                if key not in self._indexed:
                    self._shard.update(
                        qe.UpdateOperation.create_field_index(key, _SCHEMA_TYPES[kind])
                    )
                    self._indexed.add(key)

    def indexed_fields(self) -> set[str]:
        # This process owns the shard: the set it keeps is every index there is.
        with self._lock:
            return metadata_fields(self._indexed)

    def upsert(self, points: Sequence[Point]) -> None:
        if not points:
            return
        built = [
            qe.Point(id=p.id, vector=engine_vector(p.vector, self._layout, qe), payload=p.payload)
            for p in points
        ]
        with self._lock:
            self._shard.update(qe.UpdateOperation.upsert_points(built))

    def delete_docs(self, doc_ids: Sequence[str]) -> None:
        if not doc_ids:
            return
        selector = doc_ids_filter(list(doc_ids), qe)
        with self._lock:
            self._shard.update(qe.UpdateOperation.delete_points_by_filter(selector))

    def query(self, vector: Vector, limit: int, filter: FilterExpr | None) -> list[ScoredPoint]:
        if isinstance(vector, SparseVector):
            using = self._layout.name if isinstance(self._layout, SparseLayout) else None
            query = qe.Query.Nearest(
                qe.SparseVector(indices=vector.indices, values=vector.values), using=using
            )
        else:
            query = qe.Query.Nearest(vector)
        request = qe.QueryRequest(
            limit=limit,
            query=query,
            filter=to_qdrant_filter(filter, qe),
            with_payload=False,
            params=self._params,
        )
        return ranked((p.id, p.score) for p in self._shard.query(request))

    def retrieve(self, point_ids: Sequence[str]) -> list[Record]:
        ids = stored_point_ids(point_ids)
        if not ids:
            return []
        wanted: list[int | uuid.UUID | str] = list(ids)
        records = self._shard.retrieve(wanted, with_payload=True, with_vector=False)
        return [Record(str(r.id), dict(r.payload or {})) for r in records]

    def scroll(
        self, filter: FilterExpr | None, payload: bool | list[str], vectors: bool = False
    ) -> Iterator[Record]:
        offset: Any = None
        while True:
            records, offset = self._shard.scroll(
                qe.ScrollRequest(
                    offset=offset,
                    limit=SCROLL_PAGE,
                    filter=to_qdrant_filter(filter, qe),
                    with_payload=payload,
                    with_vector=vectors,
                )
            )
            for r in records:
                yield record_from(r, vectors)
            if offset is None:
                return

    def count(self) -> int:
        return int(self._shard.count(qe.CountRequest(exact=True)))

    def optimize(self) -> None:
        """Merge segments and build indexes now; Qdrant Edge only does it when asked.

        A sparse (BM25) shard is then reloaded: it keeps counting deleted points in IDF until
        it is loaded again (measured with qdrant-edge-py 0.9.0). Dense scores do not depend
        on other points, so a dense shard stays open (searches may be running on it).
        """
        with self._lock:
            self._shard.optimize()
            if isinstance(self._layout, SparseLayout):
                self._shard.flush()
                self._shard.close()
                self._shard = qe.EdgeShard.load(str(self._path), self._config)

    def flush(self) -> None:
        with self._lock:
            self._shard.flush()

    def close(self) -> None:
        with self._lock:
            self._shard.flush()
            self._shard.close()
