"""Runs through the real query path on a real tiny index: ingestion reuse, runs, caching, sweep."""

from __future__ import annotations

from pathlib import Path

import pytest
from eval_tiny import DOCS, QUERIES, TEST, TRAIN, tiny_settings
from model_helpers import cross_encoder_predict, save_seeded_cross_encoder

from braid.engine.errors import InvalidRequestError
from braid.engine.searcher import HybridSearcher
from braid.eval.caching import CachingEmbedder, CachingReranker
from braid.eval.datasets import load_dataset
from braid.eval.evaluation import evaluate_mode, significance
from braid.eval.indexes import EvalIndex, open_index
from braid.eval.runs import RunParams, execute_run, run_tag
from braid.eval.sweep import best, first_stage_grid, run_sweep


def test_index_is_built_once_and_reused(tiny_dataset: Path, tmp_path: Path) -> None:
    settings = tiny_settings(tmp_path)
    first = open_index(tiny_dataset, settings)
    try:
        assert first.ingested
        assert first.state["documents"] == len(DOCS)
        assert int(first.state["chunks"]) > len(DOCS)  # 32-token chunks: long docs are split
        assert first.data_dir == tmp_path / "eval" / "tiny"
    finally:
        first.close()
    again = open_index(tiny_dataset, settings)
    try:
        assert not again.ingested and again.state["corpus_sha256"] == first.state["corpus_sha256"]
    finally:
        again.close()


def test_modes_through_the_searcher(tiny_index: EvalIndex, tiny_dataset: Path) -> None:
    searcher = tiny_index.workspace.engine.searcher
    train = load_dataset(tiny_dataset, "train")
    results = [
        evaluate_mode(
            searcher, train, RunParams(mode=m, depth=40), context={"index": tiny_index.state}
        )
        for m in ("bm25", "dense", "hybrid")
    ]
    for result in results:
        for qid, docs in result.run.ranking.items():
            ids = [d for d, _ in docs]
            assert len(ids) == len(set(ids))  # chunks of one document count once
            assert set(ids) <= set(DOCS)
            assert ids[0] in TRAIN[qid]  # every query is easy here
        assert result.means["ndcg@10"] > 0.9
        assert set(result.latency) >= {"fuse", "fetch", "total"}
    hybrid = results[2]
    params = hybrid.run.meta["params"]
    assert params["fusion"] == "adaptive" and "rrf_k" not in params  # k is rrf's alone
    assert params["candidates"] == 100  # max(default, depth)
    assert hybrid.run.meta["tag"].startswith("braid.tiny.train.hybrid.")
    assert "embed" in hybrid.latency and "sparse" in hybrid.latency
    comparisons = significance(results)
    assert {c.system for c in comparisons} == {"hybrid", "bm25", "dense"} - {
        comparisons[0].baseline
    }
    with pytest.raises(InvalidRequestError):
        execute_run(searcher, train, RunParams(mode="hybrid+rerank"))


def test_caching_embedder_changes_nothing_but_the_work(
    tiny_index: EvalIndex, tiny_dataset: Path
) -> None:
    engine = tiny_index.workspace.engine
    train = load_dataset(tiny_dataset, "train")
    cache = CachingEmbedder(engine.embedder)
    cached = HybridSearcher(cache, engine.dense, engine.sparse, None, engine.searcher.defaults)
    try:
        params = RunParams(mode="hybrid", depth=40)
        plain = execute_run(engine.searcher, train, params)
        once = execute_run(cached, train, params)
        twice = execute_run(cached, train, params)
    finally:
        cached.close()
    assert plain.ranking == once.ranking == twice.ranking
    assert (cache.misses, cache.hits) == (len(train.queries), len(train.queries))


class SpySearcher:
    """Records every query the sweep sends; the real searcher answers it."""

    def __init__(self, inner: HybridSearcher) -> None:
        self.inner = inner
        self.queries: list[str] = []
        self.embedder = inner.embedder
        self.reranker = inner.reranker
        self.defaults = inner.defaults

    def search(self, query: str, **kwargs: object) -> object:
        self.queries.append(query)
        return self.inner.search(query, **kwargs)  # type: ignore[arg-type]


def test_sweep_sees_only_the_train_split(tiny_index: EvalIndex, tiny_dataset: Path) -> None:
    spy = SpySearcher(tiny_index.workspace.engine.searcher)
    train = load_dataset(tiny_dataset, "train")
    grid = first_stage_grid(ks=(5, 60), shares=(0.5,), alphas=(0.5,), candidates=20)
    points = run_sweep(spy, train, grid=grid, candidates=(10, 20))  # type: ignore[arg-type]
    assert len(points) == 3 + 2  # 20 is already in the first stage
    assert set(spy.queries) == {QUERIES[q] for q in TRAIN}
    assert not set(spy.queries) & {QUERIES[q] for q in TEST}
    chosen = best(points)
    assert chosen.metrics["ndcg@10"] == max(p.metrics["ndcg@10"] for p in points)


def test_a_rerank_blend_is_part_of_the_run_tag_and_label() -> None:
    # A run at another blend is another run (its cached file must not be reused); at the
    # default 1 the recorded params, and so every earlier tag, stay as they were.
    pure = RunParams(mode="hybrid+rerank", rerank_depth=30, rerank_blend=1.0)
    half = RunParams(mode="hybrid+rerank", rerank_depth=30, rerank_blend=0.5)
    assert "rerank_blend" not in pure.as_dict()
    assert half.as_dict()["rerank_blend"] == 0.5
    assert half.label().endswith("rd=30 blend=0.5") and "blend" not in pure.label()
    meta = {"dataset": "d", "split": "test", "mode": "hybrid+rerank"}
    assert run_tag(meta | {"params": pure.as_dict()}) != run_tag(meta | {"params": half.as_dict()})


def test_caching_reranker_scores_each_head_once(tmp_path: Path) -> None:
    from braid.engine.reranker import CrossEncoderReranker

    folder = save_seeded_cross_encoder(tmp_path / "ce")
    cache = CachingReranker(CrossEncoderReranker(str(folder), device="cpu"))
    passages = ["Sourdough rises with wild yeast.", "Tides follow the moon."]
    first = cache.score("bread", passages)
    # the cross-encoder's own scores, computed apart
    assert first == pytest.approx(cross_encoder_predict(folder, [("bread", p) for p in passages]))
    first[0] = 99.0  # the caller's copy: the cache keeps its own
    again = cache.score("bread", passages)
    assert again[0] != 99.0 and (cache.hits, cache.misses) == (1, 1)
    cache.score("bread", passages[::-1])  # another head is scored anew
    assert (cache.hits, cache.misses) == (1, 2)
    assert cache.model_id == str(folder)
