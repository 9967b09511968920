"""The peer (``--mode peer-qdrant``): Qdrant Edge's own hybrid query on the tiny index.

Real engines throughout: braid's index (Qdrant Edge + Tantivy, MiniLM), the peer's Qdrant Edge
shard, Qdrant's Bm25. The peer's fusion is checked against RRF computed here from the peer's own
two prefetch lists with Qdrant's formula, ``1 / (k + position)``, 0-based positions, k = 2
(qdrant lib/segment/src/common/reciprocal_rank_fusion.rs, ``DEFAULT_RRF_K``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from eval_tiny import DOCS, QUERIES, TEST, tiny_settings, write_beir
from typer.testing import CliRunner

from braid.cli.app import app
from braid.engine.config import Settings
from braid.engine.errors import InvalidRequestError
from braid.eval.datasets import load_dataset
from braid.eval.experiments import choose_modes, run_evaluation
from braid.eval.indexes import open_index
from braid.eval.peer import PEER_DIR, QDRANT_DEFAULT_RRF_K, PeerHit, open_peer, settle_ties
from braid.eval.runs import DEFAULT_MODES, read_trec

PEER = "peer-qdrant"


def qdrant_rrf(lists: list[list[PeerHit]], k: int) -> dict[str, float]:
    """Qdrant's RRF, written out: each list adds 1 / (k + position), positions from 0."""
    scores: dict[str, float] = {}
    for hits in lists:
        for position, hit in enumerate(hits):
            scores[hit.point_id] = scores.get(hit.point_id, 0.0) + 1.0 / (k + position)
    return scores


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Settings]:
    root = tmp_path_factory.mktemp("peer")
    return write_beir(root / "tiny"), tiny_settings(root / "data")


def test_peer_mode_is_opt_in(tmp_path: Path) -> None:
    plain = Settings(data_dir=tmp_path)
    assert PEER not in DEFAULT_MODES and PEER not in choose_modes([], plain)
    assert choose_modes(["hybrid", PEER], plain) == ["hybrid", PEER]
    with pytest.raises(InvalidRequestError, match="or the peer peer-qdrant"):
        choose_modes(["qdrant"], plain)


def test_qdrant_rrf_constant() -> None:
    # Qdrant's unit test (rrf_scoring, k = 2): lists [2, 1], [1, 2, 3], [5, 3, 1]
    lists = [[PeerHit(str(i), "", 0.0) for i in ids] for ids in ([2, 1], [1, 2, 3], [5, 3, 1])]
    scores = qdrant_rrf(lists, QDRANT_DEFAULT_RRF_K)
    assert scores == pytest.approx(
        {"1": 1 / 3 + 1 / 2 + 1 / 4, "2": 1 / 2 + 1 / 3, "3": 1 / 4 + 1 / 3, "5": 1 / 2}
    )
    assert scores["1"] == pytest.approx(1.0833334)  # the value qdrant's test asserts


def test_peer_in_the_report(shared: tuple[Path, Settings]) -> None:
    folder, settings = shared
    test = load_dataset(folder, "test")
    report = run_evaluation(
        folder, test, settings, ["bm25", "hybrid", PEER], depth=40, save_as="peer"
    )
    by_mode = {r.mode: r for r in report.results}
    peer = by_mode[PEER]
    # unambiguous queries: each has one document on its topic
    assert {q: peer.run.doc_ids(q, 1) for q in TEST} == {
        "q6": ["d12"],
        "q7": ["d8"],
        "q8": ["d11"],
    }
    for qid in TEST:
        ids = peer.run.doc_ids(qid)
        assert len(ids) == len(set(ids)) and set(ids) <= set(DOCS)  # grouped into documents
    hybrid_params = by_mode["hybrid"].run.meta["params"]
    params = peer.run.meta["params"]
    assert isinstance(hybrid_params, dict) and isinstance(params, dict)
    assert (params["depth"], params["docs"], params["candidates"]) == (
        hybrid_params["depth"],
        hybrid_params["docs"],
        hybrid_params["candidates"],
    )
    assert params["rrf_k"] == 2
    assert peer.run.meta["label"] == "peer-qdrant: Qdrant Edge prefetch dense+bm25, RRF k=2 c=100"
    assert set(peer.latency) == {"embed", "query", "total"}

    rows = {(c.system, c.baseline, c.metric): c for c in report.comparisons}
    assert set(rows) == {
        (system, baseline, metric)
        for metric in ("ndcg@10", "recall@100")
        for system, baseline in (("hybrid", "bm25"), (PEER, "bm25"), ("hybrid", PEER))
    }
    versus_peer = rows[("hybrid", PEER, "ndcg@10")]
    assert versus_peer.mean_system == pytest.approx(by_mode["hybrid"].means["ndcg@10"])
    assert versus_peer.mean_baseline == pytest.approx(peer.means["ndcg@10"])
    assert versus_peer.wins + versus_peer.losses + versus_peer.ties == len(TEST)

    document = report.as_dict()
    assert document["peer"] == PEER and document["baseline"] == "bm25"
    significance = document["significance"]
    assert isinstance(significance, list) and len(significance) == len(rows)
    assert {(c["system"], c["baseline"]) for c in significance} >= {("hybrid", PEER)}
    modes = document["modes"]
    assert isinstance(modes, dict) and modes[PEER]["metrics"] == peer.means
    assert peer.run_file is not None
    assert read_trec(peer.run_file).ranking.keys() == peer.run.ranking.keys()


def test_peer_fusion_is_qdrant_rrf_over_its_own_legs(shared: tuple[Path, Settings]) -> None:
    folder, settings = shared
    index = open_index(folder, settings)
    try:
        engine = index.workspace.engine
        chunks = int(index.state["chunks"])  # type: ignore[call-overload]
        with open_peer(index) as peer:
            for text in QUERIES.values():
                vector = engine.embedder.encode_queries([text])[0]
                # the peer's dense leg is braid's dense search over the same stored vectors
                # (a repeated sentence makes equal chunks: their order among themselves is free,
                # and which of them a cut-off keeps, so compare every chunk)
                ours = engine.dense.search(vector, chunks)
                dense = peer.dense_leg(vector.tolist(), chunks)
                assert len(dense) == chunks
                assert [h.score for h in dense] == pytest.approx([p.score for p in ours], abs=1e-5)
                assert {h.point_id: h.score for h in dense} == pytest.approx(
                    {p.point_id: p.score for p in ours}, abs=1e-5
                )
                for candidates in (5, chunks):  # a cut prefetch, and every chunk
                    legs = [
                        peer.dense_leg(vector.tolist(), candidates),
                        peer.sparse_leg(text, candidates),
                    ]
                    expected = qdrant_rrf(legs, QDRANT_DEFAULT_RRF_K)
                    fused = peer.query(
                        vector.tolist(), text, limit=2 * chunks, candidates=candidates
                    )
                    got = {h.point_id: h.score for h in fused}
                    assert got == pytest.approx(expected, rel=1e-5)
                    # best first (Qdrant does not break ties, so only the scores' order is fixed)
                    assert [h.score for h in fused] == pytest.approx(
                        sorted(expected.values(), reverse=True), rel=1e-5
                    )
                    # ties settled by point id: the order is then exact
                    settled = [h.point_id for h in settle_ties(fused, 6)]
                    ordered = sorted(expected.items(), key=lambda item: (-item[1], item[0]))
                    assert settled == [point_id for point_id, _ in ordered[:6]]
    finally:
        index.close()


def test_peer_shard_is_cached_and_rebuilt_when_the_index_changes(tmp_path: Path) -> None:
    folder = write_beir(tmp_path / "tiny")
    settings = tiny_settings(tmp_path / "data")
    test = load_dataset(folder, "test")

    def built() -> Any:
        report = run_evaluation(folder, test, settings, [PEER], depth=20)
        return report.results[0].run.meta["peer"]["built"]  # type: ignore[index]

    assert built() is True
    shard_dir = settings.data_dir / "eval" / "tiny" / PEER_DIR
    stamp = json.loads((shard_dir / "braid-peer.json").read_text())
    assert stamp["chunks"] == stamp["bm25"]["points"]
    assert built() is False  # same corpus, model and chunking: the shard is reused

    extra = {"d17": ("Lighthouses", "A lighthouse keeper lights the lantern to warn ships.")}
    write_beir(folder, DOCS | extra)
    assert built() is True  # the index re-ingested a changed corpus: the shard follows
    rebuilt = json.loads((shard_dir / "braid-peer.json").read_text())
    assert rebuilt["corpus_sha256"] != stamp["corpus_sha256"]
    assert rebuilt["bm25"]["points"] == rebuilt["chunks"] == stamp["chunks"] + 1
    index = open_index(folder, settings)
    try:
        text = "lighthouse keeper warning ships"
        vector = index.workspace.engine.embedder.encode_queries([text])[0].tolist()
        with open_peer(index) as peer:
            assert not peer.built
            assert peer.query(vector, text, limit=5, candidates=10)[0].doc_id == "d17"
    finally:
        index.close()


def test_cli_runs_the_peer(shared: tuple[Path, Settings]) -> None:
    folder, settings = shared
    result = CliRunner().invoke(
        app,
        ["eval", "run", str(folder), "--mode", "hybrid", "--mode", PEER, "--no-save", "--json"]
        + ["--data-dir", str(settings.data_dir)],
        env={
            "BRAID_EMBEDDER__CPU_THREADS": "2",
            "BRAID_CHUNKING__MAX_TOKENS": "32",
            "BRAID_CHUNKING__OVERLAP_TOKENS": "0",
        },
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout.strip().splitlines()[-1])
    assert list(document["modes"]) == ["hybrid", PEER] and document["peer"] == PEER
    assert document["baseline"] is None
    assert [(c["system"], c["baseline"], c["metric"]) for c in document["significance"]] == [
        ("hybrid", PEER, "ndcg@10"),
        ("hybrid", PEER, "recall@100"),
    ]
