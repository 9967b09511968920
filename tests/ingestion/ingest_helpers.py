"""Helpers shared by the ingestion tests (a plain module: tests/ingestion has no __init__)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import httpx

from braid.engine.config import EmbedderSettings, Settings
from braid.engine.models import point_id_for
from braid.engine.protocols import DenseStore, SparseStore
from braid.engine.sparse.tantivy_store import TantivySparseStore
from braid.ingestion.chunking import ChunkingPolicy
from braid.ingestion.documents import SourceDocument
from braid.ingestion.ledger import LEDGER_FILE, Ledger
from braid.ingestion.service import Workspace, open_workspace

TESTS_DIR = Path(__file__).resolve().parents[1]
SAMPLE_PATH = TESTS_DIR / "data" / "sample.jsonl"
# The shared BEIR copy, read in place and never copied into the project.
SCIFACT_DIR = TESTS_DIR.parents[1] / "shared" / "data" / "scifact"
TORCH_THREADS = 2
# Small chunks so that short texts still make several chunks (overlap must stay below half).
SMALL_CHUNKS = ChunkingPolicy(max_tokens=48, overlap_tokens=8)


def write_jsonl(path: Path, rows: Iterable[dict[str, object]]) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def sample_rows() -> list[dict[str, object]]:
    with SAMPLE_PATH.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def settings_for(data_dir: Path) -> Settings:
    """Settings for a temp data dir on the CPU with two torch threads, whatever the env says."""
    return Settings(
        data_dir=data_dir,
        embedder=EmbedderSettings(device="cpu", cpu_threads=TORCH_THREADS),
    )


def scifact_head(limit: int, text_chars: int) -> list[SourceDocument]:
    """The first ``limit`` SciFact documents, their text cut to ``text_chars`` characters."""
    out = []
    with (SCIFACT_DIR / "corpus.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            out.append(SourceDocument(row["_id"], row["text"][:text_chars], row["title"]))
            if len(out) == limit:
                break
    return out


def cli_env(**extra: str) -> dict[str, str]:
    """Environment for a ``braid`` subprocess: CPU, two threads, no stray BRAID_ settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRAID_")}
    env |= {
        "BRAID_EMBEDDER__DEVICE": "cpu",
        "BRAID_EMBEDDER__CPU_THREADS": str(TORCH_THREADS),
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONUNBUFFERED": "1",
    }
    return env | extra


def braid_command() -> list[str]:
    """The installed ``braid`` console script, or its entry point run by this interpreter."""
    script = Path(sys.executable).parent / "braid"
    if script.is_file():
        return [str(script)]
    found = shutil.which("braid")
    if found:
        return [found]
    return [sys.executable, "-m", "braid.cli"]


class WorkspaceOpener:
    """``open_workspace`` on temp data dirs (the real model and stores); closes what it opened."""

    def __init__(self) -> None:
        self._open: list[Workspace] = []

    def __call__(
        self, data_dir: Path, *, policy: ChunkingPolicy | None = None, batch_size: int | None = None
    ) -> Workspace:
        ws = open_workspace(
            settings_for(data_dir), role="test", policy=policy, batch_size=batch_size
        )
        self._open.append(ws)
        return ws

    def close(self, ws: Workspace) -> None:
        """Close ``ws`` now, as a process ending its run would."""
        self._open.remove(ws)
        ws.close()

    def close_all(self) -> None:
        while self._open:
            self.close(self._open[-1])


def ledger_rows(data_dir: Path) -> dict[str, tuple[str, int, str, str, str]]:
    """doc_id -> (content_hash, chunk_count, model_id, model_version, state), read with sqlite3."""
    with sqlite3.connect(data_dir / LEDGER_FILE) as conn:
        rows = conn.execute(
            "SELECT doc_id, content_hash, chunk_count, model_id, model_version, state"
            " FROM documents"
        ).fetchall()
    return {r[0]: (r[1], r[2], r[3], r[4], r[5]) for r in rows}


def assert_stores_agree(ledger: Ledger, dense: DenseStore, sparse: SparseStore) -> dict[str, int]:
    """Ledger, Qdrant and Tantivy hold exactly the same chunks; returns chunks per doc.

    Same doc ids everywhere, the chunk count per document the ledger records, chunk indexes
    0..n-1 with their deterministic point ids, no duplicate, the ledger's content hash on every
    chunk, and no document left ``pending``.
    """
    assert ledger.doc_ids("pending") == []
    entries = ledger.lookup(ledger.doc_ids())
    expected_counts = {doc_id: e.chunk_count for doc_id, e in entries.items()}
    expected_points = {
        point_id_for(doc_id, i): doc_id for doc_id, n in expected_counts.items() for i in range(n)
    }

    assert isinstance(sparse, TantivySparseStore)
    sparse_chunks = list(sparse.chunks())
    sparse_points = [c.point_id for c in sparse_chunks]
    duplicates = [p for p, n in Counter(sparse_points).items() if n > 1]
    assert duplicates == [], "Tantivy holds a chunk twice"
    assert set(sparse_points) == set(expected_points)
    assert Counter(c.doc_id for c in sparse_chunks) == Counter(expected_counts)
    for chunk in sparse_chunks:
        assert chunk.content_hash == entries[chunk.doc_id].content_hash

    # Qdrant point ids are unique keys: equal count plus every expected id present is equality.
    assert dense.count() == len(expected_points)
    fetched = dense.fetch(sorted(expected_points))
    assert set(fetched) == set(expected_points)
    for point_id, chunk in fetched.items():
        assert chunk.doc_id == expected_points[point_id]
        assert chunk.content_hash == entries[chunk.doc_id].content_hash

    assert dense.doc_ids() == sparse.doc_ids() == set(expected_counts)
    assert sparse.count() == len(expected_points)
    return expected_counts


def wait_ready(client: httpx.Client, proc: subprocess.Popen[bytes], timeout: float = 180) -> None:
    """Wait until a started ``braid serve`` answers ``/readyz`` 200; fail if it exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "braid serve exited while starting"
        try:
            if client.get("/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise AssertionError("braid serve did not become ready")
