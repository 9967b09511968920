"""``braid move-sparse``: BM25 moved between Tantivy and Qdrant sparse vectors, no embedding.

The same data dir answers the same BM25 queries with the same ranking after the move (both
backends score Tantivy's BM25 with the same analysis), refuses the old backend once moved,
and moves back.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from ingest_helpers import SAMPLE_PATH, TORCH_THREADS
from typer.testing import CliRunner, Result

from braid.cli.app import app

QUERIES = ["sourdough starter", "how are rankings merged", "planets around other stars"]


def runner_for(backend: str) -> CliRunner:
    env: Mapping[str, str | None] = {k: None for k in os.environ if k.startswith("BRAID_")} | {
        "BRAID_EMBEDDER__DEVICE": "cpu",
        "BRAID_EMBEDDER__CPU_THREADS": str(TORCH_THREADS),
        "BRAID_SPARSE__BACKEND": backend,
    }
    return CliRunner(env=env)


def braid(backend: str, *args: str) -> Result:
    return runner_for(backend).invoke(app, list(args), catch_exceptions=False)


def bm25_ranking(backend: str, data: Path, query: str) -> list[str]:
    result = braid(backend, "search", query, "--mode", "bm25", "--json", "--data-dir", str(data))
    assert result.exit_code == 0, result.stderr
    return [hit["doc_id"] for hit in json.loads(result.stdout)["hits"]]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    result = braid("tantivy", "ingest", str(SAMPLE_PATH), "--data-dir", str(tmp_path / "d"))
    assert result.exit_code == 0, result.stderr
    return tmp_path / "d"


def test_move_to_qdrant_and_back_keeps_every_ranking(data: Path) -> None:
    before = {q: bm25_ranking("tantivy", data, q) for q in QUERIES}
    assert before["sourdough starter"][0] == "sourdough"

    moved = braid("tantivy", "move-sparse", "--to", "qdrant", "--json", "--data-dir", str(data))
    assert moved.exit_code == 0, moved.stderr
    report: dict[str, Any] = json.loads(moved.stdout)
    assert (report["from"], report["to"], report["chunks"]) == ("tantivy", "qdrant", 12)
    assert {q: bm25_ranking("qdrant", data, q) for q in QUERIES} == before

    stats = json.loads(braid("qdrant", "stats", "--json", "--data-dir", str(data)).stdout)
    assert (stats["sparse"]["backend"], stats["sparse"]["chunks"]) == ("qdrant-edge", 12)

    # The old backend is refused with a message that names the fix, instead of empty results.
    refused = braid("tantivy", "search", "sourdough", "--data-dir", str(data))
    assert refused.exit_code != 0
    assert "BRAID_SPARSE__BACKEND=qdrant" in " ".join(refused.stderr.split())

    back = braid("qdrant", "move-sparse", "--to", "tantivy", "--json", "--data-dir", str(data))
    assert back.exit_code == 0, back.stderr
    assert json.loads(back.stdout)["chunks"] == 12
    assert {q: bm25_ranking("tantivy", data, q) for q in QUERIES} == before


def test_moving_to_the_current_backend_is_refused(data: Path) -> None:
    result = braid("tantivy", "move-sparse", "--to", "tantivy", "--data-dir", str(data))
    assert result.exit_code == 1
    assert "already lives in 'tantivy'" in result.stderr


def test_an_unknown_backend_is_a_usage_error(data: Path) -> None:
    result = braid("tantivy", "move-sparse", "--to", "elastic", "--data-dir", str(data))
    assert result.exit_code == 2
