"""A new embedding model beside the old one on the embedded Qdrant Edge store.

``braid reindex`` writes the new model's shard under ``dense-models/``; only ``braid promote``
moves the serving pointer (``dense-serving.json``); ``braid drop`` deletes what nothing serves.
The pointer's library is checked on tiny hand-built shards; the commands run for real (CLI,
MiniLM and a second MiniLM whose weights differ) on the 12-document sample.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ingest_helpers import SAMPLE_PATH, TORCH_THREADS, cli_env
from model_helpers import save_nudged_embedder
from typer.testing import CliRunner, Result

from braid.cli.app import app
from braid.engine.config import Settings
from braid.engine.dense.edge import QdrantEdgeDenseStore
from braid.engine.dense.edge_versions import (
    SERVING_FILE,
    count_points,
    drop,
    promote,
    read_pointer,
    serving_path,
    shard_path,
    shards,
)
from braid.engine.errors import ConfigError, ModelMismatchError
from braid.engine.models import DEFAULT_MODEL, Chunk, ModelInfo
from braid.engine.stores import build_dense_store

ALIAS = "braid_chunks"  # Settings.qdrant.collection's default
OLD = ModelInfo(model_id="org/Model-A", version="aaaa00000001", dim=4)
NEW = ModelInfo(model_id="org/model-b", version="bbbb00000002", dim=4)
QUERY = "how are rankings merged"


# --- the pointer and the shards, on tiny shards written by hand (no model) -------------------


def _shard(path: Path, model: ModelInfo, n: int) -> None:
    """A shard at ``path`` built for ``model`` holding ``n`` one-chunk documents."""
    store = QdrantEdgeDenseStore(path, model)
    chunks = [Chunk(doc_id=f"d{i}", chunk_index=0, text=f"text {i}") for i in range(n)]
    vectors = np.eye(model.dim, dtype=np.float32)[[i % model.dim for i in range(n)]]
    store.upsert(chunks, vectors)
    store.close()


OLD_NAME = "braid_chunks__org-model-a__aaaa00000001"
NEW_NAME = "braid_chunks__org-model-b__bbbb00000002"


def test_names_follow_server_mode_and_the_legacy_shard_is_named_from_its_manifest(
    tmp_path: Path,
) -> None:
    _shard(tmp_path / "dense", OLD, 3)
    assert serving_path(tmp_path) == tmp_path / "dense"  # no pointer: the legacy folder
    assert shard_path(tmp_path, ALIAS, OLD_NAME) == tmp_path / "dense"
    assert shard_path(tmp_path, ALIAS, NEW_NAME) == tmp_path / "dense-models" / NEW_NAME
    _shard(tmp_path / "dense-models" / NEW_NAME, NEW, 2)
    listed = shards(tmp_path, ALIAS)
    assert [(s.collection, s.model, s.serving) for s in listed] == [
        (OLD_NAME, OLD, True),
        (NEW_NAME, NEW, False),
    ]
    assert [count_points(s.path) for s in listed] == [3, 2]
    for bad in ("../escape", ".hidden", "a/b", ""):
        with pytest.raises(ConfigError, match="not a collection name"):
            shard_path(tmp_path, ALIAS, bad)


def test_promote_writes_the_pointer_and_stores_follow_it(tmp_path: Path) -> None:
    _shard(tmp_path / "dense", OLD, 3)
    _shard(tmp_path / "dense-models" / NEW_NAME, NEW, 3)
    [_, new] = shards(tmp_path, ALIAS)
    promote(tmp_path, new)
    pointer = json.loads((tmp_path / SERVING_FILE).read_text())
    assert pointer == {"collection": NEW_NAME, "path": f"dense-models/{NEW_NAME}"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dense", "dense-models", SERVING_FILE]
    assert read_pointer(tmp_path) == (NEW_NAME, tmp_path / "dense-models" / NEW_NAME)
    assert [s.serving for s in shards(tmp_path, ALIAS)] == [False, True]

    settings = Settings(data_dir=tmp_path)
    store = build_dense_store(settings)  # no model: the serving shard's manifest
    try:
        assert (store.model, store.count()) == (NEW, 3)
    finally:
        store.close()
    # Opened with the old model, the data dir refuses (the model lock), it never falls back.
    with pytest.raises(ModelMismatchError, match="built with org/model-b"):
        build_dense_store(settings, OLD)

    # And back to the legacy folder: the pointer names it explicitly.
    [old, _] = shards(tmp_path, ALIAS)
    promote(tmp_path, old)
    assert json.loads((tmp_path / SERVING_FILE).read_text()) == {
        "collection": OLD_NAME,
        "path": "dense",
    }
    store = build_dense_store(settings, OLD)
    try:
        assert store.count() == 3
    finally:
        store.close()


def test_a_broken_pointer_is_refused_rather_than_serving_an_empty_shard(tmp_path: Path) -> None:
    _shard(tmp_path / "dense", OLD, 1)
    pointer = tmp_path / SERVING_FILE
    pointer.write_text(json.dumps({"collection": NEW_NAME, "path": f"dense-models/{NEW_NAME}"}))
    with pytest.raises(ConfigError, match="holds no shard"):
        build_dense_store(Settings(data_dir=tmp_path), OLD)
    assert not (tmp_path / "dense-models").exists()  # nothing was created there
    for malformed in ("{not json", '{"collection": "x"}', '{"collection": "x", "path": "../x"}'):
        pointer.write_text(malformed)
        with pytest.raises(ConfigError):
            serving_path(tmp_path)
    pointer.write_text(json.dumps({"collection": "x", "path": "dense-models/.dropping-1"}))
    with pytest.raises(ConfigError, match="not a dense shard's folder"):
        serving_path(tmp_path)


def test_drop_refuses_the_serving_shard_and_removes_the_others(tmp_path: Path) -> None:
    _shard(tmp_path / "dense", OLD, 2)
    _shard(tmp_path / "dense-models" / NEW_NAME, NEW, 2)
    with pytest.raises(ConfigError, match="promote another one first"):
        drop(tmp_path, ALIAS, [NEW_NAME, OLD_NAME])
    assert [s.collection for s in shards(tmp_path, ALIAS)] == [OLD_NAME, NEW_NAME]  # untouched
    leftover = tmp_path / "dense-models" / ".dropping-0123"  # a drop that crashed midway
    leftover.mkdir()
    assert drop(tmp_path, ALIAS, [NEW_NAME, "no-such", NEW_NAME]) == [NEW_NAME]
    assert list((tmp_path / "dense-models").iterdir()) == []
    assert [s.collection for s in shards(tmp_path, ALIAS)] == [OLD_NAME]

    # Once another shard serves, the legacy folder itself can go.
    _shard(tmp_path / "dense-models" / NEW_NAME, NEW, 2)
    promote(tmp_path, shards(tmp_path, ALIAS)[1])
    assert drop(tmp_path, ALIAS, [OLD_NAME]) == [OLD_NAME]
    assert not (tmp_path / "dense").exists()
    assert [(s.collection, s.serving) for s in shards(tmp_path, ALIAS)] == [(NEW_NAME, True)]


# --- the commands, for real ------------------------------------------------------------------


@pytest.fixture(scope="module")
def other_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """MiniLM with one weight nudged: same architecture, another version hash."""
    return save_nudged_embedder(tmp_path_factory.mktemp("other-model"))


def _runner(**extra: str) -> CliRunner:
    """A CliRunner seeing no BRAID_ setting of this process, only CPU settings and ``extra``."""
    env: Mapping[str, str | None] = {k: None for k in os.environ if k.startswith("BRAID_")} | {
        "BRAID_EMBEDDER__DEVICE": "cpu",
        "BRAID_EMBEDDER__CPU_THREADS": str(TORCH_THREADS),
        **extra,
    }
    return CliRunner(env=env)


def _braid(runner: CliRunner, *args: str) -> Result:
    return runner.invoke(app, list(args), catch_exceptions=False)


def _json(runner: CliRunner, *args: str) -> Any:
    result = _braid(runner, *args, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def _said(result: Result, text: str) -> bool:
    """``text`` is in the command's stderr (rich wraps long lines anywhere, so compare the two
    without their whitespace)."""
    return "".join(text.split()) in "".join(result.stderr.split())


def _hits(response: dict[str, Any]) -> list[tuple[str, float]]:
    return [(h["chunk_id"], h["score"]) for h in response["hits"]]


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample corpus ingested with the default model on the embedded default (pristine:
    tests work on copies)."""
    data = tmp_path_factory.mktemp("edge-versions") / "data"
    report = _json(_runner(), "ingest", str(SAMPLE_PATH), "--data-dir", str(data))
    assert (report["documents"], report["chunks"]) == (12, 12)
    return data


def _model_info(model: str) -> ModelInfo:
    from braid.engine.embedder import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(model, device="cpu", cpu_threads=TORCH_THREADS).info


@pytest.mark.slow
def test_reindex_promote_drop_on_edge(ingested: Path, other_model: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(ingested, data)
    dd = ("--data-dir", str(data))
    old, new = _runner(), _runner(BRAID_EMBEDDER__MODEL=other_model)
    before = _json(old, "search", QUERY, "--mode", "dense", "--no-rerank", *dd)
    old_info = before["embedding_model"]

    reindexed = _json(old, "reindex", "--model", other_model, *dd)
    new_info = _model_info(other_model)
    assert new_info.version != old_info["version"]
    from braid.engine.qdrant.naming import collection_for

    new_name = collection_for(ALIAS, new_info)
    old_name = collection_for(ALIAS, ModelInfo(DEFAULT_MODEL, old_info["version"], 384))
    assert reindexed == {
        "collection": new_name,
        "chunks": 12,
        "model": {"id": other_model, "version": new_info.version, "dim": 384},
    }
    assert (data / "dense-models" / new_name / "braid-model.json").is_file()
    assert not (data / SERVING_FILE).exists()

    listed = _json(old, "collections", *dd)["collections"]
    assert listed == [
        {
            "collection": old_name,
            "model_id": DEFAULT_MODEL,
            "model_version": old_info["version"],
            "dim": 384,
            "points": 12,
            "serving": True,
        },
        {
            "collection": new_name,
            "model_id": other_model,
            "model_version": new_info.version,
            "dim": 384,
            "points": 12,
            "serving": False,
        },
    ]
    # Until the promotion, searches use the old shard: the very same answer.
    after = _json(old, "search", QUERY, "--mode", "dense", "--no-rerank", *dd)
    assert _hits(after) == _hits(before) and after["embedding_model"] == old_info

    refused = _braid(old, "promote", "braid_chunks__no-such__0", "--json", *dd)
    assert refused.exit_code == 1 and _said(refused, "is not one of")
    assert not (data / SERVING_FILE).exists()

    promoted = _json(old, "promote", new_name, *dd)
    assert promoted == {
        "serving": new_name,
        "model_id": other_model,
        "model_version": new_info.version,
    }
    assert json.loads((data / SERVING_FILE).read_text()) == {
        "collection": new_name,
        "path": f"dense-models/{new_name}",
    }
    text = _braid(old, "promote", new_name, *dd)  # promoting the serving one again is harmless
    assert text.exit_code == 0 and _said(text, f"BRAID_EMBEDDER__MODEL={other_model}")

    stats = _json(old, "stats", *dd)
    assert stats["embedding_model"] == {"id": other_model, "version": new_info.version, "dim": 384}
    assert stats["ledger"]["models"] == [
        {"id": other_model, "version": new_info.version, "documents": 12}
    ]
    assert stats["dense"]["chunks"] == 12
    assert 0 < stats["dense"]["bytes"] < stats["bytes"]

    # The new model serves: its own vectors (another query vector, so other scores).
    served = _json(new, "search", QUERY, "--mode", "dense", "--no-rerank", *dd)
    assert served["embedding_model"] == {"id": other_model, "version": new_info.version, "dim": 384}
    assert served["hits"][0]["doc_id"] == "rrf-fusion"
    assert _hits(served) != _hits(before)
    hybrid = _json(new, "search", QUERY, "--no-rerank", *dd)
    assert hybrid["hits"][0]["doc_id"] == "rrf-fusion"
    # The ledger knows the promoted model: nothing to re-embed.
    again = _json(new, "ingest", str(SAMPLE_PATH), *dd)
    assert (again["skipped_unchanged"], again["chunks"]) == (12, 0)

    # The old model is refused by the model lock, not served the new model's vectors.
    stale = _braid(old, "search", QUERY, "--mode", "dense", "--json", *dd)
    assert stale.exit_code == 1
    assert _said(stale, f"was built with {other_model} (version {new_info.version}")
    assert _said(stale, f"is opened with {DEFAULT_MODEL} (version {old_info['version']}")

    serving_refused = _braid(new, "drop", new_name, "--json", *dd)
    assert serving_refused.exit_code == 1
    assert _said(serving_refused, "promote another one first")
    assert _json(new, "drop", old_name, "no-such", *dd) == {"dropped": [old_name]}
    assert not (data / "dense").exists()
    [only] = _json(new, "collections", *dd)["collections"]
    assert (only["collection"], only["points"], only["serving"]) == (new_name, 12, True)
    served_again = _json(new, "search", QUERY, "--mode", "dense", "--no-rerank", *dd)
    assert _hits(served_again) == _hits(served)


# Runs ``reindex`` as the command does, and SIGKILLs itself once the first batch is written.
_KILLED_REINDEX = """
import os, signal, sys
from braid.engine.config import Settings
from braid.ingestion.service import open_workspace
from braid.ingestion.versions import reindex

data_dir, model = sys.argv[1:3]
ws = open_workspace(Settings(data_dir=data_dir), role="test", models=False)

def crash(done):
    print(f"embedded {done}", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

reindex(ws, model, on_progress=crash, batch_size=5)
"""


@pytest.mark.slow
def test_a_killed_reindex_changes_nothing_served_and_is_finished_by_rerunning(
    ingested: Path, other_model: str, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    shutil.copytree(ingested, data)
    dd = ("--data-dir", str(data))
    old = _runner()
    before = _json(old, "search", QUERY, "--mode", "dense", "--no-rerank", *dd)

    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_REINDEX, str(data), other_model],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert killed.stdout.strip() == "embedded 5"
    assert not (data / SERVING_FILE).exists()

    [served, partial] = _json(old, "collections", *dd)["collections"]
    assert (served["serving"], served["points"]) == (True, 12)
    assert partial["serving"] is False
    # The first batch was written (to Edge's WAL) before the kill; the rest never was.
    assert partial["points"] == 5
    after = _json(old, "search", QUERY, "--mode", "dense", "--no-rerank", *dd)
    assert _hits(after) == _hits(before)

    refused = _braid(old, "promote", partial["collection"], "--json", *dd)
    assert refused.exit_code == 1
    assert _said(refused, f"holds {partial['points']} chunks but the serving shard holds 12")
    assert not (data / SERVING_FILE).exists()

    # Re-running the same reindex writes the same shard to the end.
    finished = _json(old, "reindex", "--model", other_model, *dd)
    assert (finished["collection"], finished["chunks"]) == (partial["collection"], 12)
    listed = _json(old, "collections", *dd)["collections"]
    assert [(c["points"], c["serving"]) for c in listed] == [(12, True), (12, False)]

    # A document deleted meanwhile goes from the served shard only: the new one is stale, and
    # refused, until reindex runs again and drops what the stores no longer hold.
    assert _json(old, "delete", "sourdough", *dd) == {"deleted": ["sourdough"], "not_found": []}
    stale = _braid(old, "promote", partial["collection"], "--json", *dd)
    assert stale.exit_code == 1
    assert _said(stale, "holds 12 chunks but the serving shard holds 11")
    assert _json(old, "reindex", "--model", other_model, *dd)["chunks"] == 11
    assert _json(old, "promote", partial["collection"], *dd)["serving"] == partial["collection"]
    [_, now] = _json(old, "collections", *dd)["collections"]
    assert (now["points"], now["serving"]) == (11, True)


# `braid ARGS` in a fresh interpreter; prints its exit code and whether torch was imported.
_PROBE = """
import json, sys
from braid.cli.app import main
sys.argv = ["braid", *json.loads(sys.argv[1])]
try:
    main()
    code = 0
except SystemExit as exc:
    code = exc.code or 0
print(json.dumps({"code": code, "torch": "torch" in sys.modules}))
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    "args",
    [("collections",), ("promote", "SERVING"), ("drop", "no-such"), ("stats",)],
)
def test_edge_version_commands_load_no_model(
    ingested: Path, tmp_path: Path, args: tuple[str, ...]
) -> None:
    data = tmp_path / "data"
    shutil.copytree(ingested, data)
    [serving] = shards(data, ALIAS)
    argv = [serving.collection if a == "SERVING" else a for a in args]
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps([*argv, "--json", "--data-dir", str(data)])],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"code": 0, "torch": False}
