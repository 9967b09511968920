"""``JobService`` with a real worker: the pipeline, MiniLM, Qdrant Edge and Tantivy on disk.

Jobs are queued before the worker starts, so the order they run in is the queue's, not the
timing's; waits end on the job's state, never on a clock.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator

import pytest
from ingest_helpers import assert_stores_agree, settings_for

from braid.ingestion.documents import SourceDocument
from braid.ingestion.jobs import JOBS_FILE, IngestWorker, Job, JobQueue, JobService
from braid.ingestion.service import Workspace, open_workspace

WAIT_S = 300.0  # a bound for a stuck worker, not a timing assertion


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    ws = open_workspace(settings_for(tmp_path_factory.mktemp("jobs")), role="test")
    yield ws
    ws.close()


def bm25_ids(ws: Workspace, query: str) -> list[str]:
    hits = ws.engine.searcher.search(query, top_k=5, mode="bm25", rerank=False).hits
    return [h.doc_id for h in hits]


def test_submit_wait_status_in_submission_order(workspace: Workspace) -> None:
    service = JobService(JobQueue(workspace.settings.data_dir / JOBS_FILE))
    finished: list[Job] = []
    glacier_v1 = SourceDocument("glacier", "Glaciers carve fjords.", metadata={"v": 1})
    glacier_v2 = SourceDocument("glacier", "Glaciers leave moraines.", metadata={"v": 2})
    volcano = SourceDocument("volcano", "Volcanoes erupt lava.")
    # Queued before any worker runs: the upsert, its replacement, then a delete.
    jobs = [
        service.submit_upsert([glacier_v1, volcano]),
        service.submit_upsert([glacier_v2]),
        service.submit_delete(["volcano", "no-such-doc"]),
    ]
    assert [j.state for j in jobs] == ["queued"] * 3
    assert service.worker is None and service.worker_status() is None
    # Nobody runs the jobs yet: a wait ends at its timeout with the job still queued.
    assert service.wait(jobs[0].id, timeout_s=0.2).state == "queued"

    worker = service.start_worker(workspace.pipeline, poll_s=0.05, on_finished=finished.append)
    try:
        last = service.wait(jobs[-1].id, timeout_s=WAIT_S)
        assert last.state == "done", last
        done = [service.status(j.id) for j in jobs]
        assert [j.state for j in done] == ["done", "done", "done"]
        # One worker, oldest first: each job started after the one before it had finished.
        for earlier, later in zip(done, done[1:], strict=False):
            assert earlier.finished_at is not None and later.started_at is not None
            assert earlier.finished_at <= later.started_at
        assert [j.id for j in finished] == [j.id for j in jobs]
        assert done[0].result is not None and done[0].result["documents"] == 2
        assert done[0].progress.documents == 2 and done[0].progress.chunks == 2
        assert done[1].result is not None and done[1].result["documents"] == 1
        assert done[2].result == {"deleted": ["volcano"], "not_found": ["no-such-doc"]}
        assert [j.id for j in service.recent(limit=3)] == [j.id for j in reversed(jobs)]
        assert [j.id for j in service.recent("done", 1)] == [jobs[-1].id]
        status = service.worker_status()
        assert status is not None and (status.jobs_done, status.jobs_failed) == (3, 0)

        # The second version won; the deleted document is gone from both stores.
        assert bm25_ids(workspace, "moraines") == ["glacier"]
        assert bm25_ids(workspace, "fjords") == []
        assert bm25_ids(workspace, "lava") == []
        assert workspace.ledger.doc_ids() == ["glacier"]
        assert_stores_agree(workspace.ledger, workspace.engine.dense, workspace.engine.sparse)

        # A bad filter, or a payload that no longer decodes, fails its job and not the worker.
        bad_filter = service.submit_delete_filter({"$nope": 1})
        failed = service.wait(bad_filter.id, timeout_s=WAIT_S)
        assert failed.state == "failed" and failed.error is not None and "$nope" in failed.error
        worker.stop()  # so that the next job stays queued while its row is damaged
        corrupt = service.submit_upsert([glacier_v1])
        with sqlite3.connect(service.queue.path) as conn:
            conn.execute("UPDATE jobs SET payload = '{}' WHERE id = ?", (corrupt.id,))
        after = service.submit_delete(["no-such-doc"])
    finally:
        service.close()
    assert worker.status.state == "stopped"

    service = JobService(JobQueue(workspace.settings.data_dir / JOBS_FILE))
    service.start_worker(workspace.pipeline, poll_s=0.05)
    try:
        assert service.wait(after.id, timeout_s=WAIT_S).state == "done"
        unreadable = service.status(corrupt.id)
        assert unreadable.state == "failed" and unreadable.error is not None
        assert unreadable.error.startswith("the job's stored payload cannot be read")
        assert bm25_ids(workspace, "moraines") == ["glacier"]  # still the second version
    finally:
        service.close()


def test_a_stopped_upsert_is_queued_again_and_reruns(workspace: Workspace) -> None:
    """Stopping between documents (SIGTERM in ``braid worker``) puts the job back in line,
    and the next worker runs it to the end: the re-run is idempotent."""
    queue = JobQueue(workspace.settings.data_dir / JOBS_FILE)
    service = JobService(queue)
    job = service.submit_upsert([SourceDocument("tide", "Tides follow the moon.")])
    # A worker told to stop before it reached the job's first document (its thread never
    # started, so this test runs the claimed job itself).
    stopped = IngestWorker(queue, workspace.pipeline)
    stopped.stop()
    claimed = queue.claim_next()
    assert claimed is not None and claimed.job.id == job.id
    stopped.run_job(claimed)
    requeued = service.status(job.id)
    assert requeued.state == "queued" and requeued.attempts == 1
    assert stopped.status.jobs_done == 0

    worker = service.start_worker(workspace.pipeline, poll_s=0.05)
    try:
        done = service.wait(job.id, timeout_s=WAIT_S)
    finally:
        service.close()
    assert done.state == "done" and done.attempts == 2, done
    assert done.result is not None and done.result["documents"] == 1
    assert worker.status.jobs_done == 1
    assert bm25_ids(workspace, "tides moon") == ["tide"]
    assert_stores_agree(workspace.ledger, workspace.engine.dense, workspace.engine.sparse)


def test_a_job_queued_in_the_old_payload_shape_runs(workspace: Workspace) -> None:
    """A jobs.sqlite written before the payload was shared: its upserts still run."""
    path = workspace.settings.data_dir / JOBS_FILE
    service = JobService(JobQueue(path))
    job = service.submit_upsert([SourceDocument("placeholder", "x")])
    old = [{"id": "reef", "text": "Corals build reefs.", "title": "", "metadata": {"sea": "red"}}]
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE jobs SET payload = ? WHERE id = ?", (json.dumps(old), job.id))
    service.start_worker(workspace.pipeline, poll_s=0.05)
    try:
        done = service.wait(job.id, timeout_s=WAIT_S)
    finally:
        service.close()
    assert done.state == "done" and done.result is not None, done
    assert done.result["documents"] == 1
    hits = workspace.engine.searcher.search(
        "corals", top_k=5, mode="bm25", rerank=False, filter={"sea": "red"}
    ).hits
    assert [h.doc_id for h in hits] == ["reef"]
    assert hits[0].chunk is not None and dict(hits[0].chunk.metadata) == {"sea": "red"}
