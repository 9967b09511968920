"""The split deployment's reader: ``api.role=reader`` beside a separate worker.

A reader takes no lock, opens Tantivy without a writer and the ledger read-only, and queues
writes for the worker. Qdrant is shared between processes in production (a server); here the
writer and the reader run in one process and share one local-mode Qdrant store, while
Tantivy, the ledger and the job queue are opened separately, as two processes would.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_helpers import (
    TORCH_THREADS,
    braid_command,
    free_port,
    hit_ids,
    make_settings,
    wait_job,
)
from conftest import running_app
from fastapi.testclient import TestClient

from braid.api.runtime import READER_OPEN_ATTEMPTS, Runtime
from braid.engine.config import QdrantSettings, Settings
from braid.engine.errors import BackendUnavailableError, IndexLockedError
from braid.engine.factory import Engine, Stores, build_sparse_store, search_defaults
from braid.engine.locking import DataDirLock, read_owner
from braid.engine.models import Chunk
from braid.engine.searcher import HybridSearcher
from braid.engine.sparse.following import FollowingSparseStore
from braid.engine.sparse.tantivy_store import TantivySparseStore
from braid.ingestion.jobs import JOBS_FILE, WORKER_ROLE, IngestWorker, JobQueue
from braid.ingestion.service import Workspace, open_workspace


def chunk(doc_id: str, text: str) -> Chunk:
    return Chunk(doc_id=doc_id, chunk_index=0, text=text)


def bm25_ids(store: FollowingSparseStore, query: str) -> list[str]:
    found = store.fetch([p.point_id for p in store.search(query, 10)])
    return sorted(c.doc_id for c in found.values())


def test_following_store_sees_each_commit_right_after_it(tmp_path: Path) -> None:
    writer = TantivySparseStore(tmp_path)
    reader = FollowingSparseStore(TantivySparseStore(tmp_path, read_only=True))
    try:
        assert reader.count() == 0
        # Tantivy's own watcher would reload about 500 ms later: read at once after each commit.
        writer.upsert([chunk("fjord", "Glaciers carve fjords.")])
        writer.commit()
        assert bm25_ids(reader, "glaciers") == ["fjord"]
        writer.upsert([chunk("moraine", "Glaciers leave moraines behind.")])
        writer.commit()
        assert bm25_ids(reader, "glaciers") == ["fjord", "moraine"]
        writer.delete_docs(["fjord"])
        writer.commit()
        assert bm25_ids(reader, "glaciers") == ["moraine"]
        assert reader.count() == 1
        writer.optimize()  # rewrites every segment and removes the old files
        assert bm25_ids(reader, "glaciers") == ["moraine"]
        with pytest.raises(IndexLockedError):
            reader.upsert([chunk("x", "a reader cannot write")])
        # A commit by another process.
        code = (
            "import sys\n"
            "from braid.engine.models import Chunk\n"
            "from braid.engine.sparse.tantivy_store import TantivySparseStore\n"
            "w = TantivySparseStore(sys.argv[1])\n"
            "w.upsert([Chunk(doc_id='cirque', chunk_index=0, text='Glaciers hollow cirques.')])\n"
            "w.commit()\n"
            "w.close()\n"
        )
        writer.close()
        subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, timeout=120)
        assert bm25_ids(reader, "glaciers") == ["cirque", "moraine"]
    finally:
        writer.close()
        reader.close()


def test_reader_role_needs_a_qdrant_server(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="reader"):
        Settings(data_dir=tmp_path, api={"role": "reader"})
    settings = Settings(
        data_dir=tmp_path,
        api={"role": "reader"},
        qdrant={"mode": "server", "url": "http://127.0.0.1:6333"},
    )
    assert settings.api.role == "reader"


# -- a reader app beside a worker ------------------------------------------------------------


class SharedDense:
    """The writer's dense store, seen by the reader; the writer closes it, not the reader."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def close(self) -> None:
        pass


def reader_settings(data_dir: Path) -> Settings:
    # A valid reader configuration; the Qdrant URL is never used (the engine is shared below).
    return Settings(
        data_dir=data_dir,
        api={"role": "reader"},
        qdrant={"mode": "server", "url": "http://127.0.0.1:9"},
        embedder={"device": "cpu", "cpu_threads": TORCH_THREADS},
    )


class Split:
    """A worker (the data dir's owner, as `braid worker` runs it) and a reader app."""

    def __init__(self, workspace: Workspace, client: TestClient) -> None:
        self.workspace = workspace
        self.client = client
        self.queue = JobQueue(workspace.settings.data_dir / JOBS_FILE)
        self.worker: IngestWorker | None = None

    def start_worker(self) -> None:
        self.worker = IngestWorker(self.queue, self.workspace.pipeline, poll_s=0.1)
        self.worker.start()

    def stop_worker(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            self.worker = None


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Split]:
    data_dir = tmp_path_factory.mktemp("split")
    owner = make_settings(data_dir).model_copy(update={"qdrant": QdrantSettings(mode="local")})
    workspace = open_workspace(owner, role=WORKER_ROLE)
    writer: Engine = workspace.engine

    def open_engine(settings: Settings) -> Engine:
        # What build_engine(settings, read_only=True) opens, with the writer's Qdrant store
        # (shared through a server between processes) and its loaded model.
        sparse = build_sparse_store(settings, read_only=True)
        dense = SharedDense(writer.dense)
        searcher = HybridSearcher(writer.embedder, dense, sparse, None, search_defaults(settings))
        return Engine(embedder=writer.embedder, stores=Stores(dense, sparse), searcher=searcher)

    try:
        with running_app(reader_settings(data_dir), open_engine=open_engine) as client:
            parts = Split(workspace, client)
            parts.start_worker()
            try:
                yield parts
            finally:
                parts.stop_worker()
                parts.queue.close()
    finally:
        workspace.close()


def test_reader_starts_beside_the_owner_and_sees_its_writes(
    split: Split, sample_docs: list[dict[str, object]]
) -> None:
    client = split.client
    # The worker holds the data dir; the reader took no lock and is ready.
    assert (read_owner(split.workspace.settings.data_dir) or {}).get("role") == WORKER_ROLE
    assert client.get("/readyz").status_code == 200

    response = client.post("/v1/documents", json={"documents": sample_docs})
    assert response.status_code == 202, response.text
    job = wait_job(client, response.json()["job_id"], timeout=300)
    assert job["state"] == "done", job
    assert job["result"]["documents"] == 12
    # Right after the job is done, each retriever of the reader sees the worker's writes.
    for mode in ("bm25", "dense", "hybrid"):
        found = client.post(
            "/v1/search",
            json={
                "query": "sourdough starter yeast",
                "mode": mode,
                "filter": {"source": "kitchen"},
                "top_k": 1,
            },
        )
        assert hit_ids(found) == ["sourdough"], mode
    document = client.get("/v1/documents/sourdough").json()
    assert document["state"] == "indexed"
    assert document["chunks"] and all(c["in_dense"] and c["in_sparse"] for c in document["chunks"])

    deleted = client.post("/v1/documents/delete?wait=true", json={"ids": ["sourdough"]})
    assert deleted.status_code == 200, deleted.text  # the worker polls: found within the wait
    assert deleted.json()["job"]["result"]["deleted"] == ["sourdough"]
    after = client.post("/v1/search", json={"query": "sourdough starter yeast", "mode": "bm25"})
    assert "sourdough" not in hit_ids(after)
    assert client.get("/v1/documents/sourdough").status_code == 404

    stats = client.get("/v1/stats").json()
    assert stats["ledger"]["documents"] == 11
    assert stats["dense"]["chunks"] == stats["sparse"]["chunks"] == stats["ledger"]["chunks"]
    assert stats["consistent"] is True
    assert stats["worker"]["location"] == "separate"
    assert stats["worker"]["state"] == "idle"
    assert stats["worker"]["jobs_done"] == 2
    assert stats["queue"]["depth"] == 0


def test_reader_cannot_write_its_stores(split: Split) -> None:
    runtime = split.client.app.state.runtime  # type: ignore[attr-defined]
    with pytest.raises(IndexLockedError):
        runtime.engine.sparse.upsert([chunk("x", "refused")])
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        runtime.ledger.remove(["espresso"])
    assert runtime.worker is None and runtime.workspace is None


def test_jobs_wait_for_the_worker_and_the_reader_stays_ready(split: Split) -> None:
    client = split.client
    split.stop_worker()
    try:
        response = client.delete("/v1/documents/espresso")
        assert response.status_code == 202
        job_id = response.json()["job_id"]
        assert client.get(f"/v1/jobs/{job_id}").json()["state"] == "queued"
        worker = client.get("/v1/stats").json()["worker"]
        assert worker == {
            "location": "separate",
            "state": "waiting",
            "current_job": None,
            "jobs_done": 2,
            "jobs_failed": 0,
            "last_error": None,
        }
        assert client.get("/readyz").status_code == 200
        searched = client.post("/v1/search", json={"query": "coffee grind size", "top_k": 1})
        assert hit_ids(searched) == ["espresso"]
    finally:
        split.start_worker()
    job = wait_job(client, job_id, timeout=300)
    assert job["state"] == "done" and job["result"]["deleted"] == ["espresso"]
    searched = client.post("/v1/search", json={"query": "coffee grind size", "mode": "bm25"})
    assert "espresso" not in hit_ids(searched)


def test_reader_retries_stores_it_cannot_open_yet(tmp_path: Path) -> None:
    """A reader retries while Qdrant cannot be reached, and stops retrying when closed."""
    attempts: list[Settings] = []
    tried = threading.Event()

    def unreachable(settings: Settings) -> Engine:
        attempts.append(settings)
        tried.set()
        raise BackendUnavailableError("Qdrant at 'braid_chunks': connection refused")

    runtime = Runtime(reader_settings(tmp_path), open_engine=unreachable)
    runtime.preflight()
    runtime.start_loading()
    assert tried.wait(60)
    assert runtime.status == "loading"  # waiting to retry, not failed
    runtime.close()  # interrupts the wait between attempts
    assert runtime.status == "stopped"
    assert 1 <= len(attempts) < READER_OPEN_ATTEMPTS
    assert isinstance(runtime.error, BackendUnavailableError)


# -- `braid serve --workers N` ---------------------------------------------------------------


def serve_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRAID_")}
    return env | {
        "BRAID_DATA_DIR": str(data_dir),
        "BRAID_EMBEDDER__DEVICE": "cpu",
        "BRAID_EMBEDDER__CPU_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def test_serve_refuses_extra_workers_for_an_owner(tmp_path: Path) -> None:
    env = serve_env(
        tmp_path, BRAID_QDRANT__MODE="server", BRAID_QDRANT__URL=f"http://127.0.0.1:{free_port()}"
    )
    refused = subprocess.run(
        [*braid_command(), "serve", "--workers", "2", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 2
    assert "needs api.role=reader" in " ".join(refused.stderr.split())
    assert not (tmp_path / "jobs.sqlite").exists()  # refused before anything was opened


def wait_until(check: Callable[[], bool], process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 180
    while not check():
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)


def get_status(client: httpx.Client, path: str) -> int | None:
    try:
        return client.get(path).status_code
    except httpx.TransportError:
        return None


@pytest.mark.slow  # two uvicorn reader processes, each loading the model
def test_serve_runs_reader_workers(tmp_path: Path) -> None:
    """Two reader processes answer on one port without taking the data dir's lock.

    Qdrant is not running (its URL is a closed loopback port), so they stay not ready:
    what is checked is the process model, not the search.
    """
    port = free_port()
    env = serve_env(
        tmp_path,
        BRAID_API__ROLE="reader",
        BRAID_QDRANT__MODE="server",
        BRAID_QDRANT__URL=f"http://127.0.0.1:{free_port()}",
    )
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*braid_command(), "serve", "--workers", "2", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30.0)
    try:
        wait_until(lambda: get_status(client, "/healthz") == 200, process, log)
        assert client.get("/readyz").status_code == 503
        wait_until(lambda: len(started_pids(log.read_text())) == 2, process, log)
        # Readers take no lock: the data dir is free for the worker.
        with DataDirLock(tmp_path, role=WORKER_ROLE):
            assert get_status(client, "/healthz") == 200
        assert (tmp_path / "jobs.sqlite").exists()  # each reader opened the shared queue
    finally:
        client.close()
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=120)
    assert code in (0, -signal.SIGTERM), log.read_text()
    text = log.read_text()
    assert "braid serve (reader, 2 workers)" in " ".join(text.split())
    # The supervisor stops only after joining its workers. How many shut down gracefully is
    # not asserted: under CPU load uvicorn may judge a slow worker hung and replace it.
    assert "Stopping parent process" in text, text
    assert not [pid for pid in started_pids(text) if process_alive(int(pid))], text


def started_pids(log: str) -> set[str]:
    return set(re.findall(r"Started server process \[(\d+)\]", log))


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# -- across processes, with a real Qdrant server ----------------------------------------------

QDRANT_URL = os.environ.get("BRAID_TEST_QDRANT_URL")


@pytest.mark.skipif(not QDRANT_URL, reason="BRAID_TEST_QDRANT_URL is not set")
def test_split_deployment_across_processes(
    tmp_path: Path, sample_docs: list[dict[str, object]]
) -> None:
    """`braid worker` and `braid serve --workers 2` (readers) on one data dir and Qdrant."""
    from qdrant_client import QdrantClient

    alias = f"braid_split_{uuid.uuid4().hex[:10]}"
    env = serve_env(
        tmp_path / "data",
        BRAID_QDRANT__MODE="server",
        BRAID_QDRANT__URL=str(QDRANT_URL),
        BRAID_QDRANT__COLLECTION=alias,
    )
    port = free_port()
    worker_log, api_log = tmp_path / "worker.log", tmp_path / "api.log"
    with worker_log.open("wb") as out:
        worker = subprocess.Popen(
            [*braid_command(), "worker", "--json"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    with api_log.open("wb") as out:
        api = subprocess.Popen(
            [*braid_command(), "serve", "--workers", "2", "--port", str(port)],
            env=env | {"BRAID_API__ROLE": "reader"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60.0)
    try:
        wait_until(lambda: get_status(client, "/readyz") == 200, api, api_log)
        response = client.post("/v1/documents", json={"documents": sample_docs})
        assert response.status_code == 202, response.text
        job = wait_job(client, response.json()["job_id"], timeout=300)
        assert job["state"] == "done" and job["result"]["documents"] == 12, job
        expected = {
            "planets orbiting other stars": ["exoplanet-transit"],
            "coffee grind size": ["espresso"],
        }
        # Several requests: the two reader processes both answer some of them.
        for _ in range(4):
            for query, ids in expected.items():
                for mode in ("bm25", "dense", "hybrid"):
                    found = client.post(
                        "/v1/search", json={"query": query, "mode": mode, "top_k": 1}
                    )
                    assert hit_ids(found) == ids, (query, mode)
        deleted = client.delete("/v1/documents/espresso")
        assert wait_job(client, deleted.json()["job_id"], timeout=300)["state"] == "done"
        for _ in range(4):
            found = client.post("/v1/search", json={"query": "coffee grind size", "mode": "bm25"})
            assert "espresso" not in hit_ids(found)
        assert client.get("/v1/stats").json()["worker"]["location"] == "separate"
    finally:
        client.close()
        for process in (api, worker):
            process.send_signal(signal.SIGTERM)
        codes = [api.wait(timeout=120), worker.wait(timeout=120)]
        qdrant = QdrantClient(url=QDRANT_URL)
        for name in [c.name for c in qdrant.get_collections().collections]:
            if name.startswith(alias):
                qdrant.delete_collection(name)
        qdrant.close()
    assert codes[0] in (0, -signal.SIGTERM), api_log.read_text()
    assert codes[1] == 0, worker_log.read_text()
    assert '"jobs_done": 2' in worker_log.read_text()
