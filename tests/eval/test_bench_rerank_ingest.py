"""``braid bench rerank`` and ``braid bench ingest``: report shapes, and that each really ran.

Figures are printed, never asserted: what is checked is what ran (backends, devices, counts),
on the tiny dataset with the real model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from braid.cli.app import app
from braid.cli.bench import _ingest_table, _rerank_table
from braid.engine.model_files import resolve_model_path
from braid.eval.bench.rerank import is_cross_encoder, passages

CPU = {"BRAID_EMBEDDER__DEVICE": "cpu", "BRAID_RERANKER__DEVICE": "cpu"}


def _bench(*args: str, env: dict[str, str] | None = None) -> Any:
    runner = CliRunner(env=CPU | (env or {}))
    return runner.invoke(app, ["bench", *args], catch_exceptions=False)


def test_passages_are_indexed_as_title_and_text(tiny_dataset: Path) -> None:
    texts = passages(tiny_dataset, 2)
    assert texts == [
        "Reciprocal rank fusion\nReciprocal rank fusion combines rankings by summing one over k "
        "plus rank for each list.",
        "BM25 ranking function\nBM25 scores documents by term frequency saturation and inverse "
        "document frequency with length normalisation.",
    ]


def test_an_embedding_model_folder_is_not_a_cross_encoder(tmp_path: Path) -> None:
    from sentence_transformers import CrossEncoder

    minilm = Path(resolve_model_path("sentence-transformers/all-MiniLM-L6-v2"))
    assert not is_cross_encoder(minilm)
    CrossEncoder(str(minilm), num_labels=1, device="cpu").save(str(tmp_path / "ce"))
    assert is_cross_encoder(tmp_path / "ce")


@pytest.mark.slow
def test_bench_rerank_times_each_backend_on_the_asked_pairs(tiny_dataset: Path) -> None:
    pytest.importorskip("onnxruntime")
    result = _bench(
        *("rerank", "--pairs", "6", "--calls", "3", "--backends", "torch,onnx-int8"),
        *("--corpus", str(tiny_dataset), "--json"),
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    # No reranker configured: the embedding model with a fresh head, and the report says so.
    assert report["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert report["untrained_head"] is True
    assert (report["pairs"], report["calls"]) == (6, 3)
    assert list(report["backends"]) == ["torch", "onnx-int8"]
    torch_entry, int8_entry = report["backends"]["torch"], report["backends"]["onnx-int8"]
    assert (torch_entry["device"], torch_entry["dtype"]) == ("cpu", "float32")
    assert (int8_entry["device"], int8_entry["dtype"]) == ("cpu", "int8")
    for entry in report["backends"].values():
        assert 0 < entry["ms"]["min"] <= entry["ms"]["p50"] <= entry["ms"]["p95"]
        # pairs/s is the asked pairs over the median call, to the rounding
        assert entry["pairs_per_s"] == pytest.approx(6 / (entry["ms"]["p50"] / 1000), rel=0.01)
    _, _, rows = _rerank_table(report)
    assert [row[0] for row in rows] == ["torch", "onnx-int8"]


def test_bench_rerank_refuses_an_unknown_backend_and_too_many_pairs(tiny_dataset: Path) -> None:
    unknown = _bench("rerank", "--backends", "torch,tensorrt", "--corpus", str(tiny_dataset))
    assert unknown.exit_code == 2
    assert "tensorrt" in unknown.output
    too_many = _bench("rerank", "--pairs", "17", "--corpus", str(tiny_dataset))
    assert too_many.exit_code == 1
    assert "16 documents, fewer than 17 pairs" in " ".join(too_many.output.split())
    missing = _bench(
        "rerank", "--model", "/no/such/model", "--pairs", "4", "--corpus", str(tiny_dataset)
    )
    assert missing.exit_code == 1
    assert "cannot load reranker '/no/such/model'" in " ".join(missing.output.split())


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["torch", "onnx-int8"])
def test_bench_ingest_runs_on_every_embedder_backend(
    backend: str, tiny_dataset: Path, tmp_path: Path
) -> None:
    # The bare-encoder reference once read the SentenceTransformer behind the embedder, which
    # the ONNX backends (the CPU default) do not have: the command failed with exit 70.
    if backend != "torch":
        pytest.importorskip("onnxruntime")
    result = _bench(
        *("ingest", "--corpus", str(tiny_dataset), "--limit", "5", "--batch-size", "4"),
        *("--data-dir", str(tmp_path), "--json"),
        env={"BRAID_EMBEDDER__BACKEND": backend},
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["documents"], report["embedder_backend"], report["device"]) == (
        5,
        backend,
        "cpu",
    )
    assert report["chunks"] >= 5
    assert report["ingest"]["chunks_per_s"] > 0 and report["raw_encode"]["chunks_per_s"] > 0
    assert backend in _ingest_table(report)[0]
    assert list(tmp_path.iterdir()) == []  # the scratch index is removed
