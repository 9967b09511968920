"""``braid eval`` commands through the root app on the tiny dataset (own data dir, real models).

The module shares one data dir: ``evaluated`` runs ``eval run`` once (it ingests the tiny
corpus), ``swept`` runs ``eval sweep`` once (it writes the ``tiny-tuned`` profile); every later
command finds the index current and reuses it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from eval_tiny import TEST, write_beir
from typer.testing import CliRunner, Result

import braid.eval.datasets as datasets_module
from braid.cli.app import app
from braid.eval.metrics import METRICS

Swept = tuple[dict[str, Any], list[tuple[str, bool]]]
ENV = {
    "BRAID_EMBEDDER__CPU_THREADS": "2",
    "BRAID_CHUNKING__MAX_TOKENS": "32",
    "BRAID_CHUNKING__OVERLAP_TOKENS": "0",
}


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    datasets = tmp_path_factory.mktemp("cli-datasets")
    write_beir(datasets / "tiny")
    return datasets, tmp_path_factory.mktemp("cli-data")


def call(roots: tuple[Path, Path], *args: str, profile: str | None = None) -> Result:
    datasets, data_dir = roots
    where = [] if args[1] == "report" else ["--datasets", str(datasets)]
    return CliRunner().invoke(
        app,
        [*args, *where, "--data-dir", str(data_dir), "--json"],
        env={**ENV, "BRAID_PROFILE": profile},
    )


def invoke(roots: tuple[Path, Path], *args: str, profile: str | None = None) -> dict[str, Any]:
    result = call(roots, *args, profile=profile)
    assert result.exit_code == 0, result.output
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def evaluated(roots: tuple[Path, Path]) -> dict[str, Any]:
    modes = ("--mode", "bm25", "--mode", "dense", "--mode", "hybrid")
    return invoke(roots, "eval", "run", "tiny", "--split", "test", *modes)


@pytest.fixture(scope="module")
def swept(roots: tuple[Path, Path], evaluated: dict[str, Any]) -> Swept:
    """The sweep's JSON, and (split, profile written yet?) for every qrels file it read."""
    del evaluated  # ingested first, so the sweep's reads are only the qrels
    _, data_dir = roots
    reads: list[tuple[str, bool]] = []
    real = datasets_module.load_qrels
    profile = data_dir / "profiles" / "tiny-tuned.json"

    def spy(folder: Path, split: str) -> dict[str, dict[str, int]]:
        reads.append((split, profile.exists()))
        return real(folder, split)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(datasets_module, "load_qrels", spy)
        return invoke(roots, "eval", "sweep", "tiny", "--quick"), reads


def test_run(evaluated: dict[str, Any]) -> None:
    assert set(evaluated) == {
        "dataset",
        "split",
        "queries",
        "profile",
        "created",
        "embedding_model",
        "index",
        "metrics",
        "modes",
        "baseline",
        "significance",
        "anchors",
        "goals",
        "result_file",
    }
    assert (evaluated["dataset"], evaluated["split"]) == ("tiny", "test")
    assert evaluated["queries"] == len(TEST) and evaluated["profile"] is None
    modes = evaluated["modes"]
    assert list(modes) == ["bm25", "dense", "hybrid"]
    for entry in modes.values():
        assert list(entry["metrics"]) == list(METRICS)
        assert Path(entry["run_file"]).is_file()
        assert entry["latency_ms"]["total"]["p50"] > 0
        assert set(entry["per_query"]["ndcg@10"]) == set(TEST)
    assert evaluated["baseline"] in ("bm25", "dense")
    # every other mode against the baseline, on nDCG@10 and R@100
    others = [m for m in ("bm25", "dense", "hybrid") if m != evaluated["baseline"]]
    assert [(c["system"], c["metric"]) for c in evaluated["significance"]] == [
        (other, m) for m in ("ndcg@10", "recall@100") for other in others
    ]
    saved = json.loads(Path(evaluated["result_file"]).read_text())
    assert Path(evaluated["result_file"]).name == "test-default.json"
    assert saved == {k: v for k, v in evaluated.items() if k != "result_file"}


def test_sweep_reads_test_only_after_choosing(roots: tuple[Path, Path], swept: Swept) -> None:
    sweep, reads = swept
    _, data_dir = roots
    assert reads == [("train", False), ("test", True)]
    profile = data_dir / "profiles" / "tiny-tuned.json"
    assert sweep["profile"] == "tiny-tuned" and Path(sweep["profile_file"]) == profile
    # the quick grid: 4 RRF points and 1 convex point, then depth 50 at the best of each
    assert len(sweep["points"]) == 4 + 1 + 2
    assert list(sweep["test"]) == [
        "bm25",
        "dense",
        "hybrid (default)",
        "hybrid (tuned rrf)",
        "hybrid (tuned convex)",
    ]
    assert set(sweep["test_labels"]) == set(sweep["test"]) and sweep["test_significance"]
    saved = json.loads(profile.read_text())
    assert saved["tuned_on"]["split"] == "train"
    assert saved["fusion"] == sweep["chosen"]["params"]["fusion"]
    assert saved["candidates"] == sweep["chosen"]["params"]["candidates"]


def test_profile_from_option_or_environment(roots: tuple[Path, Path], swept: Swept) -> None:
    chosen = swept[0]["chosen"]["params"]
    tuned = invoke(roots, "eval", "run", "tiny", "--profile", "tiny-tuned", "--mode", "hybrid")
    assert tuned["profile"] == "tiny-tuned"
    assert Path(tuned["result_file"]).name == "test-tiny-tuned.json"
    params = tuned["modes"]["hybrid"]["params"]
    assert (params["fusion"], params["weights"]) == (chosen["fusion"], chosen["weights"])
    # BRAID_PROFILE (read from the main data dir) gives the same parameters as --profile
    from_env = invoke(roots, "eval", "run", "tiny", "--mode", "hybrid", profile="tiny-tuned")
    assert from_env["profile"] == "tiny-tuned" and from_env["modes"]["hybrid"]["params"] == params


def test_report(roots: tuple[Path, Path], swept: Swept) -> None:
    del swept  # the run and the sweep results are saved
    report = invoke(roots, "eval", "report", "tiny")
    assert set(report) == {"report", "files"} and report["report"] in report["files"]
    names = {Path(f).name for f in report["files"]}
    assert {"report.md", "grid.png", "quality_latency.png", "wins_losses.png"} <= names
    assert "tiny" in Path(report["report"]).read_text()


def test_compare_with_a_profile(roots: tuple[Path, Path], swept: Swept) -> None:
    del swept
    shadow = invoke(roots, "eval", "compare", "tiny", "--profile-b", "tiny-tuned", "--k", "5")
    assert set(shadow) == {"dataset", "split", "k", "sides", "rows"} and shadow["k"] == 5
    assert [s["label"] for s in shadow["sides"]] == ["A", "B"]
    (row,) = shadow["rows"]
    assert row["mode"] == "hybrid" and 0.0 <= row["overlap"] <= 1.0
    assert row["delta_ndcg@10"] == pytest.approx(row["b"]["ndcg@10"] - row["a"]["ndcg@10"])


def test_compare_refuses_two_identical_sides(
    roots: tuple[Path, Path], evaluated: dict[str, Any]
) -> None:
    del evaluated
    assert call(roots, "eval", "compare", "tiny").exit_code == 2


def test_perturb(roots: tuple[Path, Path], evaluated: dict[str, Any]) -> None:
    del evaluated
    perturbed = invoke(roots, "eval", "perturb", "tiny", "--mode", "bm25", "--kind", "reorder")
    assert set(perturbed) == {"dataset", "split", "queries", "seed", "rows"}
    (row,) = perturbed["rows"]
    assert (row["mode"], row["edit"]) == ("bm25", "reorder")
    # BM25 is a bag of words: reordering the query changes nothing
    assert row["overlap@10"] == 1.0 and row["ndcg@10"] == row["edited_ndcg@10"]


def test_run_prints_tables(roots: tuple[Path, Path], evaluated: dict[str, Any]) -> None:
    del evaluated
    datasets, data_dir = roots
    args = ["eval", "run", "tiny", "--mode", "bm25", "--mode", "hybrid", "--no-save"]
    result = CliRunner().invoke(
        app, [*args, "--datasets", str(datasets), "--data-dir", str(data_dir)], env=ENV
    )
    assert result.exit_code == 0, result.output
    for title in ("tiny test (3 queries)", "paired tests vs best single retriever (bm25)"):
        assert title in result.stdout
    assert "latency per query" in result.stdout and "saved" not in result.output


def test_usage_errors_exit_2(roots: tuple[Path, Path]) -> None:
    assert call(roots, "eval", "run", "tiny", "--mode", "fancy").exit_code == 2
    # no reranker is configured
    assert call(roots, "eval", "run", "tiny", "--mode", "hybrid+rerank").exit_code == 2
    assert call(roots, "eval", "run", "missing-dataset").exit_code == 2
    assert call(roots, "eval", "run", "tiny", "--profile", "missing").exit_code == 2
    assert call(roots, "eval", "sweep", "tiny", "--train-split", "test").exit_code == 2


def test_report_without_results_exits_1(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["eval", "report", "tiny", "--data-dir", str(tmp_path), "--json"]
    )
    assert result.exit_code == 1 and "nothing to report" in result.output


def test_command_modules_import_no_heavy_library() -> None:
    """``braid --help`` imports these modules: torch, the models and the harness load only
    inside the commands. In a fresh interpreter, since this one has them all loaded."""
    heavy = (
        "torch",
        "sentence_transformers",
        "matplotlib",
        "ranx",
        "ir_measures",
        "scipy",
        "braid.engine.factory",
        "braid.eval.experiments",
    )
    code = (
        "import sys, braid.cli.eval, braid.cli.train; "
        f"print([m for m in {heavy!r} if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
