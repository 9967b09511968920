"""``braid bench ingest``: the full ingest path against the bare passage encoder on the same chunks.

Both run in one process, one after the other, with the same batch size and threads, so
their ratio says what reading, chunking, writing Qdrant/Tantivy and the ledger cost on top
of the encoder (goal: ingest >= 0.9x raw encode). The bare encoder is the embedder's own
``encode_passages`` (sentence-transformers' ``model.encode`` under the torch backend,
onnxruntime's fp32 graph under the ONNX ones), so the comparison holds for every
``embedder.backend``.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from braid.engine.config import Settings
from braid.engine.factory import embedder_backend
from braid.ingestion.documents import SourceDocument
from braid.ingestion.readers import read_beir
from braid.ingestion.service import open_workspace


def run_ingest_bench(
    base: Settings, corpus: Path, limit: int | None, batch_size: int
) -> dict[str, Any]:
    docs = [d for d in itertools.islice(read_beir(corpus), limit) if isinstance(d, SourceDocument)]
    scratch = Path(
        tempfile.mkdtemp(
            prefix="bench-ingest-", dir=base.data_dir if base.data_dir.exists() else None
        )
    )
    settings = base.model_copy(update={"data_dir": scratch})
    try:
        workspace = open_workspace(settings, role="braid bench ingest", batch_size=batch_size)
        try:
            embedder = workspace.engine.embedder
            device = str(getattr(embedder, "device", "cpu"))
            embedder.encode_passages(["warm up"] * batch_size, batch_size=batch_size)
            started = time.perf_counter()
            report = workspace.pipeline.run(docs)
            ingest_seconds = time.perf_counter() - started
            chunker = workspace.pipeline.chunker
            texts = [chunker.embed_input(c) for d in docs for c in chunker.chunk(d)]
            started = time.perf_counter()
            embedder.encode_passages(texts, batch_size=batch_size)
            raw_seconds = time.perf_counter() - started
        finally:
            workspace.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    ingest_rate = report.chunks / ingest_seconds
    raw_rate = len(texts) / raw_seconds
    return {
        "documents": report.documents,
        "chunks": report.chunks,
        "batch_size": batch_size,
        "embedder_backend": embedder_backend(settings),
        "device": device,
        "ingest": {
            "seconds": round(ingest_seconds, 2),
            "docs_per_s": round(report.documents / ingest_seconds, 2),
            "chunks_per_s": round(ingest_rate, 2),
        },
        "raw_encode": {"seconds": round(raw_seconds, 2), "chunks_per_s": round(raw_rate, 2)},
        "ratio": round(ingest_rate / raw_rate, 3),
    }
