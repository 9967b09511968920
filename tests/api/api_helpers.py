"""Helpers shared by the API tests (a plain module: tests/api has no __init__)."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from starlette.testclient import TestClient

from braid.engine.config import ApiSettings, Settings

TORCH_THREADS = 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def braid_command() -> list[str]:
    script = Path(sys.executable).parent / "braid"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "braid.cli"]


def make_settings(data_dir: Path, **api: Any) -> Settings:
    settings = Settings(data_dir=data_dir)
    return settings.model_copy(
        update={
            # Validated, as the environment would be (keys become SecretStr).
            "api": ApiSettings.model_validate(settings.api.model_dump() | api),
            "embedder": settings.embedder.model_copy(
                update={"device": "cpu", "cpu_threads": TORCH_THREADS}
            ),
        }
    )


def wait_job(
    client: TestClient | httpx.Client,
    job_id: str,
    timeout: float = 60.0,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Poll ``/v1/jobs/{id}`` until the job has finished."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"/v1/jobs/{job_id}", headers=headers)
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        if job["state"] in ("done", "failed") or time.monotonic() > deadline:
            return job
        time.sleep(0.05)


def hit_ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [h["doc_id"] for h in response.json()["hits"]]


def assert_error(
    response: httpx.Response, status: int, code: str, path: str | None = None
) -> dict[str, Any]:
    """The one error shape: ``{"error": {"code", "message", "path"?}}``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"]
    if path is not None:
        assert error.get("path") == path, error
    return error
