"""Kill ``braid serve`` with SIGKILL while accepted upsert jobs are in flight, restart it, and
check that every accepted document is indexed exactly once and the stores agree.

A 202 from ``POST /v1/documents`` is a promise: the job is durable once it is answered. The
server is killed after its first job finished and before the last one did, so at least one
job is interrupted mid-write and others have not started.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
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
    wait_ready,
)

BATCHES = 6
PER_BATCH = 40
TEXT_CHARS = 300
ENV = cli_env(BRAID_CHUNKING__MAX_TOKENS="64", BRAID_CHUNKING__OVERLAP_TOKENS="8")

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def documents() -> list[dict[str, Any]]:
    out = []
    with (SCIFACT_DIR / "corpus.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            out.append({"id": row["_id"], "title": row["title"], "text": row["text"][:TEXT_CHARS]})
            if len(out) == BATCHES * PER_BATCH:
                return out
    return out


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
    docs = documents()
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
