"""Changing the chunking settings re-chunks documents whose content did not change."""

from __future__ import annotations

from pathlib import Path

from ingest_helpers import WorkspaceOpener, assert_stores_agree

from braid.ingestion.chunking import ChunkingPolicy
from braid.ingestion.readers import read_jsonl

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample.jsonl"


def test_new_chunking_settings_rechunk_unchanged_documents(
    tmp_path: Path, open_ws: WorkspaceOpener
) -> None:
    ws = open_ws(tmp_path)
    first = ws.pipeline.run(read_jsonl(SAMPLE))
    assert (first.documents, first.chunks) == (12, 12)
    assert ws.pipeline.run(read_jsonl(SAMPLE)).skipped_unchanged == 12
    open_ws.close(ws)

    ws = open_ws(tmp_path, policy=ChunkingPolicy(max_tokens=40, overlap_tokens=8))
    second = ws.pipeline.run(read_jsonl(SAMPLE))
    assert second.skipped_unchanged == 0
    assert second.documents == 12
    assert second.deleted == 12
    assert second.chunks > 12  # 40-token windows split every sample document
    # The new cut is recorded: the next run with the same settings does no work.
    assert ws.pipeline.run(read_jsonl(SAMPLE)).skipped_unchanged == 12
    assert_stores_agree(ws.ledger, ws.engine.dense, ws.engine.sparse)
