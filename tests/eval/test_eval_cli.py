"""``braid eval`` commands end to end on the tiny dataset (own data dir, real models)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from eval_tiny import write_beir
from typer.testing import CliRunner

import braid.eval.datasets as datasets_module
from braid.eval.cli import register


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    root = typer.Typer()
    register(root)
    return root


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    datasets = tmp_path_factory.mktemp("cli-datasets")
    write_beir(datasets / "tiny")
    return datasets, tmp_path_factory.mktemp("cli-data")


def invoke(
    app: typer.Typer, roots: tuple[Path, Path], *args: str, profile: str | None = None
) -> dict[str, Any]:
    datasets, data_dir = roots
    where = [] if args[1] == "report" else ["--datasets", str(datasets)]
    result = CliRunner().invoke(
        app,
        [*args, *where, "--data-dir", str(data_dir), "--json"],
        env={
            "BRAID_EMBEDDER__CPU_THREADS": "2",
            "BRAID_CHUNKING__MAX_TOKENS": "32",
            "BRAID_CHUNKING__OVERLAP_TOKENS": "0",
            "BRAID_PROFILE": profile,
        },
    )
    assert result.exit_code == 0, result.output
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert isinstance(loaded, dict)
    return loaded


def test_run_sweep_report_compare(
    app: typer.Typer, roots: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, data_dir = roots
    out = invoke(
        app,
        roots,
        "eval",
        "run",
        "tiny",
        "--split",
        "test",
        "--mode",
        "bm25",
        "--mode",
        "dense",
        "--mode",
        "hybrid",
    )
    modes = out["modes"]
    assert isinstance(modes, dict) and list(modes) == ["bm25", "dense", "hybrid"]
    for entry in modes.values():
        assert set(entry["metrics"]) >= {
            "ndcg@10",
            "recall@10",
            "recall@100",
            "mrr@10",
            "map@100",
            "judged@10",
        }
        assert Path(entry["run_file"]).is_file()
        assert entry["latency_ms"]["total"]["p50"] > 0
    assert out["baseline"] in ("bm25", "dense") and out["significance"]

    # The sweep reads the test qrels only after the profile (the choice) is written.
    reads: list[tuple[str, bool]] = []
    real = datasets_module.load_qrels
    profile = data_dir / "profiles" / "tiny-tuned.json"

    def spy(folder: Path, split: str) -> dict[str, dict[str, int]]:
        reads.append((split, profile.exists()))
        return real(folder, split)

    monkeypatch.setattr(datasets_module, "load_qrels", spy)
    sweep = invoke(app, roots, "eval", "sweep", "tiny", "--quick")
    assert reads == [("train", False), ("test", True)]
    assert sweep["profile"] == "tiny-tuned" and profile.is_file()
    assert set(sweep["test"]) >= {"bm25", "dense", "hybrid (default)", "hybrid (tuned rrf)"}
    saved = json.loads(profile.read_text())
    assert saved["tuned_on"]["split"] == "train" and saved["fusion"] in ("rrf", "convex")

    tuned = invoke(app, roots, "eval", "run", "tiny", "--profile", "tiny-tuned", "--mode", "hybrid")
    assert tuned["profile"] == "tiny-tuned"
    # BRAID_PROFILE (read from the main data dir) gives the same parameters as --profile
    from_env = invoke(app, roots, "eval", "run", "tiny", "--mode", "hybrid", profile="tiny-tuned")
    assert from_env["modes"]["hybrid"]["params"] == tuned["modes"]["hybrid"]["params"]

    report = invoke(app, roots, "eval", "report", "tiny")
    names = {Path(f).name for f in report["files"]}
    assert {"report.md", "grid.png", "quality_latency.png", "wins_losses.png"} <= names

    shadow = invoke(
        app, roots, "eval", "compare", "tiny", "--profile-b", "tiny-tuned", "--mode", "hybrid"
    )
    row = shadow["rows"][0]
    assert 0.0 <= row["overlap"] <= 1.0 and "ndcg@10" in row["a"]

    perturbed = invoke(app, roots, "eval", "perturb", "tiny", "--mode", "bm25", "--kind", "reorder")
    assert perturbed["rows"][0]["edit"] == "reorder"
    # BM25 is a bag of words: reordering the query changes nothing
    assert perturbed["rows"][0]["overlap@10"] == 1.0


def test_sweep_refuses_to_tune_on_test(app: typer.Typer, roots: tuple[Path, Path]) -> None:
    datasets, data_dir = roots
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "sweep",
            "tiny",
            "--train-split",
            "test",
            "--test-split",
            "test",
            "--datasets",
            str(datasets),
            "--data-dir",
            str(data_dir),
        ],
    )
    assert result.exit_code == 2
