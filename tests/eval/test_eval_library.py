"""The orchestration behind ``braid eval`` as library calls: mode choice, sides, run, sweep.

The index-backed tests share one data dir (the tiny corpus is ingested by the first); each call
opens and closes the index itself, as the commands do.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from eval_tiny import TRAIN, tiny_settings, write_beir
from oracles import pytrec_reference

from braid.engine.config import Settings
from braid.engine.errors import InvalidRequestError
from braid.eval.datasets import load_dataset
from braid.eval.evaluation import limit_queries
from braid.eval.experiments import (
    choose_modes,
    result_name,
    run_evaluation,
    shadow_sides,
    with_embedding_model,
    with_reranker,
)
from braid.eval.progress import Tick
from braid.eval.runs import read_trec
from braid.eval.sweep import fusion_params
from braid.eval.tuning import SweepGrid, tune_fusion


def test_choose_modes(tmp_path: Path) -> None:
    plain = Settings(data_dir=tmp_path)
    assert choose_modes([], plain) == ["bm25", "dense", "hybrid"]
    reranking = with_reranker(plain, "some/cross-encoder")
    assert choose_modes([], reranking) == ["bm25", "dense", "hybrid", "hybrid+rerank"]
    assert choose_modes(["bm25+rerank"], reranking) == ["bm25+rerank"]
    with pytest.raises(InvalidRequestError, match="needs a reranker"):
        choose_modes(["hybrid+rerank"], plain)
    with pytest.raises(InvalidRequestError, match="unknown mode 'fancy'"):
        choose_modes(["bm25", "fancy"], reranking)


def test_result_name() -> None:
    assert result_name("test", None) == "test-default"
    assert result_name("dev", "tuned", "/m/ce-v2", 5) == "dev-tuned-reranker-ce-v2-limit5"


def test_limit_queries(tmp_path: Path) -> None:
    train = load_dataset(write_beir(tmp_path / "tiny"), "train")
    first = limit_queries(train, 2)
    assert list(first.queries) == list(TRAIN)[:2] and set(first.qrels) == set(first.queries)
    assert limit_queries(train, None) is train


def test_shadow_sides(tmp_path: Path) -> None:
    folder = write_beir(tmp_path / "tiny")
    settings = Settings(data_dir=tmp_path / "data")
    with pytest.raises(InvalidRequestError, match="A and B are the same"):
        shadow_sides(folder, settings, settings)
    a, b = shadow_sides(folder, settings, with_embedding_model(settings, "/models/other-model"))
    # Another model gets its own index beside A's: an index answers for its own model only.
    assert a.index_dir == tmp_path / "data" / "eval" / "tiny"
    tag = hashlib.sha256(b"/models/other-model").hexdigest()[:8]
    assert b.index_dir == tmp_path / "data" / "eval" / f"tiny-other-model-{tag}"
    assert b.settings.embedder.model == "/models/other-model"
    a, b = shadow_sides(folder, settings, with_embedding_model(settings, "m"), index_b=a.index_dir)
    assert b.index_dir == a.index_dir  # asked for: B opens A's index (and its lock says if not)
    a, b = shadow_sides(folder, settings, settings, index_b=tmp_path / "b")
    assert (a.label, b.label, b.index_dir) == ("A", "B", tmp_path / "b")


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Settings]:
    root = tmp_path_factory.mktemp("library")
    return write_beir(root / "tiny"), tiny_settings(root / "data")


class Stages:
    """A ``StageProgress`` that records each stage's label and its last tick."""

    def __init__(self) -> None:
        self.seen: dict[str, tuple[int, int] | None] = {}

    @contextmanager
    def __call__(self, label: str) -> Iterator[Tick]:
        self.seen[label] = None

        def tick(done: int, total: int) -> None:
            self.seen[label] = (done, total)

        yield tick


def test_run_evaluation_agrees_with_trec_eval(shared: tuple[Path, Settings]) -> None:
    folder, settings = shared
    train = load_dataset(folder, "train")
    stages = Stages()
    report = run_evaluation(
        folder, train, settings, ["bm25", "hybrid"], depth=40, save_as="lib", progress=stages
    )
    assert list(stages.seen) == ["ingest tiny", "bm25", "hybrid"]
    assert stages.seen["hybrid"] == (len(TRAIN), len(TRAIN))
    assert [r.mode for r in report.results] == ["bm25", "hybrid"]
    for result in report.results:
        # the saved TREC run, scored by trec_eval itself, gives braid's per-query numbers
        assert result.run_file is not None
        saved = read_trec(result.run_file)
        assert saved.ranking.keys() == result.run.ranking.keys()
        reference = pytrec_reference(saved.as_scores(), train.qrels)
        for metric, values in reference.items():
            assert result.scores[metric] == pytest.approx(values, abs=1e-9), metric
    document = report.as_dict()
    assert report.result_file == settings.data_dir / "eval" / "tiny" / "results" / "lib.json"
    assert document["result_file"] == str(report.result_file)
    saved_document = json.loads(report.result_file.read_text())
    assert saved_document == {k: v for k, v in document.items() if k != "result_file"}
    assert document["baseline"] == report.baseline == "bm25"


def test_tune_fusion_without_a_test_split(shared: tuple[Path, Settings]) -> None:
    folder, settings = shared
    train = load_dataset(folder, "train")
    with pytest.raises(InvalidRequestError, match="never tune on test"):
        tune_fusion(folder, train, settings, test_split="train")
    grid = SweepGrid(
        [fusion_params("rrf", 20, rrf_k=60), fusion_params("convex", 20, bm25_share=0.5)], (10,)
    )
    report = tune_fusion(folder, train, settings, test_split=None, profile_name="lib", grid=grid)
    assert len(report.points) == 2 + 2  # depth 10 at the best RRF and the best convex point
    best = max(p.metrics["ndcg@10"] for p in report.points)
    assert report.chosen.metrics["ndcg@10"] == best
    document = report.as_dict()
    assert "test_labels" not in document and document["test"] == {}
    assert document["best_convex"] is not None and document["train_queries"] == len(TRAIN)
    profile = json.loads(report.profile_file.read_text())
    assert report.profile_file == settings.data_dir / "profiles" / "lib.json"
    assert (profile["fusion"], profile["candidates"]) == (
        report.chosen.params.fusion,
        report.chosen.params.candidates,
    )
    assert report.result_file is not None and report.result_file.name == "sweep-train.json"
    saved = json.loads(report.result_file.read_text())
    assert saved == {k: v for k, v in document.items() if k != "result_file"}
