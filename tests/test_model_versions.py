"""A new embedding model beside the old one (Qdrant server path, via qdrant-client local mode).

Listing, promoting and dropping collections need no model: those steps run in a fresh
interpreter on a workspace opened with ``models=False``, which must never import torch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from model_helpers import save_nudged_embedder

from braid.engine.config import Settings
from braid.engine.errors import ModelMismatchError
from braid.ingestion.readers import read_jsonl
from braid.ingestion.service import open_workspace
from braid.ingestion.versions import collections, reindex

SAMPLE = Path(__file__).parent / "data" / "sample.jsonl"

# collections / promote / drop as `braid collections|promote|drop` run them: no model loaded.
_WITHOUT_MODELS = """
import json, sys
from braid.engine.config import Settings
from braid.engine.errors import ConfigError
from braid.ingestion.service import open_workspace
from braid.ingestion.versions import collections, drop_collections, promote_collection

data_dir, action, name = sys.argv[1:4]
settings = Settings(data_dir=data_dir, qdrant={"mode": "local"})
ws = open_workspace(settings, role="test", models=False)
model = ws.engine.dense.model
out = {"model": [model.model_id, model.version] if model else None}
try:
    if action == "promote":
        out["result"] = promote_collection(ws, name)
    elif action == "drop":
        try:
            drop_collections(ws, [c["collection"] for c in collections(ws) if c["serving"]])
        except ConfigError:
            out["refused_serving"] = True
        out["result"] = drop_collections(ws, [name])
    out["collections"] = collections(ws)
    out["ledger_models"] = ws.ledger.models()
finally:
    ws.close()
out["torch"] = "torch" in sys.modules
print(json.dumps(out))
"""


def _without_models(data_dir: Path, action: str, name: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRAID_")}
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_MODELS, str(data_dir), action, name],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.fixture(scope="module")
def other_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """MiniLM with one weight nudged: same architecture, another version hash."""
    return save_nudged_embedder(tmp_path_factory.mktemp("other-model"))


def _settings(data_dir: Path, model: str | None = None) -> Settings:
    settings = Settings(data_dir=data_dir, qdrant={"mode": "local"})
    if model is not None:
        settings = settings.model_copy(
            update={"embedder": settings.embedder.model_copy(update={"model": model})}
        )
    return settings


def test_reindex_promote_drop(tmp_path: Path, other_model: str) -> None:
    workspace = open_workspace(_settings(tmp_path), role="test")
    try:
        workspace.pipeline.run(read_jsonl(SAMPLE))
        old = workspace.engine.embedder.info
        result = reindex(workspace, other_model)
        listed = {c["collection"]: c for c in collections(workspace)}
        assert result["chunks"] == 12
        assert len(listed) == 2
        assert listed[result["collection"]]["points"] == 12
        assert not listed[result["collection"]]["serving"]
        # Searches still use the old model's collection until the promotion.
        hits = workspace.engine.searcher.search("how are rankings merged", mode="dense").hits
        assert hits[0].doc_id == "rrf-fusion"
    finally:
        workspace.close()

    promoted = _without_models(tmp_path, "promote", result["collection"])
    # The store opened without a model reported the one its manifest records (the old one).
    assert promoted["model"] == [old.model_id, old.version]
    assert promoted["result"]["model_version"] == result["model"]["version"]
    assert promoted["ledger_models"] == [[other_model, result["model"]["version"], 12]]
    assert [
        c["serving"] for c in promoted["collections"] if c["collection"] == result["collection"]
    ] == [True]
    assert promoted["torch"] is False

    with pytest.raises(ModelMismatchError):
        open_workspace(_settings(tmp_path), role="test")

    workspace = open_workspace(_settings(tmp_path, other_model), role="test")
    try:
        hits = workspace.engine.searcher.search("how are rankings merged", mode="dense").hits
        assert hits[0].doc_id == "rrf-fusion"
        # Unchanged documents stay skipped: the ledger knows the promoted model.
        assert workspace.pipeline.run(read_jsonl(SAMPLE)).skipped_unchanged == 12
        old_collection = next(c["collection"] for c in collections(workspace) if not c["serving"])
        assert old.version in old_collection
    finally:
        workspace.close()

    dropped = _without_models(tmp_path, "drop", old_collection)
    assert dropped["model"] == [other_model, result["model"]["version"]]
    assert dropped["refused_serving"] is True
    assert dropped["result"] == [old_collection]
    assert [c["collection"] for c in dropped["collections"]] == [result["collection"]]
    assert dropped["torch"] is False
