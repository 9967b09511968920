"""``braid bench sparse``: the two BM25 stores side by side at scale (1M chunks by default).

Tantivy (``TantivySparseStore``) and BM25 as Qdrant sparse vectors in Qdrant Edge
(``QdrantSparseStore``) index the same scaled real corpus (``eval.bench.corpus``), then run
the same queries, unfiltered and filtered, at the depth hybrid search asks for (100). Each
store is built and queried in a child process of its own, so the memory figures are that
store's alone: resident memory while serving (``VmRSS`` after the queries, and that minus
the process's memory before it opened the store) and the peak (``VmHWM``) of the build. Indexes are cached in the data dir.
"""

from __future__ import annotations

import multiprocessing
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from braid.engine.filters import parse_filter
from braid.engine.models import Chunk
from braid.engine.protocols import SparseStore
from braid.eval.bench.corpus import queries, scaled_corpus
from braid.eval.bench.stats import percentiles

BACKENDS = ("tantivy", "qdrant-edge")
DEPTH = 100  # hybrid search's default candidates per retriever
SPARSE_FILTER = {"year": {"$gte": 2000}, "source": {"$in": ["pubmed", "journal", "review"]}}
_BUILD_BATCH = 10_000


def _open(backend: str, path: Path) -> SparseStore:
    if backend == "tantivy":
        from braid.engine.sparse.tantivy_store import TantivySparseStore

        return TantivySparseStore(path)
    from braid.engine.sparse.qdrant_backends import EdgeSparseCollection
    from braid.engine.sparse.qdrant_sparse import QdrantSparseStore

    return QdrantSparseStore(EdgeSparseCollection(path))


def _chunks(corpus: Path, size: int) -> Iterator[Chunk]:
    for doc in scaled_corpus(corpus, size):
        yield Chunk(doc.doc_id, 0, doc.text, doc.title, doc.metadata)


def _memory_kib() -> dict[str, int]:
    found = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    return found


def _disk_bytes(path: Path, under: str | None = None) -> int:
    # Blocks really used: Qdrant preallocates WAL and sparse files far larger than their content.
    root = path / under if under else path
    return sum(f.stat().st_blocks * 512 for f in root.rglob("*") if f.is_file())


def _build(backend: str, path: Path, corpus: Path, size: int) -> dict[str, Any]:
    """Child process: index ``size`` chunks, commit every batch, optimize once."""
    shutil.rmtree(path, ignore_errors=True)
    store = _open(backend, path)
    started = time.perf_counter()
    batch: list[Chunk] = []
    for chunk in _chunks(corpus, size):
        batch.append(chunk)
        if len(batch) >= _BUILD_BATCH:
            store.upsert(batch)
            store.commit()
            batch = []
    store.upsert(batch)
    store.commit()
    loaded = time.perf_counter()
    store.optimize()
    done = time.perf_counter()
    count = store.count()
    store.close()
    (path / "braid-bench-complete").write_text(str(size))
    return {
        "chunks": count,
        "load_s": round(loaded - started, 1),
        "optimize_s": round(done - loaded, 1),
        "chunks_per_s": round(count / (done - started), 1),
        "build_peak_rss_mib": round(_memory_kib()["VmHWM"] / 1024, 1),
    }


def _serve(backend: str, path: Path, texts: list[str]) -> dict[str, Any]:
    """Child process: open the built index, warm it, time every query at depth 100."""
    baseline = _memory_kib()["VmRSS"]  # the interpreter and its imports, before the store
    opened = time.perf_counter()
    store = _open(backend, path)
    open_ms = (time.perf_counter() - opened) * 1e3
    flt = parse_filter(SPARSE_FILTER)
    for text in texts[:20]:
        store.search(text, DEPTH)
        store.search(text, DEPTH, flt)
    samples = []
    for text in texts:
        started = time.perf_counter()
        store.search(text, DEPTH)
        middle = time.perf_counter()
        store.search(text, DEPTH, flt)
        done = time.perf_counter()
        samples.append({"bm25": (middle - started) * 1e3, "bm25+filter": (done - middle) * 1e3})
    memory = _memory_kib()
    count = store.count()
    store.close()
    return {
        "chunks": count,
        "open_ms": round(open_ms, 1),
        "latency_ms": percentiles(samples, (50, 95, 99)),
        "serving_rss_mib": round(memory["VmRSS"] / 1024, 1),
        "store_rss_mib": round((memory["VmRSS"] - baseline) / 1024, 1),
        "serving_peak_rss_mib": round(memory["VmHWM"] / 1024, 1),
        "disk_mib": round(_disk_bytes(path) / 2**20, 1),
        "wal_mib": round(_disk_bytes(path, "wal") / 2**20, 1) if (path / "wal").exists() else 0,
    }


def _in_child(function: Any, *args: Any) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        result: dict[str, Any] = pool.apply(function, args)
    return result


def run_sparse_bench(
    root: Path, corpus: Path, size: int, query_count: int, rebuild: bool = False
) -> dict[str, Any]:
    """Build (unless cached) and query both stores; return the report."""
    texts = queries(corpus, query_count)
    report: dict[str, Any] = {
        "chunks": size,
        "queries": len(texts),
        "depth": DEPTH,
        "filter": SPARSE_FILTER,
        "backends": {},
    }
    for backend in BACKENDS:
        path = root / f"bench-sparse-{size}" / backend
        marker = path / "braid-bench-complete"
        entry: dict[str, Any] = {}
        if rebuild or not marker.exists():
            entry["build"] = _in_child(_build, backend, path, corpus, size)
        entry |= _in_child(_serve, backend, path, texts)
        report["backends"][backend] = entry
    tantivy, qdrant = (report["backends"][b] for b in BACKENDS)
    report["qdrant_over_tantivy_p50"] = {
        mode: round(qdrant["latency_ms"]["p50"][mode] / tantivy["latency_ms"]["p50"][mode], 2)
        for mode in ("bm25", "bm25+filter")
    }
    return report
