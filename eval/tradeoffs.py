"""``braid eval tradeoffs``: what truncating the embedding (Matryoshka) and quantizing it cost in
quality, and what they save in memory and latency, in one table; with ``--pca``, also the same
cuts made after rotating the vectors onto the corpus's principal axes (``engine/rotation.py``).

The corpus's chunk vectors are read back once, at full dimension, from the collection's
evaluation index (``eval.indexes``; built as ``braid eval run`` builds it when missing), and the
split's queries are encoded once, each alone, as the searcher encodes them. Each configuration
(a dimension x float32 | int8 | binary) gets its own temporary Qdrant Edge shard holding the
truncated, re-normalised vectors with the chunks' payloads, written through the product's dense
store (``CollectionDenseStore``). Its queries go through ``HybridSearcher.search`` by the
harness's own call (``eval.runs.search_once``): the chunk depth, the grouping into documents
and the metrics are those of ``braid eval run``, so the full-dimension float32 row is what
``braid eval run --mode dense`` measures, up to HNSW: a rebuilt graph is another approximation
and may return other chunks deep in the list (on SciFact: the same nDCG@10 for every query,
and hybrid, whose min-max fusion sees the list's tail, 0.00005 apart). Hybrid fuses the
index's own BM25 with each truncated dense store.

Every shard is indexed alike: HNSW with Qdrant's defaults, and an indexing threshold of 1 KB,
because Qdrant quantizes a segment only when it indexes it and leaves a small one plain (the
64-dimension vectors of SciFact take 2.6 MB, under its default of about 10 MB): without it an
int8 row would silently search float32 vectors. int8 is Qdrant's scalar quantization
(quantile 0.99) and binary its 1-bit one, both searched with rescoring by the float32
originals and oversampling 2.0.

Latency is the dense stage of the query path (the Qdrant query, ``timings_ms["dense"]``) with
queries pre-encoded and every shard's search pool fixed at ``search_threads``. The
configurations take turns on each query, the first one rotating, so a slow moment of a shared
machine falls on all of them alike; p50 is the median over queries.

Bytes per vector are what Qdrant stores (qdrant-edge-py 0.9.0; ``quantized.data`` holds exactly
that per point): float32 ``4 d``; int8 ``d`` rounded up to 16, plus one 4-byte float per
vector; binary ``d`` bits rounded up to 128. A quantized shard keeps the float32 originals for
rescoring too: RAM holds only the quantized copy when the originals stay on disk. The shard's
files are measured as well (``disk``).

Each row's nDCG@10 is compared with the full-dimension float32 row's by the paired
randomisation test, Holm-corrected over the rows; dense and hybrid are two families.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from braid.engine.config import Settings
from braid.engine.dense.edge import MANIFEST_FILE
from braid.engine.dense.store import CollectionDenseStore
from braid.engine.errors import BackendUnavailableError, ConfigError, InvalidRequestError
from braid.engine.models import Chunk, ModelInfo
from braid.engine.payload import chunk_from_payload
from braid.engine.protocols import DenseStore, Embedder, Vectors
from braid.engine.qdrant.edge import EdgeCollection, EdgeQuantization
from braid.engine.qdrant.points import DenseLayout
from braid.engine.rotation import principal_axes, rotate
from braid.engine.searcher import HybridSearcher
from braid.eval.caching import CachingEmbedder
from braid.eval.datasets import Dataset
from braid.eval.evaluation import ModeResult, scored_result
from braid.eval.experiments import model_slug, with_embedding_model
from braid.eval.indexes import default_index_dir, open_with_progress
from braid.eval.metrics import PRIMARY
from braid.eval.progress import StageProgress, Tick, no_tick, silent
from braid.eval.runs import DEFAULT_DEPTH, Run, RunParams, run_tag, search_once
from braid.eval.stats import Comparison, compare, with_holm

Quantization = Literal["none", "int8", "binary"]
Rotation = Literal["none", "pca"]
QUANTIZATION_NAMES: tuple[str, ...] = get_args(Quantization)
DEFAULT_DIMS = (384, 256, 128, 64)
DEFAULT_SEARCH_THREADS = 1
# Qdrant indexes (HNSW) and quantizes only segments whose vectors pass this many KB.
INDEXING_THRESHOLD_KB = 1
INT8_QUANTILE = 0.99
OVERSAMPLING = 2.0
ENGINE_QUANTIZATION: dict[str, EdgeQuantization] = {
    "int8": EdgeQuantization(
        "int8", quantile=INT8_QUANTILE, rescore=True, oversampling=OVERSAMPLING
    ),
    "binary": EdgeQuantization("binary", rescore=True, oversampling=OVERSAMPLING),
}
FLOAT32_BYTES = 4
INT8_ALIGN = 16  # int8 codes are padded to 16 bytes ...
INT8_EXTRA = 4  # ... and carry one float32 correction per vector (qdrant-edge-py 0.9.0)
BINARY_ALIGN = 128  # bits: codes are padded to 16 bytes (measured at 16 to 384 dimensions)
WARMUP = 3  # queries per configuration before timing (as ``evaluate_mode``)
UPSERT_BATCH = 1000
MIB = 1024 * 1024


def vector_bytes(dim: int, quantization: Quantization) -> int:
    """Bytes Qdrant stores per vector of ``dim`` components in that form (the searched copy)."""
    if quantization == "int8":
        return -(-dim // INT8_ALIGN) * INT8_ALIGN + INT8_EXTRA
    if quantization == "binary":
        return -(-dim // BINARY_ALIGN) * BINARY_ALIGN // 8
    return FLOAT32_BYTES * dim


@dataclass(frozen=True)
class TradeoffConfig:
    """One row of the table: a dimension, how the vectors are cut to it and stored.

    ``rotation`` ``pca`` rotates the vectors onto the corpus's principal axes before the cut
    (``engine/rotation.py``); ``none`` cuts them as the model made them.
    """

    dim: int
    quantization: Quantization = "none"
    rotation: Rotation = "none"

    @property
    def name(self) -> str:
        form = "float32" if self.quantization == "none" else self.quantization
        return f"{self.dim} {form}{' pca' if self.rotation == 'pca' else ''}"

    @property
    def bytes_per_vector(self) -> int:
        return vector_bytes(self.dim, self.quantization)

    def as_dict(self) -> dict[str, object]:
        return {"dim": self.dim, "quantization": self.quantization, "rotation": self.rotation}


def parse_dims(text: str) -> list[int]:
    """``"384,256,128"`` -> ``[384, 256, 128]``.

    Raises:
        InvalidRequestError: not a comma-separated list of positive integers.
    """
    try:
        dims = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise InvalidRequestError(
            f"--dims takes comma-separated positive integers, got {text!r}"
        ) from exc
    if not dims:
        raise InvalidRequestError("--dims names no dimension")
    bad = [d for d in dims if d <= 0]
    if bad:
        raise InvalidRequestError(f"--dims must be positive integers, got {bad[0]}")
    return dims


def plan_configs(
    dims: Sequence[int] | None, model_dim: int, *, binary: bool = False, pca: bool = False
) -> list[TradeoffConfig]:
    """The rows: every dimension (the full one first: the baseline) x float32, int8 (, binary),
    and with ``pca`` the same cut after the principal-axes rotation, below the full dimension
    (where a rotation changes no cosine).

    Without ``dims``, ``DEFAULT_DIMS`` up to the model's dimension.

    Raises:
        InvalidRequestError: a dimension is not positive or above the model's.
    """
    if dims is None:
        chosen = [d for d in DEFAULT_DIMS if d <= model_dim]
    else:
        if any(d <= 0 for d in dims):
            raise InvalidRequestError(f"--dims must be positive integers, got {list(dims)}")
        above = sorted({d for d in dims if d > model_dim})
        if above:
            raise InvalidRequestError(
                f"--dims {','.join(map(str, above))}: the model has only {model_dim} dimensions"
            )
        chosen = list(dims)
    forms: list[Quantization] = ["none", "int8"]
    if binary:
        forms.append("binary")
    rotations: list[Rotation] = ["none", "pca"] if pca else ["none"]
    return [
        TradeoffConfig(dim, form, rotation)
        for dim in sorted({*chosen, model_dim}, reverse=True)
        for rotation in rotations
        if rotation == "none" or dim < model_dim
        for form in forms
    ]


def truncate(vectors: np.ndarray, dim: int) -> Vectors:
    """The first ``dim`` components of each row, re-normalised to unit length (a Matryoshka cut).

    At the full dimension the rows are returned as they are: they are unit vectors already, and
    the full-dimension row must search exactly the vectors the product searches.
    """
    if dim == vectors.shape[1]:
        full: Vectors = vectors.astype(np.float32, copy=False)
        return full
    head = vectors[:, :dim].astype(np.float64)
    norms = np.linalg.norm(head, axis=1, keepdims=True)
    norms[norms == 0.0] = 1.0  # an all-zero head stays zero (cosine with it is 0)
    cut: Vectors = (head / norms).astype(np.float32)
    return cut


class TruncatedEmbedder:
    """An ``Embedder`` whose vectors are another's (rotated onto ``axes`` when given) cut to
    ``dim`` and re-normalised."""

    def __init__(self, inner: Embedder, dim: int, axes: np.ndarray | None = None) -> None:
        self._inner = inner
        self._dim = dim
        self._axes = axes

    def _cut(self, vectors: np.ndarray) -> Vectors:
        return truncate(vectors if self._axes is None else rotate(vectors, self._axes), self._dim)

    @property
    def info(self) -> ModelInfo:
        model = self._inner.info
        return ModelInfo(model.model_id, model.version, self._dim)

    @property
    def max_seq_length(self) -> int:
        return self._inner.max_seq_length

    @property
    def passage_prefix(self) -> str:
        return self._inner.passage_prefix

    def encode_queries(self, texts: Sequence[str]) -> Vectors:
        return self._cut(self._inner.encode_queries(texts))

    def encode_passages(self, texts: Sequence[str], batch_size: int | None = None) -> Vectors:
        return self._cut(self._inner.encode_passages(texts, batch_size=batch_size))

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self._inner.count_tokens(texts)


@dataclass
class CorpusVectors:
    """Every chunk of the index with its full-dimension vector (rows in the same order)."""

    chunks: list[Chunk]
    vectors: np.ndarray


def read_vectors(dense: DenseStore) -> CorpusVectors:
    """The index's chunks and stored vectors, read back from its dense store.

    Raises:
        ConfigError: the store cannot list its points, holds none, or a point's id is not its
            chunk's (BM25 and the truncated stores would then disagree on ids).
    """
    if not isinstance(dense, CollectionDenseStore):
        raise ConfigError("trade-offs need a dense store that can list its points")
    chunks: list[Chunk] = []
    rows: list[list[float]] = []
    for point_id, vector, payload in dense.points():
        chunk = chunk_from_payload(payload)
        if chunk.point_id != point_id:
            raise ConfigError(f"point {point_id} is not its chunk's id {chunk.point_id}: re-index")
        chunks.append(chunk)
        rows.append(vector)
    if not rows:
        raise ConfigError("the evaluation index holds no vectors")
    return CorpusVectors(chunks, np.asarray(rows, dtype=np.float32))


def shard_disk(path: Path) -> dict[str, int]:
    """What a shard's files take: the float32 originals and the quantized copy (file sizes of
    Qdrant's ``vector_storage/matrix.dat`` and ``quantized.data`` in indexed segments), and
    the whole shard on disk (allocated blocks: HNSW graph, payload and ids included)."""
    originals = quantized = allocated = 0
    for root, _, files in os.walk(path):
        for name in files:
            file = Path(root) / name
            stat = file.stat()
            # allocated blocks: Qdrant preallocates sparse files (WAL, mmap pages)
            blocks = getattr(stat, "st_blocks", None)
            allocated += blocks * 512 if blocks is not None else stat.st_size
            if file.parent.name == "vector_storage":
                if name == "matrix.dat":
                    originals += stat.st_size
                elif name == "quantized.data":
                    quantized += stat.st_size
    return {"originals_bytes": originals, "quantized_bytes": quantized, "shard_bytes": allocated}


@dataclass
class Trial:
    """One configuration's shard and the searcher over it."""

    config: TradeoffConfig
    path: Path
    searcher: HybridSearcher
    disk: dict[str, int]


@contextmanager
def open_trial(
    config: TradeoffConfig,
    corpus: CorpusVectors,
    path: Path,
    base: HybridSearcher,
    queries: Embedder,
    search_threads: int,
    axes: np.ndarray | None = None,
) -> Iterator[Trial]:
    """A new shard at ``path`` holding ``corpus`` cut to ``config``, indexed (and quantized),
    with a searcher beside the index's BM25; closed on exit. ``axes``: the principal axes a
    ``pca`` row rotates onto (required for one).

    Raises:
        BackendUnavailableError: Qdrant Edge built no indexed (or no quantized) segment.
    """
    model = queries.info
    collection = EdgeCollection(
        path,
        DenseLayout(config.dim),
        manifest_file=MANIFEST_FILE,
        search_threads=search_threads,
        quantization=ENGINE_QUANTIZATION.get(config.quantization),
        indexing_threshold_kb=INDEXING_THRESHOLD_KB,
    )
    store = CollectionDenseStore(collection, ModelInfo(model.model_id, model.version, config.dim))
    searcher: HybridSearcher | None = None
    rotation = axes if config.rotation == "pca" else None
    if config.rotation == "pca" and rotation is None:
        raise ValueError("a pca row needs the principal axes")
    try:
        source = corpus.vectors if rotation is None else rotate(corpus.vectors, rotation)
        vectors = truncate(source, config.dim)
        for start in range(0, len(corpus.chunks), UPSERT_BATCH):
            end = start + UPSERT_BATCH
            store.upsert(corpus.chunks[start:end], vectors[start:end])
        store.optimize()  # what the product runs after a bulk load: builds HNSW and quantizes
        collection.flush()
        disk = shard_disk(path)
        if not disk["originals_bytes"]:
            kb = FLOAT32_BYTES * config.dim * len(corpus.chunks) / 1024
            raise BackendUnavailableError(
                f"Qdrant Edge did not index the {config.name} shard: its vectors take "
                f"{kb:.1f} KB, under the smallest indexing threshold ({INDEXING_THRESHOLD_KB} "
                "KB), and an unindexed shard is neither HNSW-searched nor quantized; "
                "choose larger --dims"
            )
        if config.quantization != "none" and not disk["quantized_bytes"]:
            raise BackendUnavailableError(
                f"Qdrant Edge built no quantized vectors for the {config.name} shard"
            )
        searcher = HybridSearcher(
            TruncatedEmbedder(queries, config.dim, rotation),
            store,
            base.sparse,
            None,
            base.defaults,
        )
        yield Trial(config, path, searcher, disk)
    finally:
        if searcher is not None:
            searcher.close()
        store.close()


def shard_config(path: Path) -> dict[str, object] | None:
    """The configuration Qdrant Edge recorded for a shard (HNSW, quantization, optimizers)."""
    file = path / "edge_config.json"
    try:
        loaded = json.loads(file.read_text())
    except (OSError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) else None


@dataclass
class TradeoffRow:
    """One configuration measured: dense (and hybrid) results, memory and disk."""

    config: TradeoffConfig
    chunks: int
    dense: ModeResult
    hybrid: ModeResult | None
    disk: dict[str, int]

    def memory(self) -> dict[str, int]:
        """Bytes of the searched vectors (per vector and in all), and of the float32
        originals a quantized row keeps for rescoring."""
        per = self.config.bytes_per_vector
        out = {"bytes_per_vector": per, "total_bytes": per * self.chunks}
        if self.config.quantization != "none":
            out["originals_bytes"] = FLOAT32_BYTES * self.config.dim * self.chunks
        return out

    def dense_latency(self) -> dict[str, float]:
        return self.dense.latency.get("dense", {})


@dataclass
class TradeoffReport:
    """The table of ``braid eval tradeoffs``; ``as_dict`` is its ``--json`` document."""

    dataset: str
    split: str
    queries: int
    model: ModelInfo
    index_state: dict[str, object]
    rows: list[TradeoffRow]
    comparisons: list[Comparison]
    search_threads: int
    params: dict[str, object]
    shard: dict[str, object] | None
    notes: list[str] = field(default_factory=list)
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def baseline(self) -> TradeoffRow:
        return self.rows[0]

    def comparison(self, row: TradeoffRow, mode: str) -> Comparison | None:
        return next((c for c in self.comparisons if c.system == _system(row.config, mode)), None)

    def as_dict(self) -> dict[str, object]:
        return {
            "dataset": self.dataset,
            "split": self.split,
            "queries": self.queries,
            "created": self.created,
            "embedding_model": {
                "id": self.model.model_id,
                "version": self.model.version,
                "dim": self.model.dim,
            },
            "index": dict(self.index_state),
            "chunks": self.baseline.chunks,
            "engine": f"qdrant-edge-py {version('qdrant-edge-py')}",
            "shard": {
                "indexing_threshold_kb": INDEXING_THRESHOLD_KB,
                "search_threads": self.search_threads,
                "quantization": {
                    name: {"quantile": q.quantile if name == "int8" else None}
                    | {"rescore": q.rescore, "oversampling": q.oversampling}
                    for name, q in ENGINE_QUANTIZATION.items()
                },
                "recorded": self.shard,
            },
            "params": self.params,
            "latency": "dense stage of the query path (Qdrant's search), queries pre-encoded",
            "hybrid": self.baseline.hybrid is not None,
            "baseline": self.baseline.config.name,
            "rows": [self.row_entry(row) for row in self.rows],
            "significance": [c.as_dict() for c in self.comparisons],
            "notes": list(self.notes),
        }

    def row_entry(self, row: TradeoffRow) -> dict[str, object]:
        entry: dict[str, object] = {
            "name": row.config.name,
            **row.config.as_dict(),
            "metrics": row.dense.means,
            "memory": row.memory(),
            "disk": dict(row.disk),
            "latency_ms": row.dense.latency,
            "significance": _significance(self.comparison(row, "dense")),
            "per_query": {PRIMARY: row.dense.scores[PRIMARY]},
        }
        if row.hybrid is not None:
            entry["hybrid"] = {
                "metrics": row.hybrid.means,
                "latency_ms": row.hybrid.latency,
                "significance": _significance(self.comparison(row, "hybrid")),
                "per_query": {PRIMARY: row.hybrid.scores[PRIMARY]},
            }
        return entry

    def title(self) -> str:
        return (
            f"{self.dataset} {self.split} ({self.queries} queries, {self.baseline.chunks} "
            f"chunks): dimension x quantization"
        )

    def columns(self) -> list[str]:
        columns = ["config", "B/vector", "vectors MiB", "disk MiB", "nDCG@10", "delta", "p / Holm"]
        columns += ["R@100"]
        if self.baseline.hybrid is not None:
            columns += ["hybrid nDCG@10", "p / Holm"]
        return [*columns, "p50 ms", "p95 ms"]

    def table_rows(self) -> list[list[object]]:
        out: list[list[object]] = []
        base = self.baseline
        for row in self.rows:
            memory = row.memory()
            disk = row.disk["originals_bytes"] + row.disk["quantized_bytes"]
            cells: list[object] = [
                row.config.name,
                memory["bytes_per_vector"],
                f"{memory['total_bytes'] / MIB:.2f}",
                f"{disk / MIB:.2f}",
                f"{row.dense.means[PRIMARY]:.4f}",
                _delta(row.dense, base.dense) if row is not base else None,
                _p_cell(self.comparison(row, "dense")),
                f"{row.dense.means['recall@100']:.4f}",
            ]
            if row.hybrid is not None and base.hybrid is not None:
                cells += [
                    f"{row.hybrid.means[PRIMARY]:.4f}",
                    _p_cell(self.comparison(row, "hybrid")),
                ]
            latency = row.dense_latency()
            cells += [f"{latency.get('p50', 0.0):.3f}", f"{latency.get('p95', 0.0):.3f}"]
            out.append(cells)
        return out


def _system(config: TradeoffConfig, mode: str) -> str:
    return config.name if mode == "dense" else f"{config.name} hybrid"


def _significance(comparison: Comparison | None) -> dict[str, object] | None:
    return comparison.as_dict() if comparison is not None else None


def _delta(result: ModeResult, base: ModeResult) -> str:
    return f"{result.means[PRIMARY] - base.means[PRIMARY]:+.4f}"


def _p_cell(comparison: Comparison | None) -> str | None:
    if comparison is None:
        return None
    mark = " *" if comparison.significant else ""
    return f"{comparison.p_randomisation:.3f} / {comparison.p_holm:.3f}{mark}"


def model_index_dir(
    settings: Settings, folder: Path, model: str | None, index_dir: Path | None
) -> Path | None:
    """Where the collection's index for ``model`` lives: ``index_dir`` when given; for a
    model other than the configured one, its own index beside the default (as ``braid eval
    compare --model-b`` keeps it); else ``None`` (the default)."""
    if index_dir is not None or not model or model == settings.embedder.model:
        return index_dir
    default = default_index_dir(settings.data_dir, folder.resolve().name)
    return default.with_name(f"{default.name}-{model_slug(with_embedding_model(settings, model))}")


def measure_tradeoffs(
    folder: Path,
    data: Dataset,
    settings: Settings,
    *,
    dims: Sequence[int] | None = None,
    binary: bool = False,
    pca: bool = False,
    hybrid: bool = True,
    model: str | None = None,
    depth: int = DEFAULT_DEPTH,
    search_threads: int = DEFAULT_SEARCH_THREADS,
    index_dir: Path | None = None,
    progress: StageProgress = silent,
) -> TradeoffReport:
    """Quality, memory and latency of every (dimension, quantization) on one split.

    Args:
        folder: the collection (BEIR layout); its index is built when missing.
        data: the split (``limit_queries`` for a smoke run).
        settings: settings with any profile applied.
        dims: dimensions to cut to (default ``DEFAULT_DIMS`` up to the model's); the model's
            own dimension is always measured, as the baseline.
        binary: add Qdrant's binary quantization to float32 and int8.
        pca: add rows cut after a rotation onto the corpus vectors' principal axes.
        hybrid: also run hybrid (the index's BM25 with each truncated dense store).
        model: the embedding model (name or folder) instead of the configured one; its index
            is ``model_index_dir``'s unless ``index_dir`` is given.
        depth: chunks asked for per query (filled to 100 documents), as ``braid eval run``.
        search_threads: size of every shard's search pool.

    Raises:
        InvalidRequestError: a dimension is above the model's.
        BraidError: the index cannot be opened (locked, another model) or a shard fails.
    """
    target = model_index_dir(settings, folder, model, index_dir)
    settings = with_embedding_model(settings, model)
    index = open_with_progress(folder, settings, target, progress=progress)
    try:
        engine = index.workspace.engine
        info = engine.embedder.info
        configs = plan_configs(dims, info.dim, binary=binary, pca=pca)
        with progress("read vectors") as tick:
            corpus = read_vectors(engine.dense)
            tick(1, 1)
        axes = principal_axes(corpus.vectors) if pca else None
        query_vectors = CachingEmbedder(engine.embedder)
        with progress("encode queries") as tick:
            total = len(data.queries)
            for i, text in enumerate(data.queries.values(), start=1):
                query_vectors.encode_queries([text])  # one at a time, as the searcher does
                tick(i, total)
        with ExitStack() as stack:  # the shards, removed with their folder on exit
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="braid-tradeoffs-")))
            trials: list[Trial] = []
            with progress("build shards") as tick:
                for i, config in enumerate(configs, start=1):
                    trial = open_trial(
                        config,
                        corpus,
                        work / f"{config.dim}-{config.quantization}-{config.rotation}",
                        engine.searcher,
                        query_vectors,
                        search_threads,
                        axes,
                    )
                    trials.append(stack.enter_context(trial))
                    tick(i, len(configs))
            modes = ["dense", "hybrid"] if hybrid else ["dense"]
            with progress("search") as tick:
                context: dict[str, object] = {
                    "embedding_model": {"id": info.model_id, "version": info.version},
                    "reranker_model": None,
                    "index": index.state,
                }
                results = run_trials(trials, data, modes, depth, context, tick)
            recorded = shard_config(trials[0].path)
        rows = [
            TradeoffRow(
                trial.config,
                len(corpus.chunks),
                results[(trial.config, "dense")],
                results.get((trial.config, "hybrid")),
                trial.disk,
            )
            for trial in trials
        ]
        return TradeoffReport(
            dataset=data.name,
            split=data.split,
            queries=len(data.queries),
            model=info,
            index_state=index.state,
            rows=rows,
            comparisons=significance(rows),
            search_threads=search_threads,
            params=RunParams(mode="dense", depth=depth).resolve(engine.searcher).as_dict(),
            shard=recorded,
            notes=notes(dims, info.dim, hybrid, search_threads, engine.searcher, pca),
        )
    finally:
        index.close()


def run_trials(
    trials: Sequence[Trial],
    data: Dataset,
    modes: Sequence[str],
    depth: int,
    context: dict[str, object],
    on_query: Tick = no_tick,
) -> dict[tuple[TradeoffConfig, str], ModeResult]:
    """Every query through every trial's searcher and mode, the trials taking turns per query
    (the first one rotating); scored as ``braid eval run`` scores a run."""
    plans = {
        (t.config, mode): RunParams(mode=mode, depth=depth).resolve(t.searcher)
        for t in trials
        for mode in modes
    }
    items = list(data.queries.items())
    for _, text in items[:WARMUP]:
        for trial in trials:
            for mode in modes:
                search_once(trial.searcher, text, plans[(trial.config, mode)])
    rankings: dict[tuple[TradeoffConfig, str], dict[str, list[tuple[str, float]]]] = {
        key: {} for key in plans
    }
    timings: dict[tuple[TradeoffConfig, str], dict[str, dict[str, float]]] = {
        key: {} for key in plans
    }
    for n, (qid, text) in enumerate(items):
        turn = n % len(trials)
        for trial in [*trials[turn:], *trials[:turn]]:
            for mode in modes:
                key = (trial.config, mode)
                response = search_once(trial.searcher, text, plans[key])
                rankings[key][qid] = [(d.doc_id, d.score) for d in response.documents or ()]
                timings[key][qid] = dict(response.timings_ms)
        on_query(n + 1, len(items))
    results = {}
    for (config, mode), params in plans.items():
        meta = run_meta(data, params, config, context)
        run = Run(ranking=rankings[(config, mode)], timings=timings[(config, mode)], meta=meta)
        results[(config, mode)] = scored_result(_system(config, mode), run, data, None)
    return results


def run_meta(
    data: Dataset, params: RunParams, config: TradeoffConfig, context: dict[str, object]
) -> dict[str, object]:
    """A run's metadata, as ``execute_run`` writes it, with the configuration."""
    meta: dict[str, object] = {
        "dataset": data.name,
        "split": data.split,
        "mode": params.mode,
        "params": params.as_dict() | {"tradeoff": config.as_dict()},
        "label": f"{params.label()} {config.name}",
        "queries": len(data.queries),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        **context,
    }
    meta["tag"] = run_tag(meta)
    return meta


def significance(rows: Sequence[TradeoffRow]) -> list[Comparison]:
    """nDCG@10 of every row against the first (full dimension, float32), Holm-corrected over
    the rows; hybrid rows, when run, as a family of their own."""
    base, others = rows[0], rows[1:]
    dense = [
        compare(
            _system(r.config, "dense"),
            _system(base.config, "dense"),
            PRIMARY,
            r.dense.scores[PRIMARY],
            base.dense.scores[PRIMARY],
        )
        for r in others
    ]
    out = with_holm(dense)
    if base.hybrid is not None:
        hybrid = [
            compare(
                _system(r.config, "hybrid"),
                _system(base.config, "hybrid"),
                PRIMARY,
                r.hybrid.scores[PRIMARY],
                base.hybrid.scores[PRIMARY],
            )
            for r in others
            if r.hybrid is not None
        ]
        out += with_holm(hybrid)
    return out


def notes(
    dims: Sequence[int] | None,
    model_dim: int,
    hybrid: bool,
    search_threads: int,
    searcher: HybridSearcher,
    pca: bool = False,
) -> list[str]:
    """What a reader of the table needs to know about how it was measured."""
    out = [
        f"latency: the dense stage (Qdrant's search) per query, queries pre-encoded, "
        f"{search_threads} search thread(s) per shard; configurations take turns on each query",
        f"every shard is HNSW-indexed (indexing threshold {INDEXING_THRESHOLD_KB} KB): Qdrant "
        "quantizes only the segments it indexes",
        f"int8: scalar, quantile {INT8_QUANTILE}; quantized rows search with rescoring and "
        f"oversampling {OVERSAMPLING} and keep the float32 originals (disk MiB counts both)",
        "HNSW is approximate: each row has its own graph, and oversampling makes quantized rows "
        "search deeper, so rows differ by a little that is not the cut or the quantization",
        "p: paired randomisation test of nDCG@10 against the first row; Holm over the rows; "
        "* = p_Holm < 0.05",
    ]
    if pca:
        out.append(
            "pca: the vectors (and each query) rotated onto the principal axes of the index's "
            "own vectors before the cut (label-free; no cosine changes at the full dimension)"
        )
    if dims is not None and model_dim not in dims:
        out.append(f"the full dimension {model_dim} was added as the baseline")
    if dims is None and any(d > model_dim for d in DEFAULT_DIMS):
        out.append(f"default dimensions above the model's {model_dim} were left out")
    if hybrid:
        method = searcher.defaults.fusion
        rule = " (its adaptive rule is the full-dimension model's)" if method == "adaptive" else ""
        out.append(
            f"hybrid: the index's BM25 with each truncated dense store, {method} fusion{rule}"
        )
    else:
        out.append("dense only (--no-hybrid)")
    return out
