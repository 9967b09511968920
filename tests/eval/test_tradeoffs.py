"""``braid eval tradeoffs`` on a hand-made BEIR folder, with the real MiniLM and Qdrant Edge.

The folder holds 20 documents on four topics, five documents each, and five queries whose
relevant documents share their topic with four near misses, so that dense retrieval is good
but not perfect (nDCG@10 0.968 at 384 dimensions) and cutting the vectors changes rankings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from braid.cli.app import app
from braid.engine.config import EmbedderSettings, Settings
from braid.eval.tradeoffs import TruncatedEmbedder, plan_configs, truncate, vector_bytes

DOCS: dict[str, tuple[str, str]] = {
    "c1": ("Espresso", "Espresso forces hot water through finely ground coffee at nine bars."),
    "c2": ("Cold brew", "Cold brew steeps coarse coffee grounds in cold water for a whole day."),
    "c3": ("Pour over", "Pour over coffee is made by pouring hot water over a paper filter."),
    "c4": ("Roasting", "Roasting turns green coffee beans brown through the Maillard reaction."),
    "c5": ("Decaf", "Decaffeinated coffee has its caffeine removed with water or solvents."),
    "b1": ("Waggle dance", "Honey bees show hive mates where flowers are with a waggle dance."),
    "b2": ("Queen bee", "The queen bee lays two thousand eggs a day and is fed royal jelly."),
    "b3": ("Beeswax", "Worker bees secrete wax from abdominal glands to build comb cells."),
    "b4": (
        "Colony collapse",
        "Colony collapse is the sudden loss of workers to mites and viruses.",
    ),
    "b5": ("Pollination", "Bees carry pollen between flowers, pollinating almonds and apples."),
    "v1": (
        "Lava flows",
        "Runny basaltic lava flows far from the vent and builds shield volcanoes.",
    ),
    "v2": ("Explosive eruptions", "Sticky magma traps gas until pressure blasts ash into the sky."),
    "v3": (
        "Volcanic winter",
        "Big eruptions put sulphur in the stratosphere and cool the climate.",
    ),
    "v4": ("Hot spots", "Hawaii formed as the Pacific plate moved over a fixed mantle plume."),
    "v5": (
        "Geothermal energy",
        "Heat from shallow magma drives the turbines of geothermal plants.",
    ),
    "t1": (
        "Spring tides",
        "When the sun and moon align their pull adds up and tides rise highest.",
    ),
    "t2": ("Neap tides", "At the quarter moon the sun and moon pull at right angles: neap tides."),
    "t3": ("Tidal power", "Tidal barrages and underwater turbines turn the tide into electricity."),
    "t4": (
        "Tidal locking",
        "The moon keeps one face to the earth: tidal friction locked its spin.",
    ),
    "t5": ("Bay of Fundy", "The Bay of Fundy has the highest tides on earth, over sixteen metres."),
}
QUERIES = {
    "q1": "which coffee uses pressure and which uses time instead of heat",
    "q2": "how do insects help grow fruit and nuts",
    "q3": "why can an eruption make summers colder",
    "q4": "electricity generated from natural earth or ocean movement",
    "q5": "what does the moon do to the oceans and to itself",
}
QRELS = {
    "q1": {"c1": 2, "c2": 2, "c3": 1},
    "q2": {"b5": 2, "b1": 1},
    "q3": {"v3": 2, "v2": 1},
    "q4": {"v5": 2, "t3": 2},
    "q5": {"t1": 1, "t2": 1, "t4": 2, "t5": 1},
}
ENV = {"BRAID_EMBEDDER__CPU_THREADS": "2"}
DIMS = (384, 128, 16)


def write_collection(folder: Path) -> Path:
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(
        "".join(
            json.dumps({"_id": doc, "title": title, "text": text}) + "\n"
            for doc, (title, text) in DOCS.items()
        )
    )
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": text}) + "\n" for q, text in QUERIES.items())
    )
    lines = [f"{q}\t{d}\t{rel}\n" for q, judged in QRELS.items() for d, rel in judged.items()]
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(lines))
    return folder


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    datasets = tmp_path_factory.mktemp("tradeoff-datasets")
    write_collection(datasets / "mini")
    return datasets, tmp_path_factory.mktemp("tradeoff-data")


def call(roots: tuple[Path, Path], *args: str) -> Result:
    datasets, data_dir = roots
    return CliRunner().invoke(
        app, ["eval", *args, "--datasets", str(datasets), "--data-dir", str(data_dir)], env=ENV
    )


def document(result: Result) -> dict[str, Any]:
    assert result.exit_code == 0, result.output
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def evaluated(roots: tuple[Path, Path]) -> dict[str, Any]:
    """``braid eval run`` on the folder (it builds the index the trade-offs read)."""
    modes = ("--mode", "dense", "--mode", "hybrid")
    return document(call(roots, "run", "mini", *modes, "--no-save", "--json"))


@pytest.fixture(scope="module")
def traded(roots: tuple[Path, Path], evaluated: dict[str, Any]) -> dict[str, Any]:
    del evaluated  # run first: the index is then found, not built again
    dims = ",".join(map(str, DIMS))
    return document(call(roots, "tradeoffs", "mini", "--dims", dims, "--binary", "--json"))


def row(traded: dict[str, Any], dim: int, quantization: str) -> dict[str, Any]:
    found = [
        r
        for r in traded["rows"]
        if (r["dim"], r["quantization"], r["rotation"]) == (dim, quantization, "none")
    ]
    assert len(found) == 1
    return found[0]


def test_one_row_per_dimension_and_quantization(traded: dict[str, Any]) -> None:
    assert [(r["dim"], r["quantization"]) for r in traded["rows"]] == [
        (dim, q) for dim in DIMS for q in ("none", "int8", "binary")
    ]
    assert traded["baseline"] == "384 float32" and traded["queries"] == 5
    assert traded["rows"][0]["significance"] is None  # the baseline is not tested against itself


def test_full_dimension_float_row_is_eval_run(
    traded: dict[str, Any], evaluated: dict[str, Any]
) -> None:
    """The same harness: the 384 float32 row scores every query as `eval run` does, dense and
    hybrid, although it searches a shard of its own built from the index's vectors."""
    base = row(traded, 384, "none")
    for mode, got in (("dense", base), ("hybrid", base["hybrid"])):
        expected = evaluated["modes"][mode]
        assert got["metrics"] == pytest.approx(expected["metrics"], abs=1e-9)
        assert got["per_query"]["ndcg@10"] == pytest.approx(
            expected["per_query"]["ndcg@10"], abs=1e-9
        )
    assert 0.9 < base["metrics"]["ndcg@10"] < 1.0  # neither trivial nor broken


def test_truncation_changes_rankings_and_is_tested(traded: dict[str, Any]) -> None:
    base = row(traded, 384, "none")["metrics"]["ndcg@10"]
    cut = row(traded, 16, "none")
    assert cut["metrics"]["ndcg@10"] < base - 0.05  # 16 dimensions lose on this folder
    test = cut["significance"]
    assert test["baseline"] == "384 float32" and test["metric"] == "ndcg@10"
    assert test["delta"] == pytest.approx(cut["metrics"]["ndcg@10"] - base)
    assert 0.0 < test["p_randomisation"] <= test["p_holm"] <= 1.0
    # rescoring by the float32 originals with 2x oversampling over 20 chunks: int8 ranks as float
    assert row(traded, 128, "int8")["per_query"] == row(traded, 128, "none")["per_query"]


def test_memory_figures(traded: dict[str, Any], evaluated: dict[str, Any]) -> None:
    chunks = evaluated["index"]["chunks"]
    assert traded["chunks"] == chunks >= len(DOCS)
    for dim in DIMS:
        plain, int8, binary = (row(traded, dim, q) for q in ("none", "int8", "binary"))
        assert plain["memory"] == {"bytes_per_vector": dim * 4, "total_bytes": dim * 4 * chunks}
        assert int8["memory"]["total_bytes"] == (dim + 4) * chunks  # dims are multiples of 16
        assert int8["memory"]["originals_bytes"] == dim * 4 * chunks
        assert binary["memory"]["bytes_per_vector"] == -(-dim // 128) * 16
        # what Qdrant wrote: the quantized copy is exactly the figure above, float has none
        assert int8["disk"]["quantized_bytes"] == int8["memory"]["total_bytes"]
        assert binary["disk"]["quantized_bytes"] == binary["memory"]["total_bytes"]
        assert plain["disk"]["quantized_bytes"] == 0
        assert plain["disk"]["originals_bytes"] >= dim * 4 * chunks
        assert plain["latency_ms"]["dense"]["n"] == 5


def test_truncate_renormalises() -> None:
    vectors = np.array([[3.0, 4.0, 12.0], [0.0, 0.0, 1.0]], dtype=np.float32)
    cut = truncate(vectors, 2)
    assert cut.dtype == np.float32 and cut.shape == (2, 2)
    assert cut[0].tolist() == pytest.approx([0.6, 0.8])
    assert cut[1].tolist() == [0.0, 0.0]  # an all-zero head stays zero
    assert truncate(vectors, 3) is vectors  # the full dimension is searched as stored


def test_truncated_embedder_with_the_real_model() -> None:
    from braid.engine.factory import build_embedder

    model = build_embedder(Settings(embedder=EmbedderSettings(device="cpu", cpu_threads=2)))
    full = model.encode_queries(["how do bees communicate"])[0]
    cut = TruncatedEmbedder(model, 64)
    vector = cut.encode_queries(["how do bees communicate"])[0]
    assert cut.info.dim == 64 and cut.info.model_id == model.info.model_id
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-6)
    assert np.linalg.norm(full[:64]) < 0.9  # so the re-normalisation did something
    assert vector.tolist() == pytest.approx((full[:64] / np.linalg.norm(full[:64])).tolist())


def test_byte_layout_and_plan() -> None:
    assert [vector_bytes(100, q) for q in ("none", "int8", "binary")] == [400, 116, 16]
    assert [(c.dim, c.quantization) for c in plan_configs(None, 256)] == [
        (d, q) for d in (256, 128, 64) for q in ("none", "int8")
    ]
    # the full dimension is always the first row, the baseline
    assert [c.name for c in plan_configs([128], 384)] == [
        "384 float32",
        "384 int8",
        "128 float32",
        "128 int8",
    ]
    # pca rows below the full dimension only: there a rotation changes no cosine
    assert [c.name for c in plan_configs([128], 384, pca=True)][2:] == [
        "128 float32",
        "128 int8",
        "128 float32 pca",
        "128 int8 pca",
    ]


@pytest.fixture(scope="module")
def rotated(roots: tuple[Path, Path], evaluated: dict[str, Any]) -> dict[str, Any]:
    del evaluated
    return document(call(roots, "tradeoffs", "mini", "--dims", "384,16", "--pca", "--json"))


def test_pca_rows_cut_after_the_rotation_and_keep_more(rotated: dict[str, Any]) -> None:
    rows = [(r["dim"], r["quantization"], r["rotation"]) for r in rotated["rows"]]
    assert rows == [
        (384, "none", "none"),
        (384, "int8", "none"),
        (16, "none", "none"),
        (16, "int8", "none"),
        (16, "none", "pca"),
        (16, "int8", "pca"),
    ]
    by_name = {r["name"]: r for r in rotated["rows"]}
    full = by_name["384 float32"]["metrics"]["ndcg@10"]
    plain = by_name["16 float32"]["metrics"]["ndcg@10"]
    pca = by_name["16 float32 pca"]["metrics"]["ndcg@10"]
    # 16 principal axes of ~20 chunk vectors hold nearly all they vary by: far above the
    # plain cut, and tested against the full dimension like every other row.
    assert plain < pca and full - pca < full - plain
    assert by_name["16 float32 pca"]["significance"]["baseline"] == "384 float32"
    assert any(note.startswith("pca:") for note in rotated["notes"])


def test_principal_axes_by_hand_and_against_numpy() -> None:
    from braid.engine.rotation import principal_axes, rotate

    # Points along y = 2x, pushed across the line by offsets uncorrelated with their place
    # on it: the first axis is (1, 2)/sqrt(5), the second (2, -1)/sqrt(5), signed positive.
    across = np.array([1.0, -1.0, 0.0, -1.0, 1.0])[:, None] * np.array([[0.02, -0.01]])
    line = np.array([[t, 2 * t] for t in (-2.0, -1.0, 0.0, 1.0, 2.0)]) + across
    axes = principal_axes(line)
    assert axes[:, 0].tolist() == pytest.approx([1 / 5**0.5, 2 / 5**0.5], abs=1e-6)
    assert axes[:, 1].tolist() == pytest.approx([2 / 5**0.5, -1 / 5**0.5], abs=1e-6)
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(200, 8)) * np.arange(8, 0, -1)  # variance falls by axis
    axes = principal_axes(vectors)
    assert axes.T @ axes == pytest.approx(np.eye(8), abs=1e-5)  # orthogonal
    # The same axes as numpy's eigen-decomposition of the covariance, up to each sign.
    values, vecs = np.linalg.eigh(np.cov(vectors, rowvar=False))
    expected = vecs[:, np.argsort(values)[::-1]]
    assert np.abs(axes.T @ expected) == pytest.approx(np.eye(8), abs=1e-4)
    # A rotation changes no cosine; the same vectors give the same matrix.
    a, b = rotate(vectors[:2], axes)
    cosine = float(
        vectors[0] @ vectors[1] / np.linalg.norm(vectors[0]) / np.linalg.norm(vectors[1])
    )
    assert float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)) == pytest.approx(cosine, abs=1e-5)
    assert np.array_equal(principal_axes(vectors), axes)
    with pytest.raises(ValueError, match="at least two"):
        principal_axes(vectors[:1])


def test_bad_input_exits_2(roots: tuple[Path, Path], evaluated: dict[str, Any]) -> None:
    del evaluated
    zero = call(roots, "tradeoffs", "mini", "--dims", "0")
    assert zero.exit_code == 2 and "positive" in zero.output
    words = call(roots, "tradeoffs", "mini", "--dims", "384,many")
    assert words.exit_code == 2 and "comma-separated" in words.output
    above = call(roots, "tradeoffs", "mini", "--dims", "512,128")
    assert above.exit_code == 2 and "--dims 512: the model has only 384 dimensions" in above.output
    unknown = call(roots, "tradeoffs", "no-such-collection")
    assert unknown.exit_code == 2 and "no dataset folder 'no-such-collection'" in unknown.output
