"""``braid bench query``: its JSON keys, and the query encoder backends side by side.

Figures are printed, never asserted (benchmarks are not timed tests); what is checked is
the report's shape, that every backend was really run, and its agreement with torch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from braid.cli.app import app
from braid.cli.bench import _encoder_table, _query_table

# The --json contract before the encoder comparison: kept, only added to.
REPORT_KEYS = {
    "chunks",
    "real_vectors",
    "composed_vectors",
    "queries",
    "top_k",
    "candidates",
    "embedding_model",
    "filter",
    "modes",
}
MODES = {
    "bm25",
    "dense",
    "hybrid",
    "hybrid rrf",
    "hybrid+filter",
    "hybrid documents",
    "hybrid documents+facets+highlights",
}


def _bench(*args: str, cache: Path) -> Any:
    env = {
        "BRAID_EMBEDDER__DEVICE": "cpu",
        "BRAID_EMBEDDER__CPU_THREADS": "2",
        "BRAID_EMBEDDER__ONNX_CACHE_DIR": str(cache),
    }
    return CliRunner(env=env).invoke(app, ["bench", "query", *args], catch_exceptions=False)


@pytest.mark.slow
def test_bench_query_times_every_encoder_backend(tiny_dataset: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    result = _bench(
        *("--docs", "100", "--queries", "10", "--real-vectors", "100", "--no-peer"),
        *("--corpus", str(tiny_dataset), "--data-dir", str(tmp_path), "--json"),
        *("--backends", "torch,onnx,onnx-int8"),
        cache=tmp_path / "onnx",
    )
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report) >= REPORT_KEYS
    assert set(report["modes"]) == MODES
    assert all({"p50", "p95", "overhead_ratio_p50"} <= set(m) for m in report["modes"].values())
    assert report["queries"] == 9 and report["chunks"] >= 100  # the tiny dataset has 9
    assert report["encoder_cpu_threads"] == 2
    encoders = report["encoders"]
    assert list(encoders) == ["torch", "onnx", "onnx-int8"]
    for entry in encoders.values():
        assert 0 < entry["encode_ms"]["p50"] <= entry["encode_ms"]["p95"]
        # Each backend ran the hybrid query itself: its own embed stage, dense and BM25.
        assert {"embed", "dense", "sparse", "total"} <= set(entry["hybrid"]["p50"])
        assert entry["hybrid"]["overhead_ratio_p50"] > 0
    assert encoders["torch"]["cosine_to_torch"] == {"mean": 1.0, "min": 1.0}
    assert encoders["onnx"]["cosine_to_torch"]["min"] >= 0.999
    assert encoders["onnx-int8"]["cosine_to_torch"]["min"] >= 0.98
    # The exports went to the ONNX cache, to be reused by the next run.
    assert len(list((tmp_path / "onnx").glob("*.onnx"))) == 2
    # The tables read the same report.
    _, _, rows = _encoder_table(report)
    assert [row[0] for row in rows] == ["encode torch", "encode onnx", "encode onnx-int8"]
    assert len(_query_table(report)[2]) == len(MODES)


def test_bench_query_refuses_an_unknown_backend(tmp_path: Path) -> None:
    result = _bench(
        "--backends", "torch,tensorrt", "--data-dir", str(tmp_path), cache=tmp_path / "onnx"
    )
    assert result.exit_code == 2
    assert "tensorrt" in result.output
    assert not any(tmp_path.iterdir())  # refused before anything was built
