"""The durable job queue and the shared document payload: order, restart, limit, codec."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from braid.engine.errors import InvalidDocumentError
from braid.ingestion.documents import InputError, SourceDocument
from braid.ingestion.jobs import (
    JOBS_FILE,
    NO_PROGRESS,
    JobNotFoundError,
    JobProgress,
    JobQueue,
    QueueFullError,
)
from braid.ingestion.payload import DocumentPayload


def doc(doc_id: str, text: str) -> SourceDocument:
    return SourceDocument(doc_id=doc_id, text=text, metadata={"kind": "test"})


def test_queue_is_durable_and_fifo(tmp_path: Path) -> None:
    queue = JobQueue(tmp_path / JOBS_FILE)
    first = queue.submit_upsert([doc("a", "alpha"), doc("b", "beta")])
    second = queue.submit_delete(["a"])
    third = queue.submit_delete_filter({"kind": "test"})
    queue.close()

    reopened = JobQueue(tmp_path / JOBS_FILE)
    assert [j.id for j in reopened.list()] == [third.id, second.id, first.id]
    assert [(j.kind, j.items) for j in reopened.list()] == [
        ("delete_filter", 0),
        ("delete", 1),
        ("upsert", 2),
    ]
    assert reopened.depth() == 3
    claimed = reopened.claim_next()
    assert claimed is not None
    assert claimed.job.id == first.id and claimed.job.state == "running"
    assert claimed.job.attempts == 1
    assert [d.to_json() for d in claimed.documents] == [
        {"id": "a", "text": "alpha", "kind": "test"},
        {"id": "b", "text": "beta", "kind": "test"},
    ]
    # The process dies here: at the next start the running job is queued again, first in line.
    reopened.close()
    restarted = JobQueue(tmp_path / JOBS_FILE)
    assert restarted.requeue_running() == 1
    again = restarted.claim_next()
    assert again is not None and again.job.id == first.id and again.job.attempts == 2
    restarted.finish(first.id, {"documents": 2}, JobProgress(2, 2, 0, 0))
    done = restarted.get(first.id)
    assert done.state == "done" and done.result == {"documents": 2}
    assert done.progress == JobProgress(documents=2, chunks=2, skipped=0, errors=0)
    assert restarted.counts() == {"queued": 2, "running": 0, "done": 1, "failed": 0}

    # The other two follow in submission order, each with its own decoded work.
    delete = restarted.claim_next()
    assert delete is not None and delete.job.id == second.id and delete.doc_ids == ("a",)
    by_filter = restarted.claim_next()
    assert by_filter is not None and by_filter.job.id == third.id
    assert by_filter.filter == {"kind": "test"} and by_filter.documents == ()
    assert restarted.claim_next() is None
    with pytest.raises(JobNotFoundError):
        restarted.get("missing")
    restarted.close()


def test_queue_limit_and_prune(tmp_path: Path) -> None:
    queue = JobQueue(tmp_path / JOBS_FILE, max_unfinished=2)
    jobs = [queue.submit_delete([str(i)]) for i in range(2)]
    with pytest.raises(QueueFullError):
        queue.submit_delete(["x"])
    assert queue.depth() == 2  # the refused job left no row
    for job in jobs:
        claimed = queue.claim_next()
        assert claimed is not None and claimed.job.id == job.id
        queue.fail(job.id, "boom", NO_PROGRESS)
    assert queue.get(jobs[0].id).error == "boom"
    queue.submit_delete(["y"])  # finished jobs do not count against the limit
    assert queue.prune(keep=1) == 1
    with pytest.raises(JobNotFoundError):
        queue.get(jobs[0].id)
    assert queue.get(jobs[1].id).state == "failed"
    queue.close()


def test_payload_round_trip_through_the_queue(
    tmp_path: Path, sample_docs: list[dict[str, object]]
) -> None:
    """The API's input records, read and queued, come back out of the queue unchanged."""
    documents = []
    for i, raw in enumerate(sample_docs):
        record = DocumentPayload.model_validate(raw).to_record(f"documents[{i}]")
        assert isinstance(record, SourceDocument), record
        documents.append(record)
    queue = JobQueue(tmp_path / JOBS_FILE)
    queue.submit_upsert(documents)
    claimed = queue.claim_next()
    assert claimed is not None
    assert [d.to_json() for d in claimed.documents] == sample_docs
    # ... and decode to the very documents that were submitted (origin aside).
    decoded = [d.to_record(r.origin) for d, r in zip(claimed.documents, documents, strict=True)]
    assert decoded == documents
    queue.close()


def test_payload_shapes() -> None:
    # An integer id, `_id`, no title: the readers' rules, as for a JSONL line.
    record = DocumentPayload.model_validate({"_id": 7, "text": "t", "year": 2020}).to_record("x")
    assert record == SourceDocument("7", "t", "", {"year": 2020}, origin="x")
    bad = DocumentPayload.model_validate({"id": "d", "text": "t", "bad key": 1}).to_record("x")
    assert isinstance(bad, InputError) and "bad key" in bad.message
    # A metadata key named like a record field could not be read back: refused, not lost.
    with pytest.raises(InvalidDocumentError, match="'title'"):
        DocumentPayload.from_document(SourceDocument("d", "t", metadata={"title": "x"}))


def test_jobs_queued_in_the_old_payload_shape_still_decode(tmp_path: Path) -> None:
    """Before the payload was shared, an upsert stored ``{"id", "text", "title", "metadata"}``."""
    queue = JobQueue(tmp_path / JOBS_FILE)
    job = queue.submit_upsert([doc("placeholder", "x")])
    old = [
        {"id": "a", "text": "alpha", "title": "", "metadata": {"kind": "test", "n": 3}},
        {"id": "b", "text": "beta", "title": "Beta", "metadata": {}},
    ]
    with sqlite3.connect(tmp_path / JOBS_FILE) as conn:
        conn.execute("UPDATE jobs SET payload = ? WHERE id = ?", (json.dumps(old), job.id))
    claimed = queue.claim_next()
    assert claimed is not None
    assert [d.to_record("o") for d in claimed.documents] == [
        SourceDocument("a", "alpha", "", {"kind": "test", "n": 3}, origin="o"),
        SourceDocument("b", "beta", "Beta", {}, origin="o"),
    ]
    queue.close()


def test_a_payload_that_cannot_be_decoded_is_claimed_with_an_error(tmp_path: Path) -> None:
    queue = JobQueue(tmp_path / JOBS_FILE)
    broken = queue.submit_upsert([doc("a", "alpha")])
    with sqlite3.connect(tmp_path / JOBS_FILE) as conn:
        conn.execute("UPDATE jobs SET payload = ? WHERE id = ?", ('[{"id": "a"}]', broken.id))
    claimed = queue.claim_next()
    assert claimed is not None and claimed.job.id == broken.id
    assert claimed.documents == () and claimed.error is not None
    assert "text" in claimed.error  # pydantic names the missing field
    queue.close()
