"""The ingestion pipeline on real stores: idempotency, updates, duplicates, deletes, compaction,
recovery. Every workspace comes from ``open_workspace`` (MiniLM, Qdrant Edge, Tantivy, ledger).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from ingest_helpers import (
    SAMPLE_PATH,
    SCIFACT_DIR,
    SMALL_CHUNKS,
    WorkspaceOpener,
    assert_stores_agree,
    cli_env,
    sample_rows,
    settings_for,
    write_jsonl,
)

from braid.engine.config import MaintenanceSettings, Settings
from braid.engine.filters import FilterExpr, parse_filter
from braid.engine.locking import DataDirLock
from braid.engine.models import Chunk, point_id_for
from braid.engine.sparse.tantivy_store import TantivySparseStore
from braid.ingestion.documents import SourceDocument
from braid.ingestion.pipeline import DELETED_CHUNKS_KEY, DocumentLimits
from braid.ingestion.readers import read_jsonl

SAMPLE_IDS = [str(row["id"]) for row in sample_rows()]


def expr(raw: dict[str, object]) -> FilterExpr:
    parsed = parse_filter(raw)
    assert parsed is not None
    return parsed


GLACIER_TEXT = (
    "Glaciers form where snow accumulates faster than it melts, year after year. "
    "The weight of the snow compresses the lower layers into dense glacial ice. "
    "Under its own weight the ice begins to flow downhill like a very slow river. "
    "Moving glaciers carve valleys, carry boulders far from their origin and leave moraines. "
    "When a glacier retreats it exposes polished bedrock scratched by stones in the ice. "
    "Meltwater from glaciers feeds rivers that millions of people rely on in summer."
)
ZEPPELIN_TEXT = "A marmalade zeppelin drifts over the harbour."


def test_sample_ingest_counts_agree_and_rerun_does_no_work(
    open_ws: WorkspaceOpener, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    ws = open_ws(data)
    report = ws.pipeline.run(read_jsonl(SAMPLE_PATH))
    assert report.errors == []
    assert (report.documents, report.chunks, report.skipped_unchanged, report.deleted) == (
        12,
        12,
        0,
        0,
    )
    counts = assert_stores_agree(ws.ledger, ws.engine.dense, ws.engine.sparse)
    assert counts == dict.fromkeys(SAMPLE_IDS, 1)  # every sample document fits one chunk
    assert ws.ledger.totals() == {"documents": 12, "chunks": 12, "pending_documents": 0}
    model = ws.engine.embedder.info
    assert ws.ledger.models() == [(model.model_id, model.version, 12)]
    before = ws.ledger.lookup(SAMPLE_IDS)

    again = ws.pipeline.run(read_jsonl(SAMPLE_PATH))
    assert (again.documents, again.chunks, again.skipped_unchanged, again.deleted) == (0, 0, 12, 0)
    assert ws.ledger.lookup(SAMPLE_IDS) == before  # not even a timestamp was rewritten

    # A new process on the same data dir sees the same state and skips everything too.
    open_ws.close(ws)
    ws = open_ws(data)
    third = ws.pipeline.run(read_jsonl(SAMPLE_PATH))
    assert (third.documents, third.chunks, third.skipped_unchanged) == (0, 0, 12)
    assert assert_stores_agree(ws.ledger, ws.engine.dense, ws.engine.sparse) == counts


def test_changed_document_replaces_its_old_chunks_everywhere(
    open_ws: WorkspaceOpener, tmp_path: Path
) -> None:
    rows: list[dict[str, object]] = [
        *sample_rows(),
        {"id": "glaciers", "title": "Glaciers", "text": GLACIER_TEXT},
    ]
    ws = open_ws(tmp_path / "data", policy=SMALL_CHUNKS)
    first = ws.pipeline.run(read_jsonl(write_jsonl(tmp_path / "v1.jsonl", rows)))
    assert first.errors == []
    old_count = ws.ledger.lookup(["glaciers"])["glaciers"].chunk_count
    assert old_count >= 3
    old_points = [point_id_for("glaciers", i) for i in range(old_count)]
    assert len(ws.engine.dense.fetch(old_points)) == old_count

    # The glacier document shrinks to one chunk; espresso only changes a metadata value.
    rows[-1] = {"id": "glaciers", "title": "Airships", "text": ZEPPELIN_TEXT}
    espresso = next(r for r in rows if r["id"] == "espresso")
    espresso["year"] = 2031
    second = ws.pipeline.run(read_jsonl(write_jsonl(tmp_path / "v2.jsonl", rows)))
    assert second.errors == []
    assert (second.documents, second.chunks, second.skipped_unchanged, second.deleted) == (
        2,
        2,
        11,
        2,
    )
    counts = assert_stores_agree(ws.ledger, ws.engine.dense, ws.engine.sparse)
    assert counts["glaciers"] == 1

    dense, sparse = ws.engine.dense, ws.engine.sparse
    assert set(dense.fetch(old_points)) == {old_points[0]}
    assert set(sparse.fetch(old_points)) == {old_points[0]}
    for store in (dense, sparse):
        new_chunk = store.fetch([old_points[0]])[old_points[0]]
        assert (new_chunk.text, new_chunk.title) == (ZEPPELIN_TEXT, "Airships")
    # The old text is gone from BM25, the new one is found by both retrievers.
    assert not any(p.point_id in old_points for p in sparse.search("glacier moraines", 100))
    assert sparse.search("zeppelin", 5)[0].point_id == old_points[0]
    vector = ws.engine.embedder.encode_queries(["an airship floating above the port"])[0]
    assert dense.search(vector, 1)[0].point_id == old_points[0]
    response = ws.engine.searcher.search("marmalade zeppelin", top_k=3, rerank=False)
    assert response.hits[0].doc_id == "glaciers"
    # The metadata change reached both stores' filters.
    year_2031 = expr({"year": 2031})
    assert dense.doc_ids(year_2031) == sparse.doc_ids(year_2031) == {"espresso"}


def test_duplicate_ids_are_reported_and_the_run_goes_on(
    open_ws: WorkspaceOpener, tmp_path: Path
) -> None:
    path = write_jsonl(
        tmp_path / "dups.jsonl",
        [
            {"id": "a", "text": "The first copy of a, about volcanoes."},
            {"id": "b", "text": "Document b, about rivers."},
            {"id": "a", "text": "A second copy of a, about deserts."},
            {"id": "c", "text": "Document c, about forests."},
        ],
    )
    ws = open_ws(tmp_path / "data")
    report = ws.pipeline.run(read_jsonl(path))
    assert report.errors == [f"{path}:3: duplicate id 'a' (first at {path}:1)"]
    assert not report.stopped_early
    assert (report.documents, report.chunks) == (3, 3)
    assert assert_stores_agree(ws.ledger, ws.engine.dense, ws.engine.sparse) == {
        "a": 1,
        "b": 1,
        "c": 1,
    }
    [chunk] = ws.engine.sparse.fetch([point_id_for("a", 0)]).values()
    assert "volcanoes" in chunk.text  # the first occurrence wins


def test_strict_stops_at_the_first_bad_record(open_ws: WorkspaceOpener, tmp_path: Path) -> None:
    path = tmp_path / "strict.jsonl"
    lines = [
        json.dumps({"id": "a", "text": "Document a, about volcanoes."}),
        json.dumps({"id": "b", "text": "Document b, about rivers."}),
        json.dumps({"id": "a", "text": "A duplicate of a."}),
        "{not json",
        json.dumps({"id": "c", "text": "Document c, never reached."}),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    ws = open_ws(tmp_path / "data")
    report = ws.pipeline.run(read_jsonl(path), strict=True)
    assert report.errors == [f"{path}:3: duplicate id 'a' (first at {path}:1)"]
    assert report.stopped_early
    # What came before the bad record is whole; nothing after it was read.
    assert assert_stores_agree(ws.ledger, ws.engine.dense, ws.engine.sparse) == {"a": 1, "b": 1}

    lenient = ws.pipeline.run(read_jsonl(path))
    assert lenient.errors == [
        f"{path}:3: duplicate id 'a' (first at {path}:1)",
        f"{path}:4: malformed JSON: Expecting property name enclosed in double quotes (column 2)",
    ]
    assert (lenient.documents, lenient.skipped_unchanged) == (1, 2)
    assert set(ws.ledger.doc_ids("indexed")) == {"a", "b", "c"}


def test_documents_over_a_limit_are_refused_and_an_old_version_stays(
    open_ws: WorkspaceOpener, tmp_path: Path
) -> None:
    ws = open_ws(tmp_path / "data", policy=SMALL_CHUNKS)
    first = write_jsonl(tmp_path / "first.jsonl", [{"id": "g", "text": ZEPPELIN_TEXT}])
    assert ws.pipeline.run(read_jsonl(first)).errors == []
    ws.pipeline.limits = DocumentLimits(max_chunks=2, max_metadata_keys=2, max_value_chars=10)
    path = write_jsonl(
        tmp_path / "limits.jsonl",
        [
            {"id": "g", "text": GLACIER_TEXT},  # 48-token chunks: 3, more than 2
            {"id": "m", "text": "Document m.", "a": 1, "b": 2, "c": 3},
            {"id": "v", "text": "Document v.", "note": "x" * 11},
            {"id": "ok", "text": "Document ok.", "a": 1, "note": "x" * 10},
        ],
    )
    chunks = len(ws.pipeline.chunker.chunk(SourceDocument(doc_id="g", text=GLACIER_TEXT)))
    assert chunks == 3
    report = ws.pipeline.run(read_jsonl(path))
    assert sorted(report.errors) == sorted(
        [
            f"{path}:1: document 'g' makes {chunks} chunks, more than "
            "chunking.max_chunks_per_document (2): split it, or raise "
            "BRAID_CHUNKING__MAX_CHUNKS_PER_DOCUMENT",
            f"{path}:2: document 'm': 3 metadata fields, more than metadata.max_keys (2)",
            f"{path}:3: document 'v': metadata 'note': a value of 11 characters, more than "
            "metadata.max_value_chars (10)",
        ]
    )
    assert (report.documents, report.deleted) == (1, 0)
    assert assert_stores_agree(ws.ledger, ws.engine.dense, ws.engine.sparse) == {"g": 1, "ok": 1}
    [chunk] = ws.engine.sparse.fetch([point_id_for("g", 0)]).values()
    assert chunk.text == ZEPPELIN_TEXT  # the refused version replaced nothing


def test_delete_by_id_and_by_filter_removes_from_both_stores_and_ledger(
    open_ws: WorkspaceOpener, tmp_path: Path
) -> None:
    ws = open_ws(tmp_path / "data")
    ws.pipeline.run(read_jsonl(SAMPLE_PATH))
    pipeline, dense, sparse = ws.pipeline, ws.engine.dense, ws.engine.sparse

    assert pipeline.delete(["sourdough", "no-such-doc"]) == ["sourdough"]
    assert "sourdough" not in dense.doc_ids() | sparse.doc_ids() | set(ws.ledger.doc_ids())
    assert dense.fetch([point_id_for("sourdough", 0)]) == {}
    assert sparse.search("sourdough starter", 10) == []

    # sample.jsonl: espresso is the last kitchen document; 2016-2018 are photosynthesis,
    # saturn-rings and inverted-index.
    assert pipeline.delete_by_filter(expr({"source": "kitchen"})) == ["espresso"]
    assert pipeline.delete_by_filter(expr({"year": {"$lt": 2019}})) == [
        "inverted-index",
        "photosynthesis",
        "saturn-rings",
    ]
    assert pipeline.delete_by_filter(expr({"source": "kitchen"})) == []
    remaining = set(SAMPLE_IDS) - {
        "sourdough",
        "espresso",
        "inverted-index",
        "photosynthesis",
        "saturn-rings",
    }
    counts = assert_stores_agree(ws.ledger, dense, sparse)
    assert set(counts) == remaining
    assert ws.ledger.totals()["documents"] == 7
    # A deleted document comes back on the next run; the others are unchanged.
    report = pipeline.run(read_jsonl(SAMPLE_PATH))
    assert (report.documents, report.skipped_unchanged) == (5, 7)


def _scifact_queries(limit: int) -> list[str]:
    with (SCIFACT_DIR / "queries.jsonl").open(encoding="utf-8") as handle:
        return [json.loads(line)["text"] for _, line in zip(range(limit), handle, strict=False)]


def test_bm25_after_deleting_half_and_compacting_equals_a_fresh_index(
    open_ws: WorkspaceOpener, tmp_path: Path, scifact_docs: list[SourceDocument]
) -> None:
    # 80 real abstracts, cut short to keep embedding cheap.
    docs = [dataclasses.replace(d, text=d.text[:400]) for d in scifact_docs[:80]]
    ws = open_ws(tmp_path / "data")
    assert ws.pipeline.run(docs).errors == []
    deleted, kept = docs[::2], docs[1::2]
    assert ws.pipeline.delete([d.doc_id for d in deleted]) == sorted(d.doc_id for d in deleted)

    fresh = TantivySparseStore(tmp_path / "fresh")
    fresh.upsert([c for d in kept for c in ws.pipeline.chunker.chunk(d)])
    fresh.commit()
    queries = _scifact_queries(12) + [d.title for d in kept[:6]] + ["cells", "protein levels"]
    sparse = ws.engine.sparse

    def results(store: TantivySparseStore) -> list[list[tuple[str, float]]]:
        return [[(p.point_id, p.score) for p in store.search(q, 1000)] for q in queries]

    assert isinstance(sparse, TantivySparseStore)
    expected = results(fresh)
    assert sum(len(r) for r in expected) > 100
    # Before compaction the deleted chunks still weigh in BM25 statistics, so scores differ
    # (the threshold is far above 40 deleted chunks, so the automatic path does nothing).
    assert ws.pipeline.maybe_compact() is False
    stale_scores = [dict(r) for r in results(sparse)]
    drift = [
        abs(stale_scores[q][point] - score) / score
        for q, want in enumerate(expected)
        for point, score in want
    ]
    assert max(drift) > 1e-3

    assert ws.pipeline.maybe_compact(force=True) is True
    compacted = results(sparse)
    for got, want in zip(compacted, expected, strict=True):
        assert [p for p, _ in got] == [p for p, _ in want]
        assert [s for _, s in got] == pytest.approx([s for _, s in want], rel=1e-6)
    assert sparse.count() == fresh.count() == len(kept)
    assert_stores_agree(ws.ledger, ws.engine.dense, sparse)
    fresh.close()


def test_compaction_waits_for_both_maintenance_thresholds(
    open_ws: WorkspaceOpener, tmp_path: Path
) -> None:
    ws = open_ws(tmp_path / "data")
    ws.pipeline.run(read_jsonl(SAMPLE_PATH))
    gone = SAMPLE_IDS[:2]
    chunks_gone = sum(e.chunk_count for e in ws.ledger.lookup(gone).values())
    ws.pipeline.delete(gone)
    live = ws.engine.sparse.count()
    assert int(ws.ledger.get_meta(DELETED_CHUNKS_KEY, "0")) == chunks_gone
    share = chunks_gone / live

    def compacts(min_deleted: int, ratio: float) -> bool:
        ws.pipeline.maintenance = MaintenanceSettings(
            compact_min_deleted_chunks=min_deleted, compact_deleted_ratio=ratio
        )
        return ws.pipeline.maybe_compact()

    assert not compacts(chunks_gone + 1, 0.0)  # too few deleted chunks
    assert not compacts(chunks_gone, share + 0.01)  # too small a share of the live ones
    assert compacts(chunks_gone, share)  # both met: compacted, and the count starts over
    assert int(ws.ledger.get_meta(DELETED_CHUNKS_KEY, "0")) == 0
    assert not compacts(0, 0.0)  # nothing deleted since: nothing to rewrite
    assert ws.engine.sparse.count() == live


def test_maintenance_thresholds_are_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    # The defaults, and the environment names the README documents.
    assert Settings().maintenance == MaintenanceSettings(
        compact_min_deleted_chunks=1000, compact_deleted_ratio=0.2, optimize_min_new_points=5000
    )
    monkeypatch.setenv("BRAID_MAINTENANCE__COMPACT_MIN_DELETED_CHUNKS", "40")
    monkeypatch.setenv("BRAID_MAINTENANCE__COMPACT_DELETED_RATIO", "0")
    monkeypatch.setenv("BRAID_MAINTENANCE__OPTIMIZE_MIN_NEW_POINTS", "20")
    assert Settings().maintenance == MaintenanceSettings(
        compact_min_deleted_chunks=40, compact_deleted_ratio=0.0, optimize_min_new_points=20
    )


def test_recover_removes_pending_documents_from_both_stores(
    open_ws: WorkspaceOpener, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    ws = open_ws(data)
    ws.pipeline.run(read_jsonl(SAMPLE_PATH))
    # Replay what a killed run leaves behind: a new document written to both stores and
    # committed in Tantivy but still pending, and a known one being rewritten.
    ghost = SourceDocument("ghost", "A ghost document that a crashed run half wrote.", "Ghost")
    chunks = ws.pipeline.chunker.chunk(ghost)
    model = ws.engine.embedder.info
    ws.ledger.mark_pending(
        [("ghost", ghost.content_hash, len(chunks)), ("bm25-intro", "new-hash", 1)],
        model.model_id,
        model.version,
    )
    ws.engine.dense.upsert(chunks, ws.engine.embedder.encode_passages([c.text for c in chunks]))
    ws.engine.sparse.upsert(chunks)
    ws.engine.sparse.commit()
    assert "ghost" in ws.engine.dense.doc_ids() and "ghost" in ws.engine.sparse.doc_ids()
    open_ws.close(ws)

    ws = open_ws(data)
    assert sorted(ws.ledger.doc_ids("pending")) == ["bm25-intro", "ghost"]
    assert ws.pipeline.recover() == 2
    counts = assert_stores_agree(ws.ledger, ws.engine.dense, ws.engine.sparse)
    assert set(counts) == set(SAMPLE_IDS) - {"bm25-intro"}
    assert ws.engine.sparse.search("ghost crashed", 10) == []
    assert ws.pipeline.recover() == 0

    report = ws.pipeline.run(read_jsonl(SAMPLE_PATH))
    assert (report.documents, report.skipped_unchanged) == (1, 11)
    assert set(assert_stores_agree(ws.ledger, ws.engine.dense, ws.engine.sparse)) == set(SAMPLE_IDS)


def test_workspace_holds_the_data_dir_until_closed(
    open_ws: WorkspaceOpener, tmp_path: Path
) -> None:
    from braid.engine.errors import IndexLockedError

    data = tmp_path / "data"
    ws = open_ws(data)
    with pytest.raises(IndexLockedError, match=r"in use by test \(pid \d+\)"):
        DataDirLock(data, role="other").acquire()
    open_ws.close(ws)
    with DataDirLock(data, role="other"):
        pass


# Runs in a fresh interpreter: what a `braid stats` / `braid delete` / `braid optimize` process
# does with a workspace opened without models. It prints what it saw as JSON.
_WITHOUT_MODELS = """
import json, sys
from braid.engine.config import MaintenanceSettings, Settings
from braid.engine.errors import ModelsNotLoadedError
from braid.engine.filters import parse_filter
from braid.ingestion.service import open_workspace

ws = open_workspace(Settings(data_dir=sys.argv[1]), role="t", models=False)
seen = {"dense_before": ws.engine.dense.count(), "sparse_before": ws.engine.sparse.count()}
model = ws.engine.dense.model
seen["model"] = [model.model_id, model.version, model.dim] if model else None
seen["ledger"] = ws.ledger.totals()["documents"]
seen["deleted"] = ws.pipeline.delete(["sourdough", "no-such-doc"])
seen["by_filter"] = ws.pipeline.delete_by_filter(parse_filter({"source": "kitchen"}))
seen["compacted"] = ws.pipeline.maybe_compact()
ws.pipeline.optimize()
seen["dense_after"], seen["sparse_after"] = ws.engine.dense.count(), ws.engine.sparse.count()
refused = []
for attempt in (
    lambda: ws.engine.embedder.encode_queries(["q"]),
    lambda: ws.engine.searcher.search("bread", mode="dense"),
    lambda: ws.pipeline.run([]),
    lambda: ws.pipeline.chunker,
):
    try:
        attempt()
    except ModelsNotLoadedError as exc:
        refused.append("models=False" in str(exc))
seen["refused"] = refused
ws.close()
seen["torch"] = "torch" in sys.modules
seen["transformers"] = any(m.split(".")[0] == "transformers" for m in sys.modules)
print(json.dumps(seen))
"""


def test_a_workspace_without_models_deletes_and_reports_without_importing_torch(
    open_ws: WorkspaceOpener, tmp_path: Path
) -> None:
    import subprocess
    import sys

    data = tmp_path / "data"
    ws = open_ws(data)
    ws.pipeline.run(read_jsonl(SAMPLE_PATH))
    model = ws.engine.embedder.info
    open_ws.close(ws)

    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_MODELS, str(data)],
        capture_output=True,
        text=True,
        check=False,
        env=cli_env(),
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["model"] == [model.model_id, model.version, model.dim]
    assert (seen["dense_before"], seen["sparse_before"], seen["ledger"]) == (12, 12, 12)
    assert seen["deleted"] == ["sourdough"]
    assert seen["by_filter"] == ["espresso"]  # the other kitchen document
    assert (seen["dense_after"], seen["sparse_after"]) == (10, 10)
    assert seen["refused"] == [True, True, True, True]
    assert seen["torch"] is False
    assert seen["transformers"] is False

    # The deletes are real: the owner with its model sees them, and the stores agree.
    ws = open_ws(data)
    counts = assert_stores_agree(ws.ledger, ws.engine.dense, ws.engine.sparse)
    assert set(counts) == set(SAMPLE_IDS) - {"sourdough", "espresso"}


def test_a_fresh_data_dir_opened_without_models_stays_empty_and_refuses_writes(
    tmp_path: Path,
) -> None:
    from braid.engine.errors import ConfigError
    from braid.ingestion.service import open_workspace

    data = tmp_path / "data"
    ws = open_workspace(settings_for(data), role="test", models=False)
    try:
        assert ws.engine.dense.model is None
        assert (ws.engine.dense.count(), ws.engine.sparse.count()) == (0, 0)
        assert ws.pipeline.delete(["nothing"]) == []
        ws.pipeline.optimize()
        with pytest.raises(ConfigError, match="has no embedding model yet"):
            ws.engine.dense.upsert([Chunk("d", 0, "text")], np.zeros((1, 4), dtype=np.float32))
    finally:
        ws.close()
    # Nothing was created for a model: the first ingest creates the store for its own model.
    assert not (data / "dense" / "braid-model.json").exists()
