"""Kill ``braid ingest`` with SIGKILL while it writes, restart it, and check that the ledger,
Qdrant Edge and Tantivy agree exactly with each other and with the input.

Every round feeds a slightly different version of 160 SciFact documents (some gain a
revision marker and lose most of their text), so every run has replacements and new
documents to write when it is killed.
"""

from __future__ import annotations

import dataclasses
import random
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import qdrant_edge as qe
from ingest_helpers import (
    WorkspaceOpener,
    assert_stores_agree,
    braid_command,
    cli_env,
    ledger_rows,
    write_jsonl,
)

from braid.engine.dense.edge import QdrantEdgeDenseStore
from braid.engine.searcher import HybridSearcher
from braid.engine.sparse.tantivy_store import TantivySparseStore
from braid.ingestion.chunking import ChunkingPolicy, TokenChunker
from braid.ingestion.documents import SourceDocument
from braid.ingestion.ledger import LEDGER_FILE, Ledger

if TYPE_CHECKING:
    from braid.engine.embedder import SentenceTransformerEmbedder

POLICY = ChunkingPolicy(max_tokens=64, overlap_tokens=8)  # two or three chunks per document
CLI_ENV = cli_env(BRAID_CHUNKING__MAX_TOKENS="64", BRAID_CHUNKING__OVERLAP_TOKENS="8")
DOCS = 160
BASE_DOCS = 80  # ingested (and committed) before the first kill
TEXT_CHARS = 200  # short abstracts keep the embedding cheap
KILL_ROUNDS = 3
SEED = 1234
RUN_TIMEOUT_S = 240


def version(docs: list[SourceDocument], round_: int) -> list[SourceDocument]:
    """The input of one round: every third document carries this round's revision marker."""
    out = []
    for i, doc in enumerate(docs):
        if round_ and i % KILL_ROUNDS == round_ % KILL_ROUNDS:
            doc = dataclasses.replace(doc, text=f"Zorblax{round_} revision. " + doc.text[:80])
        out.append(doc)
    return out


def rows(docs: list[SourceDocument]) -> list[dict[str, Any]]:
    return [{"_id": d.doc_id, "title": d.title, "text": d.text, **d.metadata} for d in docs]


def touched_since(ledger: Path, since: str) -> int:
    """Ledger rows written after ``since`` (this run's first writes), read without locking."""
    if not ledger.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True, timeout=1) as conn:
            row = conn.execute(
                "SELECT COUNT(*) FROM documents WHERE updated_at > ?", (since,)
            ).fetchone()
    except sqlite3.OperationalError:  # created but not yet initialised
        return 0
    return int(row[0])


def start_ingest(path: Path, data: Path, log: Path) -> subprocess.Popen[bytes]:
    command = [*braid_command(), "ingest", str(path), "--data-dir", str(data)]
    command += ["--batch-size", "4", "--json"]
    with log.open("ab") as out:
        return subprocess.Popen(command, env=CLI_ENV, stdout=out, stderr=subprocess.STDOUT)


def kill_while_writing(
    proc: subprocess.Popen[bytes], ledger: Path, since: str, delay: float
) -> int:
    """SIGKILL ``proc`` ``delay`` seconds after its first ledger write; its exit status."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while proc.poll() is None and touched_since(ledger, since) == 0:
        assert time.monotonic() < deadline, "ingest never started writing"
        time.sleep(0.05)
    time.sleep(delay)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    return proc.wait(RUN_TIMEOUT_S)


def dense_points(dense_dir: Path) -> list[tuple[str, dict[str, Any]]]:
    """Every point of the Qdrant Edge shard with its payload, read with qdrant-edge itself."""
    shard = qe.EdgeShard.load(str(dense_dir))
    points: list[tuple[str, dict[str, Any]]] = []
    offset: Any = None
    try:
        while True:
            records, offset = shard.scroll(
                qe.ScrollRequest(offset=offset, limit=1000, with_payload=True)
            )
            points += [(str(r.id), dict(r.payload or {})) for r in records]
            if offset is None:
                return points
    finally:
        shard.close()


@pytest.mark.slow  # subprocesses killed and restarted: half a minute
def test_sigkill_during_ingest_then_restart_leaves_stores_in_agreement(
    embedder: SentenceTransformerEmbedder,
    scifact_docs: list[SourceDocument],
    open_ws: WorkspaceOpener,
    tmp_path: Path,
) -> None:
    originals = [dataclasses.replace(d, text=d.text[:TEXT_CHARS]) for d in scifact_docs[:DOCS]]
    data = tmp_path / "data"
    ledger_path = data / LEDGER_FILE
    log = tmp_path / "ingest.log"

    # A committed starting point, written in this process through the same pipeline.
    ws = open_ws(data, policy=POLICY, batch_size=4)
    assert ws.pipeline.run(version(originals, 0)[:BASE_DOCS]).errors == []
    open_ws.close(ws)

    rng = random.Random(SEED)
    exits = []
    left_pending = 0  # documents killed runs left half-written, for recovery to clean up
    for round_ in range(1, KILL_ROUNDS + 1):
        path = write_jsonl(tmp_path / f"round{round_}.jsonl", rows(version(originals, round_)))
        since = datetime.now(UTC).isoformat()
        proc = start_ingest(path, data, log)
        exits.append(kill_while_writing(proc, ledger_path, since, rng.uniform(0.0, 2.5)))
        left_pending += sum(row[4] == "pending" for row in ledger_rows(data).values())
    assert set(exits) <= {0, -signal.SIGKILL}, log.read_text()
    assert -signal.SIGKILL in exits, "no run was killed while writing"
    assert left_pending > 0

    # Restart on the last round's input and let it finish.
    final_docs = version(originals, KILL_ROUNDS)
    proc = start_ingest(tmp_path / f"round{KILL_ROUNDS}.jsonl", data, log)
    assert proc.wait(RUN_TIMEOUT_S) == 0, log.read_text()

    # Expected: every input document, chunked as the CLI chunks it, nothing else.
    chunker = TokenChunker(embedder.model.tokenizer, embedder.max_seq_length, "", POLICY)
    expected_chunks = {d.doc_id: chunker.chunk(d) for d in final_docs}
    expected_points = {c.point_id: c for chunks in expected_chunks.values() for c in chunks}
    model = embedder.info

    ledger = ledger_rows(data)
    assert set(ledger) == set(expected_chunks)
    for doc in final_docs:
        assert ledger[doc.doc_id] == (
            doc.content_hash,
            len(expected_chunks[doc.doc_id]),
            model.model_id,
            model.version,
            "indexed",
        )

    points = dense_points(data / "dense")
    assert Counter(pid for pid, _ in points).most_common(1)[0][1] == 1
    assert Counter((p["doc_id"], p["chunk_index"]) for _, p in points).most_common(1)[0][1] == 1
    assert {pid for pid, _ in points} == set(expected_points)
    for pid, payload in points:
        chunk = expected_points[pid]
        assert (payload["doc_id"], payload["chunk_index"]) == (chunk.doc_id, chunk.chunk_index)
        assert (payload["text"], payload["content_hash"]) == (chunk.text, chunk.content_hash)
        assert (payload["model_id"], payload["model_version"]) == (model.model_id, model.version)

    dense = QdrantEdgeDenseStore(data / "dense", model)
    sparse = TantivySparseStore(data / "sparse")
    store_ledger = Ledger(ledger_path)
    searcher = HybridSearcher(embedder, dense, sparse)
    try:
        counts = assert_stores_agree(store_ledger, dense, sparse)
        assert counts == {doc_id: len(c) for doc_id, c in expected_chunks.items()}
        for chunk in sparse.fetch(sorted(expected_points)).values():
            assert chunk.text == expected_points[chunk.point_id].text

        # Earlier rounds' revisions were replaced everywhere; the last one is found.
        assert sparse.search("zorblax1 zorblax2", 100) == []
        revised = {d.doc_id for d in final_docs if d.text.startswith("Zorblax3")}
        found = {
            dense.fetch([p.point_id])[p.point_id].doc_id for p in sparse.search("zorblax3", 500)
        }
        assert found == revised
        # Search works: a document's own title brings it back.
        for doc in final_docs[1::40]:
            hits = searcher.search(doc.title, top_k=3, rerank=False).hits
            assert doc.doc_id in [h.doc_id for h in hits]
    finally:
        searcher.close()
        sparse.close()
        dense.close()
        store_ledger.close()
