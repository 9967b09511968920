"""The API over the durable job queue: restart, crash, full queue, the stored payload.

The queue's own tests (order, limit, codec) are in tests/ingestion/test_job_queue.py.
"""

from __future__ import annotations

from collections.abc import Callable

from api_helpers import assert_error, hit_ids, wait_job
from conftest import running_app

from braid.engine.config import Settings
from braid.ingestion.jobs import JOBS_FILE, JobQueue


def test_jobs_survive_a_restart_and_a_full_queue_is_503(
    settings_for: Callable[..., Settings],
) -> None:
    settings = settings_for("restart", max_queue_jobs=2)
    queued: list[str] = []
    posted = [
        {"id": "glacier", "text": "Glaciers carve fjords.", "region": "arctic"},
        {"id": "volcano", "title": "Volcano", "text": "Volcanoes erupt lava.", "n": 2.5},
    ]
    with running_app(settings) as client:
        # Stop the worker: what is submitted now stays queued when the server stops.
        client.app.state.runtime.worker.stop()  # type: ignore[attr-defined]
        for document in posted:
            response = client.post("/v1/documents", json={"documents": [document]})
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
    assert claimed is not None and claimed.job.id == queued[0]
    # What the queue stored is what the client posted: one payload shape, API to worker.
    assert [d.to_json() for d in claimed.documents] == posted[:1]
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
