"""Fixtures for the API tests: real apps over temporary data dirs with the sample corpus.

Every app is real: MiniLM on the CPU, Qdrant Edge and Tantivy on disk, the ingestion
worker and its SQLite queue. Apps are module- or session-scoped: loading one costs seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from api_helpers import make_settings, wait_job
from fastapi.testclient import TestClient

from braid.api.main import create_app
from braid.engine.config import Settings


@contextmanager
def running_app(settings: Settings, **kwargs: Any) -> Iterator[TestClient]:
    """A TestClient over a started app, returned once ``/readyz`` is ready."""
    app = create_app(settings, **kwargs)
    with TestClient(app, raise_server_exceptions=False) as client:
        runtime = app.state.runtime
        assert runtime.wait_ready(120), f"app not ready: {runtime.status} {runtime.error}"
        yield client


@pytest.fixture(scope="session")
def settings_for(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Settings]:
    def build(name: str, **api: Any) -> Settings:
        return make_settings(tmp_path_factory.mktemp(name), **api)

    return build


@pytest.fixture(scope="session")
def search_client(
    settings_for: Callable[..., Settings], sample_docs: list[dict[str, object]]
) -> Iterator[TestClient]:
    """A ready app whose index holds exactly the 12 sample documents (never modified)."""
    with running_app(settings_for("search")) as client:
        response = client.post("/v1/documents", json={"documents": sample_docs})
        assert response.status_code == 202, response.text
        job = wait_job(client, response.json()["job_id"])
        assert job["state"] == "done", job
        assert job["result"]["documents"] == 12
        yield client


@pytest.fixture
def sample_path() -> Path:
    return Path(__file__).parent.parent / "data" / "sample.jsonl"
