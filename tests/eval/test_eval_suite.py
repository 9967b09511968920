"""``braid eval suite``: every collection of a folder through bm25, dense, hybrid and the peer.

Three tiny collections (real engines and model): ``alpha`` is the tiny dataset, whose three test
queries each have one document on their topic, found first by every mode (nDCG@10 1); ``beta``
leaves out four documents no test query needs and judges a fourth query whose one relevant
document is in no corpus, so that query scores 0 in every mode and each mode's mean is exactly
0.75; ``gamma`` has no test split and is skipped. A folder without a corpus is no collection.
The module shares one data dir: the library run ingests each collection once, the CLI reuses it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from eval_tiny import DOCS, TEST, tiny_settings, write_beir
from typer.testing import CliRunner, Result

from braid.cli.app import app
from braid.engine.errors import InvalidRequestError
from braid.eval.datasets import DatasetError
from braid.eval.experiments import choose_modes
from braid.eval.suite import SUITE_MODES, Skipped, SuiteReport, plan_suite, run_suite, write_suite

ENV = {
    "BRAID_EMBEDDER__CPU_THREADS": "2",
    "BRAID_CHUNKING__MAX_TOKENS": "32",
    "BRAID_CHUNKING__OVERLAP_TOKENS": "0",
}
PEER = "peer-qdrant"
GAMMA_NOTE = "no qrels for split 'test' (available: train)"
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The folder of collections, and the data dir their indexes go in."""
    root = tmp_path_factory.mktemp("suite-datasets")
    write_beir(root / "alpha")
    beta = write_beir(
        root / "beta", {k: v for k, v in DOCS.items() if k not in {"d1", "d2", "d3", "d4"}}
    )
    with (beta / "qrels" / "test.tsv").open("a") as handle:
        handle.write("q9\tnowhere\t1\n")  # judged, but its relevant document is in no corpus
    gamma = write_beir(root / "gamma")
    (gamma / "qrels" / "test.tsv").unlink()
    (root / "notes").mkdir()  # no corpus.jsonl: not a collection
    return root, tmp_path_factory.mktemp("suite-data")


@pytest.fixture(scope="module")
def suite(roots: tuple[Path, Path]) -> SuiteReport:
    root, data_dir = roots
    return run_suite(plan_suite(root, "test"), tiny_settings(data_dir))


def test_plan_reads_every_collection_first(roots: tuple[Path, Path]) -> None:
    root, _ = roots
    plan = plan_suite(root, "test")
    assert [d.name for d in plan.collections] == ["alpha", "beta"]
    assert [len(d.queries) for d in plan.collections] == [len(TEST), len(TEST) + 1]
    assert plan.skipped == [Skipped("gamma", GAMMA_NOTE)]
    named = plan_suite(root, "train", ["gamma", "alpha", "gamma"], limit=2)
    assert [d.name for d in named.collections] == ["gamma", "alpha"]  # as named, once each
    assert [len(d.queries) for d in named.collections] == [2, 2] and named.skipped == []
    with pytest.raises(DatasetError, match="no dataset folder 'delta'"):
        plan_suite(root, "test", ["delta"])
    with pytest.raises(DatasetError, match="no dataset folder"):
        plan_suite(root / "notes", "test")
    with pytest.raises(DatasetError, match="not a folder"):
        plan_suite(root / "missing", "test")


def test_one_row_per_collection(suite: SuiteReport) -> None:
    assert suite.modes == list(SUITE_MODES) == ["bm25", "dense", "hybrid", PEER]
    assert suite.columns() == [
        "collection",
        "queries",
        "bm25 nDCG@10 / R@100",
        "dense nDCG@10 / R@100",
        "hybrid nDCG@10 / R@100",
        "peer-qdrant nDCG@10 / R@100",
        "hybrid vs best single",
        "hybrid vs peer-qdrant",
    ]
    # every mode ties on every query: delta 0, and the randomisation test's p is exactly 1;
    # the best single leg is the first of the tied ones
    assert suite.rows() == [
        ["alpha", "3", *["1.0000 / 1.0000"] * 4]
        + ["+0.0000 vs bm25, p 1.0000", "+0.0000 vs peer-qdrant, p 1.0000"],
        ["beta", "4", *["0.7500 / 0.7500"] * 4]
        + ["+0.0000 vs bm25, p 1.0000", "+0.0000 vs peer-qdrant, p 1.0000"],
    ]
    assert suite.skipped == [Skipped("gamma", GAMMA_NOTE)]


def test_document(suite: SuiteReport) -> None:
    document = suite.as_dict()
    assert set(document) == {
        "datasets_dir",
        "split",
        "modes",
        "limit",
        "profile",
        "created",
        "system",
        "metrics",
        "collections",
        "skipped",
        "files",
    }
    assert (document["split"], document["system"], document["limit"]) == ("test", "hybrid", None)
    assert document["skipped"] == [{"dataset": "gamma", "reason": GAMMA_NOTE}]
    collections = document["collections"]
    assert isinstance(collections, list) and [c["dataset"] for c in collections] == [
        "alpha",
        "beta",
    ]
    for entry, mean in zip(collections, (1.0, 0.75), strict=True):
        assert entry["modes"] == {m: {"ndcg@10": mean, "recall@100": mean} for m in SUITE_MODES}
        assert (entry["baseline"], entry["peer"]) == ("bm25", PEER)
        for key, baseline in (("versus_best_single", "bm25"), ("versus_peer", PEER)):
            tests = entry[key]
            assert list(tests) == ["ndcg@10", "recall@100"]
            for metric, test in tests.items():
                assert (test["system"], test["baseline"], test["metric"]) == (
                    "hybrid",
                    baseline,
                    metric,
                )
                assert (test["delta"], test["p_holm"], test["significant"]) == (0.0, 1.0, False)
                assert test["ties"] == entry["queries"]
        # each collection's full result is saved as `braid eval run` saves it
        saved = json.loads(Path(entry["result_file"]).read_text())
        assert saved["dataset"] == entry["dataset"] and list(saved["modes"]) == list(SUITE_MODES)
        assert Path(entry["result_file"]).name == "test-default.json"


def test_files(suite: SuiteReport, tmp_path: Path) -> None:
    files = write_suite(suite, tmp_path / "out")
    assert files == {
        "markdown": tmp_path / "out" / "suite.md",
        "json": tmp_path / "out" / "suite.json",
        "plot": tmp_path / "out" / "suite.png",
    }
    markdown = (tmp_path / "out" / "suite.md").read_text().splitlines()
    table = [line for line in markdown if line.startswith("|")]
    assert table[0] == "| " + " | ".join(suite.columns()) + " |"
    assert [line.split(" | ")[0] for line in table[2:]] == ["| alpha", "| beta"]
    assert f"- gamma: {GAMMA_NOTE}" in markdown
    assert "![nDCG@10 per collection and mode](suite.png)" in markdown
    assert json.loads((tmp_path / "out" / "suite.json").read_text()) == suite.as_dict()
    assert (tmp_path / "out" / "suite.png").read_bytes().startswith(PNG)


def test_nothing_ran_writes_no_plot(roots: tuple[Path, Path], tmp_path: Path) -> None:
    root, data_dir = roots
    plan = plan_suite(root, "dev")  # no collection has a dev split
    assert [s.dataset for s in plan.skipped] == ["alpha", "beta", "gamma"]
    report = run_suite(plan, tiny_settings(data_dir))
    assert write_suite(report, tmp_path)["plot"] is None and not (tmp_path / "suite.png").exists()
    assert (
        report.rows() == []
        and "- alpha: no qrels for split 'dev'" in (tmp_path / "suite.md").read_text()
    )


def test_modes_are_checked(tmp_path: Path) -> None:
    assert choose_modes(SUITE_MODES, tiny_settings(tmp_path)) == list(SUITE_MODES)
    with pytest.raises(InvalidRequestError):
        choose_modes(["bm25", "fancy"], tiny_settings(tmp_path))


def invoke(roots: tuple[Path, Path], *args: str) -> Result:
    root, data_dir = roots
    return CliRunner().invoke(
        app, ["eval", "suite", str(root), *args, "--data-dir", str(data_dir)], env=ENV
    )


def test_cli_json(roots: tuple[Path, Path], suite: SuiteReport, tmp_path: Path) -> None:
    del suite  # the indexes are built: the command reuses them
    result = invoke(
        roots,
        *("--datasets", "beta", "--datasets", "gamma", "--mode", "bm25", "--mode", "hybrid"),
        *("--limit", "2", "--no-save", "--out", str(tmp_path), "--json"),
    )
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    assert document["modes"] == ["bm25", "hybrid"] and document["limit"] == 2
    (beta,) = document["collections"]
    assert (beta["dataset"], beta["queries"], beta["result_file"]) == ("beta", 2, None)
    assert list(beta["modes"]) == ["bm25", "hybrid"]
    assert beta["versus_best_single"]["ndcg@10"]["baseline"] == "bm25"
    assert beta["peer"] is None and beta["versus_peer"] is None  # no peer asked for
    assert document["skipped"] == [{"dataset": "gamma", "reason": GAMMA_NOTE}]
    assert document["files"] == {
        k: str(tmp_path / f"suite.{x}")
        for k, x in (("markdown", "md"), ("json", "json"), ("plot", "png"))
    }
    assert json.loads((tmp_path / "suite.json").read_text()) == document


def test_cli_table(roots: tuple[Path, Path], suite: SuiteReport) -> None:
    del suite
    result = invoke(roots)
    assert result.exit_code == 0, result.output
    assert "alpha" in result.stdout and "beta" in result.stdout
    assert f"skipped gamma: {GAMMA_NOTE}" in result.output
    _, data_dir = roots
    assert (data_dir / "eval" / "suite" / "suite.md").is_file()  # the default --out
    assert (data_dir / "eval" / "suite" / "suite.png").read_bytes().startswith(PNG)


def test_cli_usage_errors_exit_2(roots: tuple[Path, Path], tmp_path: Path) -> None:
    for args, message in (
        (("--datasets", "delta"), "no dataset folder 'delta'"),
        (("--mode", "fancy"), "unknown mode 'fancy'"),
    ):
        result = invoke(roots, *args)
        assert result.exit_code == 2 and message in " ".join(result.output.split()), result.output
    empty = CliRunner().invoke(app, ["eval", "suite", str(tmp_path), "--data-dir", str(tmp_path)])
    assert empty.exit_code == 2
    assert "no dataset folder (a subfolder with a corpus.jsonl)" in " ".join(empty.output.split())
