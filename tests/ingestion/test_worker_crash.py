"""SIGKILL ``braid worker`` at seeded random points while jobs are submitted, restart it, and
check that nothing accepted is lost or duplicated ("accepted means durable", split deployment).

A reader API's ``JobService`` has no worker: it commits jobs to the shared queue and the
worker process runs them. Here the test process is that reader. It submits 8 upsert batches
of 30 SciFact documents (two batches re-upsert 10 earlier documents with new text, one of
them a document deleted before) and 2 delete jobs of 5 documents, some while the worker runs
and some while it is dead. The worker is killed 3 times, each a seeded random delay after it
was seen running a job, restarted each time, then left to drain and stopped with SIGTERM.

The queue after a kill is frozen (its only writer is dead), so a job still ``running`` there
was interrupted: the test requires at least one such kill, so it cannot pass by killing an
idle worker. Then every job must be ``done``, claimed once plus once per interruption, and
the stores must hold exactly the documents the submissions leave (upserts in order, minus
deletes, the last text winning: the ledger's content hash per document is the latest one's),
with ledger, Qdrant and Tantivy agreeing chunk for chunk.

Figures (seed 1606; jobs of ~0.4 s on 2 cores): 3 kills, 10 jobs, 240 documents accepted
(220 distinct, 20 re-upserted), 10 deleted, 211 expected at the end; in the two checked runs
2 of the 3 kills interrupted a running job; 0 lost, 0 duplicated.
"""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from ingest_helpers import (
    SCIFACT_DIR,
    WorkspaceOpener,
    assert_stores_agree,
    braid_command,
    cli_env,
    ledger_rows,
    scifact_head,
)

from braid.ingestion.documents import SourceDocument
from braid.ingestion.jobs import JOBS_FILE, Job, JobQueue, JobService
from braid.ingestion.ledger import LEDGER_FILE

SEED = 1606
BATCHES = 8
PER_BATCH = 30
REVISED = {3: 10, 6: 10}  # batch -> earlier documents it upserts again with new text
DELETES = {4: 5, 7: 5}  # after this batch, a delete job of this many live documents
TEXT_CHARS = 300
KILLS = 3
# After the worker is seen running a job: a job of 30 short documents takes ~0.4 s here and
# each kill has several jobs queued, so most delays land in the middle of one.
KILL_DELAY_S = (0.05, 1.2)
WAIT_S = 240.0  # generous: other processes share the two cores
ENV = cli_env(BRAID_CHUNKING__MAX_TOKENS="64", BRAID_CHUNKING__OVERLAP_TOKENS="8")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (SCIFACT_DIR / "corpus.jsonl").is_file(), reason="needs ../shared/data/scifact"
    ),
]


def marker(batch: int, doc_id: str) -> str:
    """A word only the revision of ``doc_id`` in ``batch`` contains (one BM25 token)."""
    return f"braidrev{batch}d{doc_id}"


@dataclass
class Submitter:
    """The reader side: submits jobs and keeps what the stores must hold once all have run."""

    jobs: JobService
    rng: random.Random
    fresh: list[SourceDocument]
    expected: dict[str, SourceDocument] = field(default_factory=dict)
    submitted: list[Job] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)  # every id ever upserted, in order
    deleted: list[str] = field(default_factory=list)
    revised: dict[str, int] = field(default_factory=dict)  # doc id -> its latest revision
    superseded: list[tuple[int, str]] = field(default_factory=list)  # older revisions
    delete_results: dict[str, list[str]] = field(default_factory=dict)  # job id -> deleted
    accepted_documents: int = 0

    def upsert(self, batch: int) -> None:
        count = REVISED.get(batch, 0)
        revised_ids = self.rng.sample(self.seen, count) if count else []
        if count and self.deleted and not set(revised_ids) & set(self.deleted):
            # A document deleted earlier comes back with new text.
            revised_ids[0] = self.rng.choice(self.deleted)
        docs = []
        for doc_id in revised_ids:
            base = self.expected.get(doc_id) or next(d for d in self.fresh if d.doc_id == doc_id)
            text = f"{base.text[:200]} Revised in batch {batch}: {marker(batch, doc_id)}."
            docs.append(SourceDocument(doc_id, text, base.title))
            if doc_id in self.revised:
                self.superseded.append((self.revised[doc_id], doc_id))
            self.revised[doc_id] = batch
        new = [d for d in self.fresh if d.doc_id not in self.seen][: PER_BATCH - count]
        assert len(new) == PER_BATCH - count
        docs += new
        self.rng.shuffle(docs)
        self.submitted.append(self.jobs.submit_upsert(docs))
        self.accepted_documents += len(docs)
        for doc in docs:
            self.expected[doc.doc_id] = doc
            if doc.doc_id not in self.seen:
                self.seen.append(doc.doc_id)

    def delete(self, count: int) -> None:
        live = sorted(self.expected)
        doc_ids = self.rng.sample(live, count)
        latest_revisions = [d for d in live if d in self.revised and d not in doc_ids]
        if not set(doc_ids) & set(self.revised) and latest_revisions:
            # A document whose latest text is a revision is deleted after it.
            doc_ids[0] = self.rng.choice(latest_revisions)
        job = self.jobs.submit_delete(doc_ids)
        self.submitted.append(job)
        self.delete_results[job.id] = sorted(doc_ids)
        for doc_id in doc_ids:
            del self.expected[doc_id]
        self.deleted.extend(doc_ids)

    def batch(self, batch: int) -> None:
        """Upsert ``batch``, then the delete that follows it, if any."""
        self.upsert(batch)
        if batch in DELETES:
            self.delete(DELETES[batch])


@dataclass(frozen=True)
class Kill:
    delay_s: float
    interrupted: list[str]  # jobs left ``running`` in the queue by the killed worker
    pending_docs: int  # ledger rows left ``pending``: the kill landed mid-write


def start_worker(data: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [*braid_command(), "worker", "--data-dir", str(data), "--poll-s", "0.2"],
            env=ENV,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def wait_ready(proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + WAIT_S
    while f"ready (pid {proc.pid})" not in log.read_text():
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.05)


def wait_busy(jobs: JobService, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Until the worker runs a job (or has nothing left to run)."""
    deadline = time.monotonic() + WAIT_S
    while not jobs.recent("running") and jobs.queue.depth() > 0:
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.01)


def wait_writing(
    data: Path, writes: int, jobs: JobService, proc: subprocess.Popen[bytes], log: Path
) -> None:
    """Until the worker is in the middle of its ``writes``-th write (or has nothing left).

    The ledger shows a write: its documents are ``pending`` from before their chunks go to
    the stores until after Tantivy's commit (tens of milliseconds; polled every 2 ms).
    """
    deadline = time.monotonic() + WAIT_S
    seen, before = 0, False
    with closing(sqlite3.connect(f"file:{data / LEDGER_FILE}?mode=ro", uri=True)) as conn:
        while True:
            query = "SELECT 1 FROM documents WHERE state = 'pending' LIMIT 1"
            writing = conn.execute(query).fetchone() is not None
            seen += writing and not before
            if seen == writes or (not writing and jobs.queue.depth() == 0):
                return
            before = writing
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.002)


def kill(proc: subprocess.Popen[bytes], jobs: JobService, data: Path, delay_s: float) -> Kill:
    """SIGKILL the worker ``delay_s`` from now; what it left in the queue and the ledger."""
    time.sleep(delay_s)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    # Nothing writes the queue or the ledger now: what they show is what the kill left.
    pending = sum(row[4] == "pending" for row in ledger_rows(data).values())
    return Kill(delay_s, [j.id for j in jobs.recent("running")], pending)


def wait_all_finished(
    jobs: JobService, job_ids: list[str], proc: subprocess.Popen[bytes], log: Path
) -> list[Job]:
    deadline = time.monotonic() + WAIT_S
    while True:
        found = [jobs.status(j) for j in job_ids]
        if all(j.finished for j in found):
            return found
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.1)


def test_sigkill_of_the_worker_loses_and_duplicates_no_accepted_job(
    tmp_path: Path, open_ws: WorkspaceOpener
) -> None:
    data, log = tmp_path / "data", tmp_path / "worker.log"
    rng = random.Random(SEED)
    jobs = JobService(JobQueue(data / JOBS_FILE))  # a reader's service: no worker
    reader = Submitter(jobs, rng, scifact_head(BATCHES * PER_BATCH, TEXT_CHARS))
    # Submitted when the worker is up (U) or dead (D), between the kills.
    for batch in (0, 1, 2):
        reader.batch(batch)  # D: before the first start
    kills: list[Kill] = []
    proc = start_worker(data, log)
    try:
        wait_ready(proc, log)
        reader.batch(3)  # U
        # The first kill lands in the middle of a (seeded) write: the pipeline's recovery runs.
        wait_writing(data, rng.randint(1, 3), jobs, proc, log)
        kills.append(kill(proc, jobs, data, 0.0))
        reader.batch(4)  # D (and the first delete)
        reader.batch(5)  # D

        proc = start_worker(data, log)
        wait_ready(proc, log)
        wait_busy(jobs, proc, log)
        kills.append(kill(proc, jobs, data, rng.uniform(*KILL_DELAY_S)))
        reader.batch(6)  # D

        proc = start_worker(data, log)
        wait_ready(proc, log)
        reader.batch(7)  # U (and the second delete)
        wait_busy(jobs, proc, log)
        kills.append(kill(proc, jobs, data, rng.uniform(*KILL_DELAY_S)))

        proc = start_worker(data, log)
        wait_ready(proc, log)
        final = wait_all_finished(jobs, [j.id for j in reader.submitted], proc, log)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)
    jobs.close()
    text = log.read_text()
    assert proc.returncode == 0, text[-3000:]
    assert len(kills) == KILLS
    assert len(final) == BATCHES + len(DELETES)

    # Not vacuous: at least one kill left a job running, and only one runs at a time.
    interrupted = [job_id for k in kills for job_id in k.interrupted]
    assert interrupted, f"every kill landed while the worker was idle: {kills}"
    assert all(len(k.interrupted) <= 1 for k in kills), kills
    # ... and the first one left half-written documents for the pipeline's recovery.
    assert kills[0].pending_docs > 0 and kills[0].interrupted, kills
    assert text.count("requeued 1 job(s) left running by a previous process") == len(interrupted), (
        text[-3000:]
    )

    # Every accepted job ran to the end, once, plus once again for each interruption.
    assert [j.state for j in final] == ["done"] * len(final), [j.error for j in final]
    by_id = {j.id: j for j in final}
    assert all(by_id[job_id].attempts >= 2 for job_id in interrupted)
    assert sum(j.attempts for j in final) == len(final) + len(interrupted)
    for job in final:
        assert job.result is not None
        if job.kind == "upsert":
            # A rerun skips what the interrupted run had already committed.
            assert job.result["errors"] == [], job.result
            written = job.result["documents"]
            skipped = job.result["skipped_unchanged"]
            assert isinstance(written, int) and isinstance(skipped, int)
            assert written + skipped == job.items == PER_BATCH, job.result
            if job.attempts == 1:
                assert skipped == 0, job.result
        elif job.attempts == 1:
            # A rerun delete reports as not found what its first run already deleted.
            assert job.result == {"deleted": reader.delete_results[job.id], "not_found": []}

    # Nothing lost, nothing extra, the latest version of every document.
    rows = ledger_rows(data)
    assert set(rows) == set(reader.expected)
    assert {d: row[0] for d, row in rows.items()} == {
        d: doc.content_hash for d, doc in reader.expected.items()
    }
    assert {row[4] for row in rows.values()} == {"indexed"}

    ws = open_ws(data)
    chunks_per_doc = assert_stores_agree(ws.ledger, ws.engine.dense, ws.engine.sparse)
    assert set(chunks_per_doc) == set(reader.expected)
    ledger_chunks = sum(row[1] for row in rows.values())
    assert ws.engine.dense.count() == ledger_chunks == ws.engine.sparse.count()

    searcher = ws.engine.searcher
    live_revised = sorted(d for d in reader.revised if d in reader.expected)
    gone_revised = sorted(d for d in reader.revised if d not in reader.expected)
    assert live_revised and gone_revised
    for doc_id in live_revised:  # each found by the word only its latest text has
        word = marker(reader.revised[doc_id], doc_id)
        hits = searcher.search(word, top_k=3, mode="bm25", rerank=False).hits
        assert [h.doc_id for h in hits] == [doc_id], word
        assert hits[0].chunk is not None and word in hits[0].chunk.text
    # Deleted after its revision, or replaced by a later one: nothing has the word.
    gone = [(reader.revised[d], d) for d in gone_revised] + reader.superseded
    for batch, doc_id in gone:
        word = marker(batch, doc_id)
        assert searcher.search(word, top_k=3, mode="bm25", rerank=False).hits == [], word
    plain = reader.expected[next(d for d in reader.seen if d not in reader.revised)]
    hits = searcher.search(plain.text[:150], top_k=1, mode="dense", rerank=False).hits
    assert [h.doc_id for h in hits] == [plain.doc_id]
