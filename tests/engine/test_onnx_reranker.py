"""The ONNX CPU backend of the reranker scores like the torch model it was exported from."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from model_helpers import save_seeded_cross_encoder

from braid.engine.onnx_reranker import FP32_FILE, INT8_FILE, ONNX_DIR

pytest.importorskip("onnxruntime")

QUERY = "how does reciprocal rank fusion combine rankings"
PASSAGES = [
    "Reciprocal rank fusion adds one over k plus the rank of each document in each list.",
    "Sourdough bread rises with a starter of wild yeast.",
    "BM25 scores a document by the frequency of each query term.",
    "Saturn's rings are made of ice and rock.",
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cross-encoder from the MiniLM weights with a seeded head (no trained one can be had)."""
    return save_seeded_cross_encoder(tmp_path_factory.mktemp("onnx-cross-encoder"))


def test_onnx_fp32_matches_torch(model_dir: Path) -> None:
    from braid.engine.reranker import CrossEncoderReranker

    # Batches of 3 and 1 pairs of different lengths: the exported graph keeps both axes dynamic.
    torch_scores = CrossEncoderReranker(str(model_dir), device="cpu").score(QUERY, PASSAGES)
    onnx = CrossEncoderReranker(str(model_dir), device="cpu", backend="onnx", batch_size=3)
    assert (model_dir / ONNX_DIR / FP32_FILE).is_file()
    assert onnx.score(QUERY, PASSAGES) == pytest.approx(torch_scores, abs=1e-5)
    assert onnx.score(QUERY, []) == []


def test_onnx_int8_is_exported_once_and_scores_every_pair(model_dir: Path) -> None:
    from braid.engine.reranker import CrossEncoderReranker

    reranker = CrossEncoderReranker(str(model_dir), device="cpu", backend="onnx-int8")
    quantized = model_dir / ONNX_DIR / INT8_FILE
    assert quantized.is_file()
    assert quantized.stat().st_size < (quantized.parent / FP32_FILE).stat().st_size / 2
    stamp = quantized.stat().st_mtime_ns
    scores = reranker.score(QUERY, PASSAGES)
    assert len(scores) == len(PASSAGES)
    assert all(0.0 < s < 1.0 for s in scores)  # sigmoid of a single logit, as CrossEncoder does
    assert np.isfinite(scores).all()
    CrossEncoderReranker(str(model_dir), device="cpu", backend="onnx-int8")
    assert quantized.stat().st_mtime_ns == stamp  # reused, not exported again
