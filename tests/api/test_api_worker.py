"""The durable job queue and the ingestion worker: order, restart, crash, full queue."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from api_helpers import assert_error, hit_ids, wait_job
from conftest import running_app

from braid.engine.config import Settings
from braid.ingestion.documents import SourceDocument
from braid.ingestion.worker import (
    JOBS_FILE,
    JobNotFoundError,
    JobProgress,
    JobQueue,
    QueueFullError,
)


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
    assert reopened.depth() == 3
    claimed = reopened.claim_next()
    assert claimed is not None
    job, payload = claimed
    assert job.id == first.id and job.state == "running" and job.attempts == 1
    assert payload == [
        {"id": "a", "text": "alpha", "title": "", "metadata": {"kind": "test"}},
        {"id": "b", "text": "beta", "title": "", "metadata": {"kind": "test"}},
    ]
    # The process dies here: at the next start the running job is queued again, first in line.
    reopened.close()
    restarted = JobQueue(tmp_path / JOBS_FILE)
    assert restarted.requeue_running() == 1
    again = restarted.claim_next()
    assert again is not None and again[0].id == first.id and again[0].attempts == 2
    restarted.finish(first.id, {"documents": 2}, JobProgress(documents=2, chunks=2))
    done = restarted.get(first.id)
    assert done.state == "done" and done.result == {"documents": 2} and done.progress.chunks == 2
    assert restarted.counts() == {"queued": 2, "running": 0, "done": 1, "failed": 0}
    with pytest.raises(JobNotFoundError):
        restarted.get("missing")


def test_queue_limit_and_prune(tmp_path: Path) -> None:
    queue = JobQueue(tmp_path / JOBS_FILE, max_unfinished=2)
    jobs = [queue.submit_delete([str(i)]) for i in range(2)]
    with pytest.raises(QueueFullError):
        queue.submit_delete(["x"])
    for job in jobs:
        claimed = queue.claim_next()
        assert claimed is not None
        queue.fail(job.id, "boom", JobProgress())
    assert queue.get(jobs[0].id).error == "boom"
    queue.submit_delete(["y"])  # finished jobs do not count against the limit
    assert queue.prune(keep=1) == 1
    with pytest.raises(JobNotFoundError):
        queue.get(jobs[0].id)


def test_jobs_survive_a_restart_and_a_full_queue_is_503(
    settings_for: Callable[..., Settings],
) -> None:
    settings = settings_for("restart", max_queue_jobs=2)
    queued: list[str] = []
    with running_app(settings) as client:
        # Stop the worker: what is submitted now stays queued when the server stops.
        client.app.state.runtime.worker.stop()  # type: ignore[attr-defined]
        for name, text in (
            ("glacier", "Glaciers carve fjords."),
            ("volcano", "Volcanoes erupt lava."),
        ):
            response = client.post(
                "/v1/documents", json={"documents": [{"id": name, "text": text}]}
            )
            assert response.status_code == 202
            queued.append(response.json()["job_id"])
        full = client.post("/v1/documents", json={"documents": [{"id": "x", "text": "y"}]})
        assert_error(full, 503, "queue_full")
        assert full.headers["retry-after"] == "5"
        assert client.get(f"/v1/jobs/{queued[0]}").json()["state"] == "queued"
        assert client.get("/v1/stats").json()["queue"]["depth"] == 2

    # A crash mid-job: the first job is left 'running' by a process that is gone.
    crashed = JobQueue(settings.data_dir / JOBS_FILE)
    claimed = crashed.claim_next()
    assert claimed is not None and claimed[0].id == queued[0]
    crashed.close()

    with running_app(settings) as client:
        jobs = [wait_job(client, job_id) for job_id in queued]
        assert [j["state"] for j in jobs] == ["done", "done"]
        assert jobs[0]["attempts"] == 2 and jobs[1]["attempts"] == 1
        assert hit_ids(client.post("/v1/search", json={"query": "fjords", "mode": "bm25"})) == [
            "glacier"
        ]
        assert hit_ids(client.post("/v1/search", json={"query": "lava", "mode": "bm25"})) == [
            "volcano"
        ]
        assert client.get("/v1/stats").json()["consistent"] is True
