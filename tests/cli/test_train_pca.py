"""``braid train pca``: a smaller model from the index's vectors, through the whole loop.

On the 12-document sample: the model folder is the base model plus a linear projection that
sentence-transformers and the ONNX embedder both run, its vectors are the stored ones
projected onto their principal axes (checked against numpy's eigen-decomposition of their
covariance, an independent route), and reindex, promote and search work with it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_helpers import braid, make_runner
from typer.testing import CliRunner

from braid.engine.model_files import resolve_model_path, weights_version
from braid.engine.models import DEFAULT_MODEL

SAMPLE = Path(__file__).parents[1] / "data" / "sample.jsonl"
DIMS = 8
TEXTS = ["wild yeast bread", "how are rankings merged", "telescopes find planets"]

pytestmark = pytest.mark.slow


def run(runner: CliRunner, *args: str) -> Any:
    result = braid(runner, *args, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("pca")
    data, model = root / "data", root / "small"
    runner = make_runner()
    assert run(runner, "ingest", str(SAMPLE), "--data-dir", str(data))["documents"] == 12
    record = run(
        runner, "train", "pca", "--dims", str(DIMS), "--out", str(model), "--data-dir", str(data)
    )
    return data, model, record


def stored_vectors(data: Path) -> np.ndarray:
    from braid.engine.config import Settings
    from braid.engine.stores import open_stores
    from braid.eval.tradeoffs import read_vectors

    stores = open_stores(Settings(data_dir=data))
    try:
        return read_vectors(stores.dense).vectors
    finally:
        stores.close()


def test_the_model_projects_onto_the_stored_vectors_principal_axes(
    fitted: tuple[Path, Path, dict[str, Any]],
) -> None:
    from sentence_transformers import SentenceTransformer

    data, model, record = fitted
    assert (record["dims"], record["vectors"], record["base"]["version"]) == (
        DIMS,
        12,
        weights_version(Path(resolve_model_path(DEFAULT_MODEL))),
    )
    assert record["version"] == weights_version(model) != record["base"]["version"]
    assert 0.5 < record["variance_kept"] <= 1.0
    small = SentenceTransformer(str(model), device="cpu")
    base = SentenceTransformer(resolve_model_path(DEFAULT_MODEL), device="cpu")
    assert small.get_embedding_dimension() == DIMS
    assert small.max_seq_length == base.max_seq_length  # chunking stays the same
    got = small.encode(TEXTS, normalize_embeddings=True)
    # Independently: the top eigenvectors of the stored vectors' covariance. Signs may differ
    # per axis, so compare what does not depend on them: the cosines between the texts.
    stored = stored_vectors(data)
    values, vectors = np.linalg.eigh(np.cov(stored, rowvar=False))
    top = vectors[:, np.argsort(values)[::-1][:DIMS]]
    expected = base.encode(TEXTS, normalize_embeddings=True) @ top
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    assert got @ got.T == pytest.approx(expected @ expected.T, abs=1e-4)


def test_the_onnx_embedder_runs_the_projection(fitted: tuple[Path, Path, dict[str, Any]]) -> None:
    from sentence_transformers import SentenceTransformer

    from braid.engine.onnx_embedder import OnnxEmbedder

    data, model, _ = fitted
    onnx = OnnxEmbedder(str(model), cache_dir=data / "onnx-cache", cpu_threads=2)
    torch_vectors = SentenceTransformer(str(model), device="cpu").encode(
        TEXTS, normalize_embeddings=True
    )
    assert onnx.info.dim == DIMS and onnx.info.version == weights_version(model)
    cosines = (onnx.encode_queries(TEXTS) * torch_vectors).sum(axis=1)
    assert cosines.min() > 0.9999


def test_bad_input_exits_2_and_writes_nothing(
    fitted: tuple[Path, Path, dict[str, Any]], tmp_path: Path
) -> None:
    data, model, _ = fitted
    runner = make_runner()
    dd = ("--data-dir", str(data))
    too_many = braid(runner, "train", "pca", "--dims", "384", "--out", str(tmp_path / "m"), *dd)
    assert too_many.exit_code == 2 and "1..383" in too_many.stderr
    taken = braid(runner, "train", "pca", "--dims", "4", "--out", str(model), *dd)
    assert taken.exit_code == 2 and "exists" in taken.stderr
    assert not (tmp_path / "m").exists()


def test_reindex_promote_and_search_with_it(fitted: tuple[Path, Path, dict[str, Any]]) -> None:
    data, model, _ = fitted
    dd = ("--data-dir", str(data))
    base = make_runner()
    reindexed = run(base, "reindex", "--model", str(model), *dd)
    assert (reindexed["chunks"], reindexed["model"]["dim"]) == (12, DIMS)
    run(base, "promote", reindexed["collection"], *dd)
    small = make_runner(BRAID_EMBEDDER__MODEL=str(model))
    found = run(small, "search", "wild yeast bread", "--mode", "dense", "--no-rerank", *dd)
    assert found["embedding_model"]["dim"] == DIMS
    assert found["hits"][0]["doc_id"] == "sourdough"
