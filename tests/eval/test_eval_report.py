"""``write_report``: the Markdown report of a saved result, its tables under the right headings.

The result document is the real one (``RunReport.as_dict`` over ``significance``), from runs
written by hand on four queries with one relevant document each, so every number is known:
a relevant document at rank 1 scores nDCG@10 1, at rank 2 ``1 / log2(3)``.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from braid.eval.datasets import Dataset
from braid.eval.evaluation import ModeResult, RunReport, scored_result, significance
from braid.eval.report import write_report
from braid.eval.runs import Run

QRELS = {f"q{i}": {f"rel{i}": 1} for i in range(1, 5)}
SECOND = 1 / math.log2(3)  # nDCG@10 of a lone relevant document at rank 2


def ranked(ranks: dict[str, int]) -> dict[str, list[tuple[str, float]]]:
    """Per query, the relevant document at the given rank (1 or 2) behind a filler."""
    out = {}
    for qid, rank in ranks.items():
        docs = [f"rel{qid[1:]}", "filler"] if rank == 1 else ["filler", f"rel{qid[1:]}"]
        out[qid] = [(doc, 1.0) for doc in docs]
    return out


def result(mode: str, ranks: dict[str, int], data: Dataset) -> ModeResult:
    return scored_result(mode, Run(ranking=ranked(ranks), meta={"mode": mode}), data, None)


@pytest.fixture
def data(tmp_path: Path) -> Dataset:
    queries = {qid: f"query {qid}" for qid in QRELS}
    return Dataset("hand", tmp_path, "test", queries, QRELS)


def sections(markdown: str) -> dict[str, list[tuple[str, str]]]:
    """Each 'Paired tests against ...' heading -> (mode, metric) of the table rows under it."""
    found: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for line in markdown.splitlines():
        if line.startswith("Paired tests against"):
            current = found.setdefault(line, [])
        elif current is not None and line.startswith("| ") and not line.startswith("| mode"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            current.append((cells[0], cells[1]))
        elif current is not None and not line.startswith("|") and line:
            current = None  # the next paragraph: the table has ended
    return found


def test_each_family_under_its_own_heading(tmp_path: Path, data: Dataset) -> None:
    results = [
        result("bm25", {"q1": 1, "q2": 1, "q3": 2, "q4": 2}, data),
        result("dense", {"q1": 1, "q2": 2, "q3": 2, "q4": 2}, data),
        result("hybrid", {"q1": 1, "q2": 1, "q3": 1, "q4": 1}, data),
        result("peer-qdrant", {"q1": 1, "q2": 1, "q3": 1, "q4": 2}, data),
    ]
    report = RunReport("hand", "test", len(QRELS), results, significance(results))
    document = report.as_dict()
    assert (document["baseline"], document["peer"]) == ("bm25", "peer-qdrant")

    markdown = write_report(tmp_path / "out", document, None).read_text()
    found = sections(markdown)
    best = next(h for h in found if "best single retriever (`bm25`)" in h)
    peer = next(h for h in found if "Qdrant's own hybrid (`peer-qdrant`)" in h)
    assert len(found) == 2
    metrics = ("ndcg@10", "recall@100")
    # the best-single family: every other mode, the peer included
    assert found[best] == [
        (m, metric) for metric in metrics for m in ("dense", "hybrid", "peer-qdrant")
    ]
    # the peer family: braid's fusing modes only (bm25 and dense alone are not compared)
    assert found[peer] == [("hybrid", metric) for metric in metrics]

    hybrid_vs_peer = next(
        line
        for line in markdown.splitlines()[markdown.splitlines().index(peer) :]
        if line.startswith("| hybrid | ndcg@10")
    )
    # hybrid - peer: q4 only, 1 - 1/log2(3), over four queries; 1 win, 3 ties
    assert f"+{(1 - SECOND) / 4:.4f}" in hybrid_vs_peer and "1/0/3" in hybrid_vs_peer
    hybrid_vs_bm25 = next(
        line
        for line in markdown.splitlines()[markdown.splitlines().index(best) :]
        if line.startswith("| hybrid | ndcg@10")
    )
    assert f"+{2 * (1 - SECOND) / 4:.4f}" in hybrid_vs_bm25 and "2/0/2" in hybrid_vs_bm25
    # the peer's latency is its one engine call: the report has a column for it
    assert "| mode | embed | dense | sparse | fuse | rerank | fetch | query | total |" in markdown


def test_peer_family_alone_has_no_best_single_heading(tmp_path: Path, data: Dataset) -> None:
    results = [
        result("hybrid", {"q1": 1, "q2": 1, "q3": 1, "q4": 1}, data),
        result("peer-qdrant", {"q1": 2, "q2": 1, "q3": 1, "q4": 1}, data),
    ]
    document = RunReport("hand", "test", len(QRELS), results, significance(results)).as_dict()
    assert document["baseline"] is None
    found = sections(write_report(tmp_path / "out", document, None).read_text())
    assert list(found) == [
        "Paired tests against Qdrant's own hybrid (`peer-qdrant`), braid's fusing modes only, "
        "randomisation test (10,000 sign flips), Holm-corrected per metric:"
    ]
    assert next(iter(found.values())) == [("hybrid", "ndcg@10"), ("hybrid", "recall@100")]


def test_without_a_peer_the_report_is_as_before(tmp_path: Path, data: Dataset) -> None:
    results = [
        result("bm25", {"q1": 1, "q2": 2, "q3": 2, "q4": 2}, data),
        result("hybrid", {"q1": 1, "q2": 1, "q3": 1, "q4": 1}, data),
    ]
    document = RunReport("hand", "test", len(QRELS), results, significance(results)).as_dict()
    markdown = write_report(tmp_path / "out", document, None).read_text()
    assert sections(markdown) == {
        "Paired tests against the best single retriever (`bm25`), randomisation test "
        "(10,000 sign flips), Holm-corrected per metric:": [
            ("hybrid", "ndcg@10"),
            ("hybrid", "recall@100"),
        ]
    }
    assert "Qdrant" not in markdown and "| query |" not in markdown
