"""Datasets in BEIR layout and in braid's JSONL, and TREC run files round-tripping."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eval_tiny import TRAIN, write_beir
from ranx import Run as RanxRun

from braid.eval.datasets import DatasetError, load_dataset, resolve_dataset, splits
from braid.eval.runs import Run, read_trec, write_trec


def test_beir_layout(tmp_path: Path) -> None:
    folder = write_beir(tmp_path / "tiny")
    train = load_dataset(folder, "train")
    assert list(train.queries) == list(TRAIN)  # only judged queries, in file order
    assert train.qrels == TRAIN
    assert train.name == "tiny" and splits(folder) == ["test", "train"]
    assert train.query_metadata["q1"] == {"label": "x"}
    test = load_dataset(folder, "test")
    assert test.qrels["q8"] == {"d11": 1, "d9": 0}
    with pytest.raises(DatasetError, match="available: test, train"):
        load_dataset(folder, "dev")
    assert resolve_dataset("tiny", tmp_path) == tmp_path / "tiny"
    with pytest.raises(DatasetError):
        resolve_dataset("nope", tmp_path)


def test_braid_jsonl_layout(tmp_path: Path) -> None:
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text(
        json.dumps({"id": 7, "text": "seven", "lang": "en"}) + "\n"
    )
    (tmp_path / "queries.jsonl").write_text(json.dumps({"id": "a", "text": "number seven"}) + "\n")
    (tmp_path / "qrels" / "dev.jsonl").write_text(
        json.dumps({"query_id": "a", "doc_id": 7, "relevance": 2}) + "\n"
    )
    data = load_dataset(tmp_path, "dev")
    assert data.queries == {"a": "number seven"} and data.qrels == {"a": {"7": 2}}


def test_malformed_qrels(tmp_path: Path) -> None:
    folder = write_beir(tmp_path / "bad")
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\n")
    with pytest.raises(DatasetError, match="train.tsv:2"):
        load_dataset(folder, "train")


def test_trec_round_trip(tmp_path: Path) -> None:
    run = Run(
        ranking={"q1": [("d3", 0.9), ("d1", 0.9), ("d2", -4.0)], "q2": [("d9", 0.1)]},
        timings={"q1": {"total": 1.5}, "q2": {"total": 2.5}},
        meta={"tag": "braid.tiny.test.hybrid.0123abcd", "mode": "hybrid", "params": {"rrf_k": 60}},
    )
    path = write_trec(run, tmp_path / "runs" / "x.trec")
    lines = path.read_text().splitlines()
    assert lines[0] == "q1 Q0 d3 1 3 braid.tiny.test.hybrid.0123abcd"
    back = read_trec(path)
    assert {q: [d for d, _ in docs] for q, docs in back.ranking.items()} == {
        "q1": ["d3", "d1", "d2"],
        "q2": ["d9"],
    }
    assert back.meta["params"] == {"rrf_k": 60} and back.timings == run.timings
    # Another library reads the same file in the same order (rank-derived scores).
    ranx_run = RanxRun.from_file(str(path), kind="trec")
    ordered = sorted(ranx_run.to_dict()["q1"].items(), key=lambda kv: -kv[1])
    assert [d for d, _ in ordered] == ["d3", "d1", "d2"]
