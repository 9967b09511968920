"""``braid serve`` for real: a uvicorn process on 127.0.0.1, driven over HTTP with httpx."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from api_helpers import TORCH_THREADS, braid_command, free_port, hit_ids

WRITE_KEY = "server-test-key"
AUTH = {"Authorization": f"Bearer {WRITE_KEY}"}


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[httpx.Client, Path, subprocess.Popen[bytes]]]:
    data_dir = tmp_path_factory.mktemp("server")
    port = free_port()
    env = {
        **os.environ,
        "BRAID_EMBEDDER__DEVICE": "cpu",
        "BRAID_EMBEDDER__CPU_THREADS": str(TORCH_THREADS),
        "BRAID_API__KEYS": json.dumps([WRITE_KEY]),
        "TOKENIZERS_PARALLELISM": "false",
    }
    command = [*braid_command(), "serve", "--port", str(port), "--data-dir", str(data_dir)]
    log = (data_dir / "server.log").open("wb")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30.0)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, (data_dir / "server.log").read_text()
            try:
                if client.get("/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server not ready in 120 s"
            time.sleep(0.2)
        yield client, data_dir, process
    finally:
        client.close()
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()


def test_owner_note_names_the_server(
    server: tuple[httpx.Client, Path, subprocess.Popen[bytes]],
) -> None:
    client, data_dir, process = server
    owner = json.loads((data_dir / "braid.owner.json").read_text())
    assert owner["role"] == "braid serve"
    assert owner["pid"] == process.pid
    assert owner["api_url"] == str(client.base_url).rstrip("/")


def test_flow_over_http(
    server: tuple[httpx.Client, Path, subprocess.Popen[bytes]], sample_docs: list[dict[str, object]]
) -> None:
    client, _, _ = server
    assert client.post("/v1/documents", json={"documents": sample_docs}).status_code == 401
    response = client.post("/v1/documents?wait=true", json={"documents": sample_docs}, headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json()["job"]["result"]["documents"] == 12
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
        assert hit_ids(found) == ["sourdough"]
    deleted = client.delete("/v1/documents/sourdough?wait=true", headers=AUTH)
    assert deleted.json()["job"]["result"]["deleted"] == ["sourdough"]
    after = client.post("/v1/search", json={"query": "sourdough starter yeast", "mode": "bm25"})
    assert hit_ids(after) == []
    stats = client.get("/v1/stats").json()
    assert stats["dense"]["chunks"] == stats["sparse"]["chunks"] == 11


def test_concurrent_searches(server: tuple[httpx.Client, Path, subprocess.Popen[bytes]]) -> None:
    client, _, _ = server
    queries = ["planets orbiting other stars", "coffee grind size", "ranking documents", "light"]

    def one(i: int) -> list[str]:
        return hit_ids(client.post("/v1/search", json={"query": queries[i % 4], "top_k": 1}))

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(one, range(32)))
    expected = {0: ["exoplanet-transit"], 1: ["espresso"], 2: ["rrf-fusion"], 3: ["photosynthesis"]}
    assert all(r == expected[i % 4] for i, r in enumerate(results))
    metrics = client.get("/metrics").text
    assert "braid_query_embed_batch_size_count" in metrics


# The search page in headless Chromium: tests/api/test_search_page.py (its own server).


def test_sigterm_stops_cleanly(server: tuple[httpx.Client, Path, subprocess.Popen[bytes]]) -> None:
    _, data_dir, process = server
    process.send_signal(signal.SIGTERM)
    # Uvicorn shuts down gracefully, then re-raises the signal it caught (exit -15).
    assert process.wait(timeout=60) in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in (data_dir / "server.log").read_text()
    assert not (data_dir / "braid.owner.json").exists()


def test_serve_refuses_a_locked_data_dir_and_extra_workers(tmp_path: Path) -> None:
    from braid.engine.locking import DataDirLock

    with DataDirLock(tmp_path, role="braid ingest"):
        locked = subprocess.run(
            [*braid_command(), "serve", "--data-dir", str(tmp_path), "--port", str(free_port())],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert locked.returncode == 1
    assert "in use by braid ingest" in " ".join(locked.stderr.split())  # rich wraps lines
    workers = subprocess.run(
        [*braid_command(), "serve", "--data-dir", str(tmp_path), "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert workers.returncode == 2
    assert "needs api.role=reader" in " ".join(workers.stderr.split())
