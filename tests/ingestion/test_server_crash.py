"""Kill ``braid serve`` with SIGKILL while accepted upsert jobs are in flight, restart it, and
check that every accepted document is indexed exactly once and the stores agree.

A 202 from ``POST /v1/documents`` is a promise: the job is durable once it is answered.

- The first test kills the server at one point: after its first job finished and before the
  last one did, so at least one job is interrupted mid-write and others have not started.
- The second kills it 3 times at seeded random points (a random delay after a job is seen
  running, each in a different job) while a client thread submits 8 upserts and a delete and
  resends whatever a refused or cut connection left in doubt. Figures (seed 1616, 2 cores):
  9 jobs, 240 documents accepted (16 of them revisions), 5 deleted, 219 expected; each kill
  interrupted a running job; 4-5 resends, no job committed twice; 0 lost, 0 duplicated.
"""

from __future__ import annotations

import random
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from ingest_helpers import (
    SCIFACT_DIR,
    WorkspaceOpener,
    assert_stores_agree,
    braid_command,
    cli_env,
    ledger_rows,
    scifact_head,
    wait_ready,
)

from braid.ingestion.documents import SourceDocument
from braid.ingestion.jobs import JOBS_FILE

BATCHES = 6
PER_BATCH = 40
TEXT_CHARS = 300
ENV = cli_env(BRAID_CHUNKING__MAX_TOKENS="64", BRAID_CHUNKING__OVERLAP_TOKENS="8")

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def record(doc: SourceDocument) -> dict[str, Any]:
    """The REST body shape of ``doc``."""
    return {"id": doc.doc_id, "title": doc.title, "text": doc.text}


def start(data: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*braid_command(), "serve", "--port", str(port), "--data-dir", str(data)],
        env=ENV,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def states(client: httpx.Client, job_ids: list[str]) -> list[str]:
    return [client.get(f"/v1/jobs/{j}").json()["state"] for j in job_ids]


@pytest.mark.skipif(not SCIFACT_DIR.is_dir(), reason="needs ../shared/data/scifact")
def test_sigkill_of_the_server_loses_no_accepted_document(tmp_path: Path) -> None:
    data, log = tmp_path / "data", tmp_path / "serve.log"
    port = free_port()
    docs = [record(d) for d in scifact_head(BATCHES * PER_BATCH, TEXT_CHARS)]
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    proc = start(data, port, log)
    try:
        wait_ready(client, proc)
        job_ids = []
        for i in range(BATCHES):
            batch = docs[i * PER_BATCH : (i + 1) * PER_BATCH]
            response = client.post("/v1/documents", json={"documents": batch})
            assert response.status_code == 202, response.text
            job_ids.append(response.json()["job_id"])
        # Kill once the first job is done and the last is not: jobs are mid-flight.
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            now = states(client, job_ids)
            if now[0] == "done":
                break
            time.sleep(0.05)
        assert now[-1] != "done", f"every job finished before the kill: {now}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)

        proc = start(data, port, log)
        wait_ready(client, proc)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            now = states(client, job_ids)
            if all(s in ("done", "failed") for s in now):
                break
            time.sleep(0.25)
        assert now == ["done"] * BATCHES, log.read_text()[-2000:]
    finally:
        client.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)

    opener = WorkspaceOpener()
    try:
        ws = opener(data)
        chunks_per_doc = assert_stores_agree(ws.ledger, ws.engine.dense, ws.engine.sparse)
        assert set(chunks_per_doc) == {d["id"] for d in docs}  # none lost, none extra
        assert all(n >= 1 for n in chunks_per_doc.values())
    finally:
        opener.close_all()


# --- SIGKILL at seeded random points while a client submits -------------------------------

SEED = 1616
KILLS = 3
PLAN_BATCHES = 8
PLAN_PER_BATCH = 30
PLAN_REVISED = {3: 8, 6: 8}  # batch -> earlier documents it upserts again with new text
PLAN_DELETES = {4: 5}  # after this batch, a delete of this many live documents
KILL_DELAY_S = (0.05, 1.0)  # after a job is seen running; a job of 30 documents takes ~0.5 s
SUBMIT_GAP_S = (0.05, 0.4)  # the client's pause between submissions
WAIT_S = 300.0


@dataclass(frozen=True)
class Submission:
    kind: str  # "upsert" or "delete"
    body: dict[str, Any]


@dataclass
class RetryingClient:
    """Submits the plan in order and resends a submission until it is answered 202.

    A connection refused (the server is dead) or cut (killed mid-request) leaves a
    submission in doubt: it may have been committed without its 202 reaching us. The client
    resends it unchanged, as a careful client of an idempotent API does; a job committed
    twice that way upserts the same texts (the second skips them as unchanged) or deletes
    the same ids (reported as not found), so the expected end state is the plan's.
    """

    base_url: str
    plan: list[Submission]
    rng: random.Random
    accepted: list[str] = field(default_factory=list)  # job ids, in submission order
    resends: int = 0
    error: BaseException | None = None

    def run(self) -> None:
        try:
            with httpx.Client(base_url=self.base_url, timeout=10) as client:
                for submission in self.plan:
                    self.accepted.append(self._submit(client, submission))
                    time.sleep(self.rng.uniform(*SUBMIT_GAP_S))
        except BaseException as exc:  # reported by the test thread
            self.error = exc

    def _submit(self, client: httpx.Client, submission: Submission) -> str:
        path = "/v1/documents" if submission.kind == "upsert" else "/v1/documents/delete"
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            try:
                response = client.post(path, json=submission.body)
            except httpx.TransportError:
                self.resends += 1
                time.sleep(0.1)
                continue
            if response.status_code == 503:  # starting up, or the queue is full
                time.sleep(0.1)
                continue
            assert response.status_code == 202, response.text
            return str(response.json()["job_id"])
        raise AssertionError(f"no 202 for a {submission.kind} in {WAIT_S} s")


def submission_plan(rng: random.Random) -> tuple[list[Submission], dict[str, SourceDocument]]:
    """The upserts and deletes the client sends, and the documents they leave."""
    fresh = iter(scifact_head(PLAN_BATCHES * PLAN_PER_BATCH, TEXT_CHARS))
    plan: list[Submission] = []
    expected: dict[str, SourceDocument] = {}
    for batch in range(PLAN_BATCHES):
        count = PLAN_REVISED.get(batch, 0)
        revised = [expected[d] for d in rng.sample(sorted(expected), count)]
        docs = [
            SourceDocument(d.doc_id, f"{d.text[:200]} Revised in batch {batch}.", d.title)
            for d in revised
        ]
        docs += [next(fresh) for _ in range(PLAN_PER_BATCH - count)]
        rng.shuffle(docs)
        plan.append(Submission("upsert", {"documents": [record(d) for d in docs]}))
        expected |= {d.doc_id: d for d in docs}
        if batch in PLAN_DELETES:
            gone = rng.sample(sorted(expected), PLAN_DELETES[batch])
            plan.append(Submission("delete", {"ids": gone}))
            for doc_id in gone:
                del expected[doc_id]
    return plan, expected


def queue_rows(data: Path) -> list[tuple[str, str, int]]:
    """(job id, state, attempts) of every job in the queue, oldest first, read-only."""
    uri = f"file:{data / JOBS_FILE}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as conn:
        rows = conn.execute("SELECT id, state, attempts FROM jobs ORDER BY seq").fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


def wait_running(
    data: Path, client_thread: threading.Thread, proc: subprocess.Popen[bytes]
) -> None:
    """Until the server runs a job, or the client is done and nothing is left to run."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, "braid serve exited"
        states = [state for _, state, _ in queue_rows(data)] if (data / JOBS_FILE).exists() else []
        if "running" in states:
            return
        if not client_thread.is_alive() and "queued" not in states:
            return
        time.sleep(0.01)
    raise AssertionError("no job ran")


def wait_finished(data: Path, job_ids: list[str], proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, "braid serve exited"
        states = {j: state for j, state, _ in queue_rows(data)}
        if all(states[j] in ("done", "failed") for j in job_ids):
            return
        time.sleep(0.01)
    raise AssertionError(f"jobs {job_ids} did not finish")


@pytest.mark.skipif(not SCIFACT_DIR.is_dir(), reason="needs ../shared/data/scifact")
def test_sigkill_of_the_server_at_random_points_loses_and_duplicates_nothing(
    tmp_path: Path,
) -> None:
    """3 SIGKILLs of ``braid serve`` at seeded random points while a client submits 9 jobs
    (240 documents, 16 of them revisions, and a delete of 5), resending what was in doubt."""
    data, log = tmp_path / "data", tmp_path / "serve.log"
    port = free_port()
    rng = random.Random(SEED)
    plan, expected = submission_plan(rng)
    submitter = RetryingClient(f"http://127.0.0.1:{port}", plan, random.Random(SEED + 1))
    client_thread = threading.Thread(target=submitter.run, daemon=True)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    interrupted: list[list[str]] = []  # per kill: the jobs it left running
    proc = start(data, port, log)
    try:
        wait_ready(client, proc)
        client_thread.start()
        for _ in range(KILLS):
            # Each kill after the first waits for the job the last one interrupted to finish,
            # so the kills land in different jobs.
            wait_finished(data, interrupted[-1] if interrupted else [], proc)
            wait_running(data, client_thread, proc)
            time.sleep(rng.uniform(*KILL_DELAY_S))
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            # Nothing writes the queue now: a job still running there was interrupted.
            interrupted.append([j for j, state, _ in queue_rows(data) if state == "running"])
            proc = start(data, port, log)
            wait_ready(client, proc)
        client_thread.join(timeout=WAIT_S)
        assert not client_thread.is_alive() and submitter.error is None, submitter.error
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            now = states(client, submitter.accepted)
            if all(s in ("done", "failed") for s in now):
                break
            time.sleep(0.25)
        assert now == ["done"] * len(plan), log.read_text()[-3000:]
    finally:
        client.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)

    # Not vacuous: a kill interrupted a running job, which a restart ran again.
    assert any(interrupted), f"every kill landed while the server was idle: {interrupted}"
    rows = queue_rows(data)
    assert {state for _, state, _ in rows} == {"done"}, rows
    attempts = {job_id: n for job_id, _, n in rows}
    assert all(attempts[j] >= 2 for kill in interrupted for j in kill), (interrupted, rows)
    # Every job committed ran; the ones beyond the plan's were resent after a cut request.
    assert len(plan) <= len(rows) <= len(plan) + submitter.resends

    # Nothing lost, nothing extra, the latest text of every document.
    ledger = ledger_rows(data)
    assert {d: row[0] for d, row in ledger.items()} == {
        d: doc.content_hash for d, doc in expected.items()
    }
    opener = WorkspaceOpener()
    try:
        ws = opener(data)
        chunks_per_doc = assert_stores_agree(ws.ledger, ws.engine.dense, ws.engine.sparse)
        assert set(chunks_per_doc) == set(expected)
        assert ws.engine.dense.count() == sum(chunks_per_doc.values()) == ws.engine.sparse.count()
    finally:
        opener.close_all()
