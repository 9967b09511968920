"""Fixtures for the CLI tests: one data dir holding the sample corpus, ingested once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import SAMPLE_PATH, braid, make_runner
from typer.testing import CliRunner


@pytest.fixture(scope="session")
def runner() -> CliRunner:
    return make_runner()


@pytest.fixture(scope="session")
def sample_data(runner: CliRunner, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """A data dir holding the 12 sample documents, and what ``braid ingest --json`` printed.

    Shared by every CLI test: tests that change a data dir change a copy of it.
    """
    data = tmp_path_factory.mktemp("cli-sample") / "data"
    result = braid(runner, "ingest", str(SAMPLE_PATH), "--json", "--data-dir", str(data))
    assert result.exit_code == 0, result.stderr
    return data, json.loads(result.stdout)


@pytest.fixture(scope="session")
def local_mode_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample corpus in a data dir on qdrant-client's local mode (model collections)."""
    data = tmp_path_factory.mktemp("cli-local") / "data"
    local = make_runner(BRAID_QDRANT__MODE="local")
    result = braid(local, "ingest", str(SAMPLE_PATH), "--json", "--data-dir", str(data))
    assert result.exit_code == 0, result.stderr
    return data
