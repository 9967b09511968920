"""Load with faults: searches, upserts and deletes from several clients against a running
``braid serve`` while the index is compacted and optimized under them.

One real ``braid serve`` subprocess (MiniLM on the CPU, Qdrant Edge and Tantivy on disk, the
in-process ingestion worker) holds 100 SciFact documents (300 characters, 64-token chunks).
Then, at once, from six threads with one HTTP client each:

* 4 searchers x 60 searches (hybrid, bm25 and dense; with and without a metadata filter;
  facets on some), with ``api.max_concurrent_searches=2`` so that searches really are shed;
* 1 upserter x 10 jobs of 10 documents: 5 of new documents, 5 re-upserting preloaded ones
  with changed text (their old chunks are deleted: that counts towards compaction);
* 1 deleter x 5 jobs: 4 by ids (5 documents each), 1 by filter (the 5 ``part: doomed``).

Compaction: ``braid optimize`` cannot run while the server owns the data dir (it is refused
as a second writer) and no route optimizes, so what compacts under a running server is the
worker itself: after each job, ``IngestPipeline.maybe_compact`` rewrites Tantivy once enough
chunks were deleted, and after a load ``_after_load`` optimizes Qdrant Edge (segments and
indexes). Their thresholds (the ``maintenance`` settings: 1,000 deleted chunks and 20 % of
live ones; 5,000 new points) are made for real corpora, so the server gets lower ones in its
environment (40 deleted chunks, no ratio; 20 new points), and it is started through a
launcher that logs each real compaction and optimize with its start and end time. Nothing
else is changed in the server.

Every response must be a 2xx, or a 503 ``overloaded`` with ``Retry-After: 1`` for a search
(sent again after that second, as a client should; a write may only meet 503 ``queue_full``,
retried the same way); no other 5xx, no connection error, every job ``done``, and no search
sent after a delete job was seen ``done`` returns a document it deleted (searches for their
titles found them before). After SIGTERM, the ledger holds exactly preload + new - deleted,
the ledger, Qdrant and Tantivy agree chunk by chunk, and revised documents hold their new text.

Figures (runs on the 2-core development machine, 2026-12-02): 240 searches answered, 4-8
shed first (503 ``overloaded``; mostly in the opening burst, since a shed client then waits
its Retry-After), no write refused, no other error; 15 jobs (10 upserts, 5 deletes, after
the preload's) all ``done``; 3-4 Tantivy compactions (30-110 ms each) and 10 Qdrant Edge
optimizes during the load, with 15-35 answered searches in flight during one of them; 125
documents (100 + 50 - 25) and 312 chunks at the end. About 11 s per run, the load itself
4.5 s (6.4 s and 15 s in all beside a busy loop on one of the two cores).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_helpers import free_port, wait_job

# The ingestion tests' helpers (a plain module beside them, as api_helpers is here).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ingestion"))
from ingest_helpers import (  # noqa: E402
    SCIFACT_DIR,
    WorkspaceOpener,
    assert_stores_agree,
    cli_env,
    wait_ready,
)

from braid.engine.models import point_id_for

pytestmark = pytest.mark.slow

TEXT_CHARS = 300
PRELOAD = 100
SEARCHERS, SEARCHES_EACH = 4, 60
UPSERT_BATCHES, PER_UPSERT = 10, 10
DELETE_JOBS = 5
MAX_CONCURRENT_SEARCHES = 2
MAX_TRIES = 20  # per request, while it is shed (503 with Retry-After)
COMPACT_AFTER_DELETED_CHUNKS = 40
OPTIMIZE_AFTER_NEW_POINTS = 20
ENV = cli_env(
    BRAID_CHUNKING__MAX_TOKENS="64",
    BRAID_CHUNKING__OVERLAP_TOKENS="8",
    BRAID_API__MAX_CONCURRENT_SEARCHES=str(MAX_CONCURRENT_SEARCHES),
    # The worker's own maintenance thresholds, lowered to this corpus.
    BRAID_MAINTENANCE__COMPACT_MIN_DELETED_CHUNKS=str(COMPACT_AFTER_DELETED_CHUNKS),
    BRAID_MAINTENANCE__COMPACT_DELETED_RATIO="0",
    BRAID_MAINTENANCE__OPTIMIZE_MIN_NEW_POINTS=str(OPTIMIZE_AFTER_NEW_POINTS),
)

# `braid serve` with a line in the log for each real compaction (Tantivy) and optimize
# (Qdrant Edge).
LAUNCHER = """
import os, sys, time
from braid.engine.dense.store import CollectionDenseStore
from braid.engine.sparse.tantivy_store import TantivySparseStore


def logged(kind, method):
    def run(self):
        start = time.time()
        method(self)
        # One write per line to a file of its own: the server's log shares stdout's file
        # and a line there can be cut by another thread's write.
        line = f"{kind} {start:.6f} {time.time():.6f}\\n".encode()
        fd = os.open(os.environ["LOADTEST_TIMINGS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    return run


TantivySparseStore.optimize = logged("compact", TantivySparseStore.optimize)
CollectionDenseStore.optimize = logged("optimize", CollectionDenseStore.optimize)
from braid.cli.app import main

sys.argv = ["braid", *sys.argv[1:]]
main()
"""


def corpus(count: int) -> list[dict[str, Any]]:
    """The first ``count`` SciFact documents, truncated."""
    out: list[dict[str, Any]] = []
    with (SCIFACT_DIR / "corpus.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            out.append({"id": row["_id"], "title": row["title"], "text": row["text"][:TEXT_CHARS]})
            if len(out) == count:
                break
    return out


def queries(count: int) -> list[str]:
    with (SCIFACT_DIR / "queries.jsonl").open(encoding="utf-8") as handle:
        return [json.loads(line)["text"] for line, _ in zip(handle, range(count), strict=False)]


@dataclass
class Plan:
    """Who does what: disjoint document sets, so the final state does not depend on order.

    Preloaded documents 0-49 are re-upserted (revised), 50-69 deleted by id, 70-74
    (``part: doomed``) deleted by filter, 75-99 left alone; 100-149 are new.
    """

    preload: list[dict[str, Any]]
    new: list[dict[str, Any]]
    revised: list[dict[str, Any]]
    delete_ids: list[list[str]]
    doomed: list[str]
    untouched: list[str]

    @classmethod
    def build(cls) -> Plan:
        docs = corpus(PRELOAD + UPSERT_BATCHES // 2 * PER_UPSERT)
        preload = [
            doc | {"part": "doomed" if 70 <= i < 75 else ("a" if i % 2 == 0 else "b")}
            for i, doc in enumerate(docs[:PRELOAD])
        ]
        new = [doc | {"part": "new"} for doc in docs[PRELOAD:]]
        revised = [
            doc | {"text": f"{doc['text']} Revised as rev{i}x."}
            for i, doc in enumerate(preload[:50])
        ]
        delete_ids = [[d["id"] for d in preload[50 + 5 * j : 55 + 5 * j]] for j in range(4)]
        assert len(delete_ids) + 1 == DELETE_JOBS  # and one by filter
        return cls(
            preload=preload,
            new=new,
            revised=revised,
            delete_ids=delete_ids,
            doomed=[d["id"] for d in preload[70:75]],
            untouched=[d["id"] for d in preload[75:]],
        )

    def upsert_batches(self) -> list[list[dict[str, Any]]]:
        """New and revised batches, alternating."""
        batches: list[list[dict[str, Any]]] = []
        for j in range(UPSERT_BATCHES // 2):
            batches.append(self.new[j * PER_UPSERT : (j + 1) * PER_UPSERT])
            batches.append(self.revised[j * PER_UPSERT : (j + 1) * PER_UPSERT])
        return batches

    def search_texts(self, count: int) -> list[str]:
        """SciFact queries, every fourth one the title of a document that will be deleted
        (so that deleted documents are looked for before and after their deletion)."""
        doomed = {i for ids in self.delete_ids for i in ids} | set(self.doomed)
        titles = [d["title"] for d in self.preload if d["id"] in doomed]
        texts = queries(count)
        return [titles[n // 4 % len(titles)] if n % 4 == 3 else t for n, t in enumerate(texts)]

    def expected(self) -> set[str]:
        deleted = {i for ids in self.delete_ids for i in ids} | set(self.doomed)
        return {d["id"] for d in self.preload + self.new} - deleted

    def universe(self) -> set[str]:
        return {d["id"] for d in self.preload + self.new}


@dataclass(frozen=True)
class Answer:
    """One answered search: when it was sent, when answered, the documents it returned."""

    began: float
    ended: float
    doc_ids: tuple[str, ...]


@dataclass
class Tally:
    """What the clients saw; every thread appends here (list.append is atomic)."""

    answered: list[Answer] = field(default_factory=list)
    shed: list[str] = field(default_factory=list)  # Retry-After of each 503 overloaded
    write_retries: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    gone_at: dict[str, float] = field(default_factory=dict)  # deleted doc id -> job seen done


def timings_file(data: Path) -> Path:
    return data.parent / "maintenance-timings.txt"


def start(data: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    launcher = data.parent / "launch_serve.py"
    launcher.write_text(LAUNCHER, encoding="utf-8")
    command = [sys.executable, str(launcher), "serve", "--port", str(port)]
    command += ["--data-dir", str(data)]
    env = ENV | {"LOADTEST_TIMINGS": str(timings_file(data))}
    return subprocess.Popen(command, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def search_body(n: int, query: str) -> dict[str, Any]:
    """Mixed requests: three modes, a filter on every third, facets on every other one."""
    body: dict[str, Any] = {"query": query, "top_k": 5, "mode": ("hybrid", "bm25", "dense")[n % 3]}
    if n % 3 == 1:
        body["filter"] = {"part": "a"} if n % 2 else {"part": {"$in": ["b", "new"]}}
    if n % 2 == 0:
        body["facets"] = ["part"]
    return body


def check_search(body: dict[str, Any], payload: dict[str, Any], universe: set[str]) -> list[str]:
    """What is wrong with a 200 search answer (documents mid-update may come or go)."""
    problems = []
    docs = payload["documents"]
    if len(docs) > body["top_k"]:
        problems.append(f"{len(docs)} documents for top_k {body['top_k']}")
    for doc in docs:
        if doc["doc_id"] not in universe:
            problems.append(f"unknown document {doc['doc_id']}")
        allowed = {"a"} if body.get("filter") == {"part": "a"} else {"b", "new"}
        if "filter" in body and doc["metadata"].get("part") not in allowed:
            problems.append(f"{doc['doc_id']} ({doc['metadata']}) escapes {body['filter']}")
    if "facets" in body:
        values = {v["value"] for v in payload["facets"]["part"]}
        if not values <= {"a", "b", "doomed", "new"}:
            problems.append(f"facet values {values}")
    return problems


def searcher(
    base: str, index: int, texts: list[str], universe: set[str], tally: Tally, go: threading.Barrier
) -> None:
    """``SEARCHES_EACH`` searches, each sent again after ``Retry-After`` while it is shed."""
    with httpx.Client(base_url=base, timeout=30) as client:
        go.wait()
        for k in range(SEARCHES_EACH):
            n = index * SEARCHES_EACH + k
            body = search_body(n, texts[n % len(texts)])
            for _ in range(MAX_TRIES):
                began = time.time()
                try:
                    response = client.post("/v1/search", json=body)
                except httpx.TransportError as exc:
                    tally.problems.append(f"search {n}: {exc!r}")
                    break
                if response.status_code == 503 and error_code(response) == "overloaded":
                    retry_after = response.headers.get("retry-after", "")
                    tally.shed.append(retry_after)
                    time.sleep(float(retry_after or 1))
                    continue
                if response.status_code == 200:
                    payload = response.json()
                    ids = tuple(d["doc_id"] for d in payload["documents"])
                    tally.answered.append(Answer(began, time.time(), ids))
                    tally.problems.extend(check_search(body, payload, universe))
                else:
                    tally.problems.append(f"search {n}: {response.status_code} {response.text}")
                break
            else:
                tally.problems.append(f"search {n}: shed {MAX_TRIES} times")


def error_code(response: httpx.Response) -> str | None:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return None


def submit(
    client: httpx.Client, path: str, body: dict[str, Any], tally: Tally
) -> dict[str, Any] | None:
    """POST a write until it is accepted (202); a full queue is retried after Retry-After."""
    for _ in range(MAX_TRIES):
        try:
            response = client.post(path, json=body)
        except httpx.TransportError as exc:
            tally.problems.append(f"{path}: {exc!r}")
            return None
        if response.status_code == 202:
            job_id = str(response.json()["job_id"])
            job = wait_job(client, job_id, timeout=180)
            tally.jobs[job_id] = job
            return job
        if response.status_code == 503 and error_code(response) == "queue_full":
            retry_after = response.headers["retry-after"]
            tally.write_retries.append(retry_after)
            time.sleep(float(retry_after))
            continue
        tally.problems.append(f"{path}: {response.status_code} {response.text}")
        return None
    tally.problems.append(f"{path}: refused {MAX_TRIES} times")
    return None


def writer(
    base: str, work: Callable[[httpx.Client], None], tally: Tally, go: threading.Barrier
) -> None:
    with httpx.Client(base_url=base, timeout=30) as client:
        go.wait()
        try:
            work(client)
        except Exception as exc:  # reported, not lost in the thread
            tally.problems.append(f"writer: {exc!r}")


def optimizations(data: Path, since: float) -> dict[str, list[tuple[float, float]]]:
    """The launcher's compaction and optimize lines after ``since``: kind -> (start, end)."""
    found: dict[str, list[tuple[float, float]]] = {"compact": [], "optimize": []}
    timings = timings_file(data)
    for line in timings.read_text().splitlines() if timings.exists() else []:
        kind, began, ended = line.split()
        if float(began) >= since:
            found[kind].append((float(began), float(ended)))
    return found


def overlapping(windows: list[tuple[float, float]], answers: list[Answer]) -> int:
    """Searches answered while one of ``windows`` ran."""
    return sum(any(a.began < end and a.ended > begin for begin, end in windows) for a in answers)


def seen_before_deletion(tally: Tally) -> int:
    """Deleted documents returned by searches answered before their delete job was done."""
    return sum(
        doc_id in tally.gone_at and a.ended < tally.gone_at[doc_id]
        for a in tally.answered
        for doc_id in a.doc_ids
    )


def seen_after_deletion(tally: Tally) -> list[str]:
    """Deleted documents returned by a search sent after their delete job was seen done."""
    return [
        f"{doc_id} in a search sent {a.began - tally.gone_at[doc_id]:.3f} s after its deletion"
        for a in tally.answered
        for doc_id in a.doc_ids
        if doc_id in tally.gone_at and a.began > tally.gone_at[doc_id]
    ]


@pytest.mark.skipif(not SCIFACT_DIR.is_dir(), reason="needs ../shared/data/scifact")
def test_mixed_load_while_the_index_is_compacted(tmp_path: Path) -> None:
    data, log = tmp_path / "data", tmp_path / "serve.log"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    plan = Plan.build()
    tally = Tally()
    client = httpx.Client(base_url=base, timeout=30)
    proc = start(data, port, log)
    try:
        wait_ready(client, proc)
        response = client.post(
            "/v1/documents",
            params={"wait": "true", "timeout_s": 120},
            json={"documents": plan.preload},
        )
        assert response.status_code == 200, response.text
        assert response.json()["job"]["state"] == "done"
        assert response.json()["job"]["result"]["documents"] == PRELOAD

        def upserts(c: httpx.Client) -> None:
            for batch in plan.upsert_batches():
                submit(c, "/v1/documents", {"documents": batch}, tally)

        def deletes(c: httpx.Client) -> None:
            bodies: list[dict[str, Any]] = [{"ids": ids} for ids in plan.delete_ids]
            for body in [*bodies, {"filter": {"part": "doomed"}}]:
                job = submit(c, "/v1/documents/delete", body, tally)
                seen_done = time.time()
                if job is not None and job["state"] == "done":
                    tally.gone_at |= dict.fromkeys(job["result"]["deleted"], seen_done)
                time.sleep(0.5)  # spread the deletes over the searches

        texts, universe = plan.search_texts(SEARCHERS * SEARCHES_EACH), plan.universe()
        go = threading.Barrier(SEARCHERS + 2)
        threads = [
            threading.Thread(target=searcher, args=(base, i, texts, universe, tally, go))
            for i in range(SEARCHERS)
        ]
        threads += [
            threading.Thread(target=writer, args=(base, w, tally, go)) for w in (upserts, deletes)
        ]
        load_start = time.time()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        load_s = time.time() - load_start
        assert not any(t.is_alive() for t in threads), "a client did not finish"
        ran = optimizations(data, load_start)
        overlapped = overlapping(ran["compact"] + ran["optimize"], tally.answered)
        print(  # noqa: T201 - the figures the docstring records (shown with -s)
            f"\nload {load_s:.1f} s: {len(tally.answered)} searches answered, "
            f"{len(tally.shed)} shed, {len(tally.write_retries)} writes retried, "
            f"{len(tally.jobs)} jobs, {len(ran['compact'])} compactions and "
            f"{len(ran['optimize'])} optimizes, {overlapped} searches overlapping them, "
            f"{seen_before_deletion(tally)} hits on deleted documents before their deletion"
        )

        assert tally.problems == []
        assert len(tally.answered) == SEARCHERS * SEARCHES_EACH  # each, in the end
        assert tally.shed, "no search was shed: the 503 branch never ran"
        assert set(tally.shed) == {"1"}  # Retry-After on every shed search
        assert len(tally.jobs) == UPSERT_BATCHES + DELETE_JOBS
        assert {j["state"] for j in tally.jobs.values()} == {"done"}, tally.jobs
        deleted = sorted(
            d for j in tally.jobs.values() if j["kind"] != "upsert" for d in j["result"]["deleted"]
        )
        assert deleted == sorted([*(i for ids in plan.delete_ids for i in ids), *plan.doomed])
        # A search sent after a delete job is done never returns what it deleted (and
        # searches did find them before).
        assert seen_after_deletion(tally) == []
        assert seen_before_deletion(tally) > 0

        assert len(ran["compact"]) >= 2, ran
        assert len(ran["optimize"]) >= 2, ran
        assert overlapped >= 1, "no search ran while the index was compacted or optimized"

        # The final state answers searches: an untouched, a new and a revised document.
        title = {d["id"]: d["title"] for d in plan.preload + plan.new}
        for doc_id, query, mode in (
            (plan.untouched[5], title[plan.untouched[5]], "bm25"),
            (plan.new[40]["id"], plan.new[40]["title"], "hybrid"),
            (plan.revised[12]["id"], "rev12x", "bm25"),
        ):
            found = client.post("/v1/search", json={"query": query, "top_k": 3, "mode": mode})
            assert found.status_code == 200, found.text
            assert doc_id in [d["doc_id"] for d in found.json()["documents"]], query
        gone = client.post("/v1/search", json={"query": plan.preload[55]["title"], "mode": "bm25"})
        assert gone.status_code == 200, gone.text
        assert plan.preload[55]["id"] not in [d["doc_id"] for d in gone.json()["documents"]]
    finally:
        client.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    assert proc.returncode in (0, -signal.SIGTERM), log.read_text()[-2000:]
    assert "Traceback" not in log.read_text(errors="replace")

    opener = WorkspaceOpener()
    try:
        ws = opener(data)
        chunks_per_doc = assert_stores_agree(ws.ledger, ws.engine.dense, ws.engine.sparse)
        assert set(ws.ledger.doc_ids()) == set(chunks_per_doc) == plan.expected()
        assert len(plan.expected()) == PRELOAD + 50 - 25
        # Every revised document is stored in its new version, in both stores.
        revised = {d["id"]: f"rev{i}x" for i, d in enumerate(plan.revised)}
        points = [point_id_for(d, i) for d in revised for i in range(chunks_per_doc[d])]
        for chunks in (
            ws.engine.sparse.fetch(points).values(),
            ws.engine.dense.fetch(points).values(),
        ):
            text: dict[str, str] = {}
            for chunk in chunks:
                text[chunk.doc_id] = text.get(chunk.doc_id, "") + chunk.text
            assert all(marker in text[doc_id] for doc_id, marker in revised.items())
    finally:
        opener.close_all()
