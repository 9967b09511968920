"""A new embedding model beside the old one (Qdrant server path, via qdrant-client local mode)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from sentence_transformers import SentenceTransformer

from braid.engine.config import Settings
from braid.engine.embedder import resolve_model_path
from braid.engine.errors import ConfigError, ModelMismatchError
from braid.ingestion.readers import read_jsonl
from braid.ingestion.service import open_workspace
from braid.ingestion.versions import collections, drop_collections, promote_collection, reindex

SAMPLE = Path(__file__).parent / "data" / "sample.jsonl"


@pytest.fixture(scope="module")
def other_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """MiniLM with one weight nudged: same architecture, another version hash."""
    model = SentenceTransformer(resolve_model_path("all-MiniLM-L6-v2"), device="cpu")
    with torch.no_grad():
        next(model.parameters()).mul_(1.01)
    folder = tmp_path_factory.mktemp("other-model")
    model.save(str(folder))
    return str(folder)


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
        promoted = promote_collection(workspace, result["collection"])
        assert promoted["model_version"] == result["model"]["version"]
        assert workspace.ledger.models() == [(other_model, result["model"]["version"], 12)]
    finally:
        workspace.close()

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
        with pytest.raises(ConfigError):
            drop_collections(workspace, [result["collection"]])
        assert drop_collections(workspace, [old_collection]) == [old_collection]
        assert [c["collection"] for c in collections(workspace)] == [result["collection"]]
    finally:
        workspace.close()
