"""The whole loop on the embedded default, as the README walks through it: ingest, fine-tune
the embedder on the corpus itself (no labels), reindex beside the served model, promote,
search with the new model, drop the old one. Seconds of training, the real model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import braid, make_runner
from typer.testing import CliRunner

SAMPLE = Path(__file__).parents[1] / "data" / "sample.jsonl"

pytestmark = pytest.mark.slow


def run(runner: CliRunner, *args: str) -> Any:
    result = braid(runner, *args, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_train_reindex_promote_search_drop(tmp_path: Path) -> None:
    data, model = tmp_path / "data", tmp_path / "tuned"
    base = make_runner()
    dd = ("--data-dir", str(data))
    assert run(base, "ingest", str(SAMPLE), *dd)["documents"] == 12
    before = run(base, "search", "wild yeast bread", "--no-rerank", *dd)

    trained = run(
        base,
        "train",
        "embedder",
        "--self-supervised",
        "--max-steps",
        "2",
        "--batch-size",
        "4",
        "--max-length",
        "64",
        "--negatives",
        "0",
        "--out",
        str(model),
        *dd,
    )
    assert Path(trained["out"]) == model and (model / "braid-model-card.json").is_file()

    reindexed = run(base, "reindex", "--model", str(model), *dd)
    assert reindexed["chunks"] == 12
    shards = run(base, "collections", *dd)["collections"]
    assert len(shards) == 2 and sum(s["serving"] for s in shards) == 1
    new = reindexed["collection"]
    # Until promoted, searches are answered from the old model's shard.
    assert run(base, "search", "wild yeast bread", "--no-rerank", *dd)["hits"] == before["hits"]

    run(base, "promote", new, *dd)
    tuned = make_runner(BRAID_EMBEDDER__MODEL=str(model))
    after = run(tuned, "search", "wild yeast bread", "--no-rerank", *dd)
    assert after["embedding_model"]["version"] == reindexed["model"]["version"]
    assert "sourdough" in [h["doc_id"] for h in after["hits"][:3]]
    # The old model no longer matches the served vectors.
    refused = braid(base, "search", "wild yeast bread", "--data-dir", str(data))
    assert refused.exit_code == 1

    old = next(s["collection"] for s in shards if s["serving"])
    run(tuned, "drop", old, *dd)
    assert [s["collection"] for s in run(tuned, "collections", *dd)["collections"]] == [new]
