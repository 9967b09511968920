"""``braid worker`` for real: a second process that owns the data dir and runs queued jobs.

The jobs are submitted from this process through a ``JobService`` without a worker, into the
shared SQLite queue, as a reader API server does; the worker finds them by polling. The stores are checked after it stops.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from ingest_helpers import (
    WorkspaceOpener,
    assert_stores_agree,
    braid_command,
    cli_env,
    ledger_rows,
    sample_rows,
)

from braid.engine.locking import OWNER_FILE, read_owner
from braid.ingestion.documents import SourceDocument
from braid.ingestion.jobs import JOBS_FILE, WORKER_ROLE, Job, JobQueue, JobService
from braid.ingestion.readers import record_to_document


def sample_documents() -> list[SourceDocument]:
    documents = []
    for i, row in enumerate(sample_rows()):
        record = record_to_document(row, f"sample[{i}]")
        assert isinstance(record, SourceDocument), record
        documents.append(record)
    return documents


def wait_finished(
    jobs: JobService, job_id: str, process: subprocess.Popen[bytes], log: Path
) -> Job:
    deadline = time.monotonic() + 300
    while True:
        job = jobs.wait(job_id, timeout_s=0.1)
        if job.finished:
            return job
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)


@pytest.mark.slow  # a braid worker subprocess loading the model
def test_worker_runs_jobs_submitted_by_another_process(
    tmp_path: Path, open_ws: WorkspaceOpener
) -> None:
    data_dir = tmp_path / "data"
    jobs = JobService(JobQueue(data_dir / JOBS_FILE))
    upsert = jobs.submit_upsert(sample_documents())  # queued before the worker starts
    log = tmp_path / "worker.log"
    with log.open("wb") as err:
        process = subprocess.Popen(
            [*braid_command(), "worker", "--data-dir", str(data_dir), "--json", "--poll-s", "0.2"],
            env=cli_env(),
            stdout=subprocess.PIPE,
            stderr=err,
        )
    try:
        done = wait_finished(jobs, upsert.id, process, log)
        assert done.state == "done", done
        assert done.result is not None and done.result["documents"] == 12
        owner = read_owner(data_dir) or {}
        assert owner["role"] == WORKER_ROLE and owner["pid"] == process.pid

        # Exactly one worker: a second one is told who owns the data dir.
        second = subprocess.run(
            [*braid_command(), "worker", "--data-dir", str(data_dir)],
            env=cli_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == 1
        assert f"in use by {WORKER_ROLE} (pid {process.pid})" in " ".join(second.stderr.split())

        # Submitted while the worker idles: found by its next poll of the queue.
        delete = jobs.submit_delete(["sourdough", "no-such-doc"])
        deleted = wait_finished(jobs, delete.id, process, log)
        assert deleted.result == {"deleted": ["sourdough"], "not_found": ["no-such-doc"]}
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        stdout, _ = process.communicate(timeout=120)
    assert process.returncode == 0, log.read_text()
    assert json.loads(stdout) == {"jobs_done": 2, "jobs_failed": 0, "last_error": None}
    text = log.read_text()
    assert f"job {upsert.id} upsert (12 items) done" in text
    assert f"job {delete.id} delete (2 items) done" in text
    assert "SIGTERM" in text
    assert not (data_dir / OWNER_FILE).exists()  # the lock was released
    jobs.close()

    # What the worker wrote, read back by the next owner.
    expected = {str(row["id"]) for row in sample_rows()} - {"sourdough"}
    assert set(ledger_rows(data_dir)) == expected
    ws = open_ws(data_dir)
    assert_stores_agree(ws.ledger, ws.engine.dense, ws.engine.sparse)
    for mode in ("bm25", "dense"):
        hits = ws.engine.searcher.search("coffee grind size", top_k=1, mode=mode, rerank=False)
        assert [h.doc_id for h in hits.hits] == ["espresso"], mode
