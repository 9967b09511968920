"""``braid bench api``: a bounded loopback load test of a real ``braid serve``.

A server process is started on 127.0.0.1 over a data dir pre-filled with real documents;
N client threads send a mix of searches and upserts for T seconds; then every upsert job is
awaited and the stores are checked: zero errors and no lost documents (ledger, Qdrant and
Tantivy counts all equal the documents sent plus those loaded before).
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np

from braid.engine.config import Settings
from braid.eval.bench.corpus import queries
from braid.ingestion.documents import SourceDocument
from braid.ingestion.readers import read_beir
from braid.ingestion.service import open_workspace

READY_TIMEOUT_S = 180.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0}
    return {f"p{q}": round(float(np.percentile(values, q)), 2) for q in (50, 95, 99)}


def run_api_bench(
    base: Settings,
    corpus: Path,
    preload: int,
    clients: Sequence[int],
    seconds: float,
    upsert_share: float,
    seed: int = 7,
) -> dict[str, Any]:
    """Load one real server with each client count in turn (the same index, warm).

    The report is the first count's (its keys as before), with every count's own report
    under ``runs``; documents upserted by an earlier count are expected by the later ones.
    """
    data_dir = Path(tempfile.mkdtemp(prefix="bench-api-"))
    settings = base.model_copy(update={"data_dir": data_dir})
    docs = [
        d for d in itertools.islice(read_beir(corpus), preload) if isinstance(d, SourceDocument)
    ]
    workspace = open_workspace(settings, role="braid bench api")
    try:
        workspace.pipeline.run(docs)
    finally:
        workspace.close()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = os.environ | {"BRAID_DATA_DIR": str(data_dir)}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "braid.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_ready(url, server)
        texts = queries(corpus, 300)
        runs: list[dict[str, Any]] = []
        expected = len(docs)
        for count in clients:
            run = _load(url, texts, expected, count, seconds, upsert_share, seed, server.pid)
            expected = run["documents_expected"]
            runs.append(run)
        return runs[0] | {"runs": runs}
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(data_dir, ignore_errors=True)


def _wait_ready(url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            stderr = server.stderr.read().decode() if server.stderr else ""
            raise RuntimeError(f"braid serve exited with {server.returncode}: {stderr[-2000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError("braid serve did not become ready")


def _load(
    url: str,
    texts: list[str],
    preloaded: int,
    clients: int,
    seconds: float,
    upsert_share: float,
    seed: int,
    server_pid: int | None = None,
) -> dict[str, Any]:
    lock = threading.Lock()
    search_ms: list[float] = []
    upsert_ms: list[float] = []
    errors: list[str] = []
    shed: list[float] = []  # searches answered 503 overloaded (load shedding), then retried
    jobs: list[str] = []
    sent_ids: list[str] = []
    stop_at = time.monotonic() + seconds

    def client(index: int) -> None:
        rng = random.Random(seed + index)
        counter = 0
        with LeanClient(url) as http:
            while time.monotonic() < stop_at:
                started = time.perf_counter()
                if rng.random() < upsert_share:
                    counter += 1
                    doc_id = f"load-{clients}-{index}-{counter}"  # unique per run too
                    body = {
                        "documents": [
                            {
                                "id": doc_id,
                                "title": "load test",
                                "text": rng.choice(texts),
                                "client": str(index),
                            }
                        ]
                    }
                    status, payload, _ = http.post("/v1/documents", body)
                    elapsed = (time.perf_counter() - started) * 1e3
                    with lock:
                        if status == 202:
                            upsert_ms.append(elapsed)
                            jobs.append(json.loads(payload)["job_id"])
                            sent_ids.append(doc_id)
                        else:
                            errors.append(f"upsert {status}: {payload[:200]!r}")
                else:
                    query = {"query": rng.choice(texts), "top_k": 10, "mode": "hybrid"}
                    status, payload, retry_after = http.post("/v1/search", query)
                    elapsed = (time.perf_counter() - started) * 1e3
                    if status == 503 and _overloaded(payload):
                        with lock:
                            shed.append(elapsed)
                        # As a client should: wait as told, then go on.
                        time.sleep(float(retry_after or "1"))
                        continue
                    with lock:
                        if status == 200:
                            search_ms.append(elapsed)
                        else:
                            errors.append(f"search {status}: {payload[:200]!r}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    server_cpu = process_cpu_seconds(server_pid)
    client_cpu = time.process_time()
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    answered = max(1, len(search_ms) + len(upsert_ms))
    client_cpu = time.process_time() - client_cpu
    server_after = process_cpu_seconds(server_pid)
    with httpx.Client(base_url=url, timeout=60) as http:
        failed_jobs = _await_jobs(http, jobs)
        stats = http.get("/v1/stats").json()
        missing = [d for d in sent_ids if http.get(f"/v1/documents/{d}").status_code != 200]
    expected = preloaded + len(sent_ids)
    return {
        "clients": clients,
        "seconds": round(elapsed, 2),
        "requests": len(search_ms) + len(upsert_ms) + len(errors),
        "qps": round((len(search_ms) + len(upsert_ms)) / elapsed, 2),
        "search": {
            "count": len(search_ms),
            "qps": round(len(search_ms) / elapsed, 2),
            "latency_ms": _percentiles(search_ms),
        },
        "upsert": {
            "count": len(upsert_ms),
            "latency_ms": _percentiles(upsert_ms),
            "failed_jobs": failed_jobs,
        },
        "shed": {"count": len(shed), "latency_ms": _percentiles(shed)},
        "errors": len(errors),
        "error_samples": errors[:5],
        # Where the cores went: the server's CPU (its worker's passage encoding included)
        # and the load generator's, per answered request.
        "cpu_ms_per_request": {
            "server": (
                round((server_after - server_cpu) * 1e3 / answered, 2)
                if server_after is not None and server_cpu is not None
                else None
            ),
            "load_generator": round(client_cpu * 1e3 / answered, 2),
        },
        "documents_expected": expected,
        "documents": {
            "ledger": stats["ledger"]["documents"],
            "dense_chunks": stats["dense"]["chunks"],
            "sparse_chunks": stats["sparse"]["chunks"],
        },
        "lost_documents": len(missing) + max(0, expected - stats["ledger"]["documents"]),
        "consistent": bool(stats.get("consistent")),
    }


def process_cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of process ``pid`` so far, from ``/proc`` (``None`` where
    there is no ``/proc``, or no such process)."""
    if pid is None:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the command name, which is in parentheses and may hold spaces.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _overloaded(payload: bytes) -> bool:
    try:
        return bool(json.loads(payload)["error"]["code"] == "overloaded")
    except (ValueError, KeyError, TypeError):
        return False


class LeanClient:
    """One keep-alive HTTP/1.1 connection per load thread, on the standard library.

    The load generator shares the machine's cores with the server it measures: httpx cost
    about 1 ms of CPU per request here, ``http.client`` about a third of that (the report's
    ``cpu_ms_per_request.load_generator``). A connection the server closed is opened again
    once per request; anything else is the caller's error to count.
    """

    def __init__(self, url: str, timeout_s: float = 60.0) -> None:
        parts = urlsplit(url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._timeout_s = timeout_s
        self._conn = self._connect()

    def _connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self._host, self._port, timeout=self._timeout_s)

    def post(self, path: str, body: object) -> tuple[int, bytes, str | None]:
        """Status, body and ``Retry-After`` of one JSON POST."""
        data = json.dumps(body).encode()
        try:
            return self._send(path, data)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # An idle keep-alive connection the server closed: once more on a new one (both
            # routes are idempotent: a search, or an upsert of the same id and text).
            self._conn.close()
            self._conn = self._connect()
            return self._send(path, data)

    def _send(self, path: str, data: bytes) -> tuple[int, bytes, str | None]:
        self._conn.request("POST", path, body=data, headers={"Content-Type": "application/json"})
        response = self._conn.getresponse()
        return response.status, response.read(), response.getheader("retry-after")

    def __enter__(self) -> LeanClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._conn.close()


def _await_jobs(http: httpx.Client, jobs: list[str], timeout_s: float = 600.0) -> int:
    deadline = time.monotonic() + timeout_s
    failed = 0
    for job_id in jobs:
        while time.monotonic() < deadline:
            state = http.get(f"/v1/jobs/{job_id}").json()["state"]
            if state in ("done", "failed"):
                failed += state == "failed"
                break
            time.sleep(0.2)
    return failed
