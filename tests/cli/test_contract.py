"""The README's CLI contract: each documented command's ``--json`` keys, exactly.

Commands run in this process through the root app on the shared sample data dir (or a copy,
when they change it). ``braid worker`` is covered by tests/ingestion/test_worker_cli.py and
``braid eval run`` by tests/eval; ``serve`` and ``bench`` print no contract JSON of their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from cli_helpers import (
    INGEST_KEYS,
    TORCH_THREADS,
    braid,
    braid_json,
    copy_data_dir,
    make_runner,
    sample_ids,
)
from typer.testing import CliRunner

from braid.engine.config import Settings

SEARCH_KEYS = {
    "hits",
    "documents",
    "facets",
    "offset",
    "next_cursor",
    "timings_ms",
    "mode",
    "embedding_model",
    "reranker_model",
    "fusion_weights",
}
# The API's HitOut: what the README documents plus the 1-based rank and character offsets.
HIT_KEYS = {
    "rank",
    "doc_id",
    "chunk_id",
    "score",
    "title",
    "text",
    "start",
    "end",
    "metadata",
    "highlights",
    "snippet",
    "stages",
}
DOCUMENT_KEYS = {"rank", "doc_id", "score", "title", "metadata", "passages"}
PASSAGE_KEYS = {"chunk_id", "score", "text", "start", "end", "highlights", "snippet", "stages"}
MODEL_KEYS = {"id", "version", "dim"}
STATS_KEYS = {"data_dir", "dense", "sparse", "ledger", "embedding_model", "bytes"}
STORE_KEYS = {"backend", "chunks", "bytes"}
LEDGER_KEYS = {"documents", "chunks", "pending_documents", "models"}
MOVE_KEYS = {"from", "to", "chunks", "seconds", "next"}
COLLECTION_KEYS = {"collection", "model_id", "model_version", "dim", "points", "serving"}
QUERY = "how are rankings merged"


def test_ingest(sample_data: tuple[Path, Any]) -> None:
    _, report = sample_data
    assert set(report) == INGEST_KEYS
    assert (report["documents"], report["chunks"], report["errors"]) == (12, 12, [])


def test_search_local(runner: CliRunner, sample_data: tuple[Path, Any]) -> None:
    data, _ = sample_data
    response = braid_json(runner, "search", QUERY, "--no-rerank", "--data-dir", str(data))
    assert set(response) == SEARCH_KEYS
    assert response["mode"] == "hybrid"
    assert response["reranker_model"] is None
    assert set(response["embedding_model"]) == MODEL_KEYS
    assert response["embedding_model"]["dim"] == 384
    hits = response["hits"]
    assert len(hits) == 10 and {h["doc_id"] for h in hits} <= sample_ids()
    for rank, hit in enumerate(hits, start=1):
        assert set(hit) == HIT_KEYS
        assert hit["rank"] == rank
        document = response["documents"][rank - 1]
        assert set(document) == DOCUMENT_KEYS
        assert all(set(p) == PASSAGE_KEYS for p in document["passages"])
        assert document["passages"][0]["chunk_id"] == hit["chunk_id"]
        assert set(hit["stages"]) <= {"bm25", "dense", "adaptive"}
        assert all(set(stage) == {"rank", "score"} for stage in hit["stages"].values())
    # First in both retrievers: 1 from each under its share (adaptive fusion, the default);
    # one chunk per sample document.
    top = hits[0]
    assert (top["doc_id"], top["chunk_id"]) == ("rrf-fusion", "rrf-fusion#0")
    assert top["score"] == pytest.approx(1.0)
    assert set(response["fusion_weights"]) == {"bm25", "dense"}
    assert top["stages"]["bm25"]["rank"] == top["stages"]["dense"]["rank"] == 1
    assert (top["start"], top["end"]) == (0, len(top["text"]))


def test_stats(runner: CliRunner, sample_data: tuple[Path, Any]) -> None:
    data, _ = sample_data
    stats = braid_json(runner, "stats", "--data-dir", str(data))
    assert set(stats) == STATS_KEYS
    assert set(stats["dense"]) == set(stats["sparse"]) == STORE_KEYS
    assert set(stats["ledger"]) == LEDGER_KEYS
    assert (stats["dense"]["backend"], stats["sparse"]["backend"]) == ("edge", "tantivy")
    assert stats["dense"]["chunks"] == stats["sparse"]["chunks"] == 12
    model = stats["embedding_model"]
    assert set(model) == MODEL_KEYS
    assert (model["id"], model["dim"]) == ("sentence-transformers/all-MiniLM-L6-v2", 384)
    # The model read from the store's manifest is the one the ledger recorded at ingest.
    assert stats["ledger"]["models"] == [
        {"id": model["id"], "version": model["version"], "documents": 12}
    ]
    assert stats["data_dir"] == str(data) and stats["bytes"] > 0


def test_stats_of_an_index_with_no_documents(runner: CliRunner, tmp_path: Path) -> None:
    from braid.engine.config import Settings
    from braid.ingestion.service import open_workspace

    # An index opened once and never written to (a missing data dir is refused instead).
    open_workspace(Settings(data_dir=tmp_path / "empty"), role="test", models=False).close()
    stats = braid_json(runner, "stats", "--data-dir", str(tmp_path / "empty"))
    assert set(stats) == STATS_KEYS
    assert stats["embedding_model"] is None  # nothing stored yet, no model loaded to ask
    assert stats["ledger"] == {"documents": 0, "chunks": 0, "pending_documents": 0, "models": []}


@pytest.fixture(scope="module")
def changed(sample_data: tuple[Path, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the sample data dir for the commands that change it."""
    return copy_data_dir(sample_data[0], tmp_path_factory.mktemp("contract") / "data")


def test_delete_and_optimize(runner: CliRunner, changed: Path) -> None:
    data = str(changed)
    deleted = braid_json(runner, "delete", "sourdough", "no-such-doc", "--data-dir", data)
    assert deleted == {"deleted": ["sourdough"], "not_found": ["no-such-doc"]}
    by_filter = braid_json(
        runner, "delete", "--filter", '{"source": "kitchen"}', "--data-dir", data
    )
    assert by_filter == {"deleted": ["espresso"], "not_found": []}
    assert braid_json(runner, "optimize", "--data-dir", data) == {
        "dense_chunks": 10,
        "sparse_chunks": 10,
    }


def test_move_sparse_there_and_back(runner: CliRunner, changed: Path) -> None:
    data = str(changed)
    chunks = braid_json(runner, "stats", "--data-dir", data)["sparse"]["chunks"]
    there = braid_json(runner, "move-sparse", "--to", "qdrant", "--data-dir", data)
    assert set(there) == MOVE_KEYS
    assert (there["from"], there["to"], there["chunks"]) == ("tantivy", "qdrant", chunks)
    on_qdrant = make_runner(BRAID_SPARSE__BACKEND="qdrant")
    back = braid_json(on_qdrant, "move-sparse", "--to", "tantivy", "--data-dir", data)
    assert set(back) == MOVE_KEYS
    assert (back["from"], back["to"], back["chunks"]) == ("qdrant", "tantivy", chunks)


def test_model_collections_in_qdrant_local_mode(local_mode_data: Path) -> None:
    local = make_runner(BRAID_QDRANT__MODE="local")
    data = str(local_mode_data)
    listed = braid_json(local, "collections", "--data-dir", data)
    assert set(listed) == {"collections"}
    [only] = listed["collections"]
    assert set(only) == COLLECTION_KEYS
    assert (only["points"], only["serving"], only["dim"]) == (12, True, 384)
    promoted = braid_json(local, "promote", only["collection"], "--data-dir", data)
    assert promoted == {
        "serving": only["collection"],
        "model_id": only["model_id"],
        "model_version": only["model_version"],
    }
    assert braid_json(local, "drop", "no-such-collection", "--data-dir", data) == {"dropped": []}
    # The served collection is never dropped.
    refused = braid(local, "drop", only["collection"], "--json", "--data-dir", data)
    assert refused.exit_code == 1 and "promote another one first" in refused.stderr


@contextmanager
def server_holding(data: Path) -> Iterator[None]:
    """``data`` held by a running API app, its URL in ``braid.owner.json``.

    The app runs in this process under starlette's TestClient; ``httpx.post`` (how ``braid
    search`` calls a server) is routed to it.
    """
    from fastapi.testclient import TestClient

    from braid.api.main import create_app

    settings = Settings(data_dir=data)
    embedder = settings.embedder.model_copy(update={"device": "cpu", "cpu_threads": TORCH_THREADS})
    app = create_app(settings.model_copy(update={"embedder": embedder}))
    with TestClient(app) as client, pytest.MonkeyPatch.context() as patch:
        assert app.state.runtime.wait_ready(120), app.state.runtime.error

        def post(url: str, **kwargs: Any) -> httpx.Response:
            assert url.startswith("http://127.0.0.1:")  # from the owner note
            kwargs.pop("timeout")  # the TestClient has its own
            return client.post(httpx.URL(url).path, **kwargs)

        patch.setattr(httpx, "post", post)
        yield


def test_search_remote_prints_the_local_shape(
    runner: CliRunner, sample_data: tuple[Path, Any]
) -> None:
    data, _ = sample_data
    args = ("search", QUERY, "--no-rerank", "--top-k", "5", "--data-dir", str(data))
    local = braid_json(runner, *args)
    with server_holding(data):
        assert (data / "braid.owner.json").is_file()  # the server holds it: this goes over HTTP
        remote = braid_json(runner, *args)
    assert set(remote) == SEARCH_KEYS
    assert all(set(hit) == HIT_KEYS for hit in remote["hits"])

    # The same hits, field for field; scores computed again, in another engine instance.
    def without_scores(hits: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in h.items() if k != "score"} for h in hits]

    assert without_scores(remote["hits"]) == without_scores(local["hits"])
    assert [h["score"] for h in remote["hits"]] == pytest.approx(
        [h["score"] for h in local["hits"]]
    )
    same = ("mode", "embedding_model", "reranker_model")
    assert {k: remote[k] for k in same} == {k: local[k] for k in same}
    assert set(remote["timings_ms"]) == set(local["timings_ms"])
