"""The reranker's mine -> train -> gate -> write flow (``braid train reranker``).

``plan_training`` holds the dev queries out and finds the output folder (resuming an unfinished
run of the same configuration); ``train_and_gate`` mines hard negatives from the dataset's own
index, fine-tunes the CrossEncoder (``eval.training``), and gates it: first-stage hybrid against
hybrid + the new model on the held-out dev queries. ``gate`` is the decision alone: the model is
recommended (a ``<dataset>-rerank`` profile naming it is written) only when its nDCG@10 gain on
dev is positive and the paired randomisation test does not put it down to chance.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from braid.engine.config import Settings
from braid.engine.errors import InvalidRequestError
from braid.engine.profiles import save_profile
from braid.engine.searcher import HybridSearcher
from braid.eval.caching import CachingReranker, caching_searcher
from braid.eval.datasets import Dataset, iter_corpus
from braid.eval.evaluation import evaluate_mode
from braid.eval.indexes import EvalIndex, open_with_progress
from braid.eval.metrics import PRIMARY, mean
from braid.eval.progress import StageProgress, silent
from braid.eval.runs import RunParams
from braid.eval.stats import compare
from braid.eval.training import (
    STATE_FILE,
    Group,
    TrainConfig,
    TrainState,
    created_now,
    find_unfinished,
    load_groups,
    mine_labelled,
    mine_titles,
    next_version_dir,
    save_groups,
    split_dev,
    train_cross_encoder,
    write_card,
)

GROUPS_FILE = "groups.jsonl"


# Shares of the cross-encoder the gate reports on dev besides the one it judges: information
# for the user, never a choice made on the queries that also judge it.
REPORTED_BLENDS = (0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class GateResult:
    """First stage vs reranked nDCG@10 on the dev queries, and the verdict.

    ``blend`` is the cross-encoder's share of the reranked score the gate judged
    (``engine.fusion.blend_rerank``); ``by_blend`` is dev nDCG@10 at each reported share.
    """

    queries: int
    rerank_depth: int
    first_stage: float
    reranked: float
    delta: float
    p_randomisation: float
    required_p: float
    passed: bool
    blend: float = 1.0
    by_blend: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def gate(
    first_stage: Mapping[str, float],
    reranked: Mapping[str, float],
    *,
    rerank_depth: int,
    required_p: float = 0.05,
    blend: float = 1.0,
    by_blend: Mapping[str, float] | None = None,
) -> GateResult:
    """The gate's decision from per-query nDCG@10 of the first stage and of the reranked run.

    "Beats the first stage" means a positive mean gain that the paired randomisation test
    (two-sided, ``stats.randomisation_test``) does not put down to chance at ``required_p``.
    """
    test = compare("hybrid+rerank", "hybrid", PRIMARY, reranked, first_stage)
    return GateResult(
        queries=len(first_stage),
        rerank_depth=rerank_depth,
        first_stage=mean(first_stage),
        reranked=mean(reranked),
        delta=test.delta,
        p_randomisation=test.p_randomisation,
        required_p=required_p,
        passed=test.delta > 0 and test.p_randomisation < required_p,
        blend=blend,
        by_blend=dict(by_blend or {}),
    )


@dataclass(frozen=True)
class TrainingData:
    labelled: int  # groups from judged (query, document) pairs
    title: int  # self-supervised title -> abstract groups
    train_queries: int
    dev_queries: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class TrainingPlan:
    """What will be trained where: the config, the train/dev split, the output folder."""

    config: TrainConfig
    labelled: Dataset
    train: Dataset
    dev: Dataset
    out_dir: Path
    resumed: bool


def plan_training(labelled: Dataset, config: TrainConfig, data_dir: Path) -> TrainingPlan:
    """Hold out the dev queries and choose the output folder (an unfinished run of the same
    config is resumed; otherwise the next ``<dataset>-v<N>``).

    Raises:
        InvalidRequestError: no query falls into the dev split.
    """
    train, dev = split_dev(labelled, config.dev_fraction, config.seed)
    if not dev.queries:
        raise InvalidRequestError("the dev split is empty: raise --dev-fraction")
    resumed = find_unfinished(data_dir, config)
    out_dir = resumed or next_version_dir(data_dir, labelled.name)
    return TrainingPlan(config, labelled, train, dev, out_dir, resumed is not None)


@dataclass
class TrainingRecord:
    """A trained model, how it was trained and whether it passed the gate; ``as_dict`` is
    ``training.json``, ``summary`` the ``--json`` output of ``braid train reranker``."""

    model: Path
    resumed: bool
    config: TrainConfig
    created: str
    device: str
    index: dict[str, object]
    data: TrainingData
    state: TrainState | None = None
    gate: GateResult | None = None
    profile: str | None = None  # written only when the gate passed

    def as_dict(self) -> dict[str, object]:
        record: dict[str, object] = {
            "config": asdict(self.config),
            "config_key": self.config.key(),
            "created": self.created,
            "device": self.device,
            "index": self.index,
            "data": self.data.as_dict(),
        }
        if self.state is not None:
            record["state"] = asdict(self.state)
        if self.gate is not None:
            record["gate"] = self.gate.as_dict()
        if self.profile is not None:
            record["profile"] = self.profile
        return record

    def summary(self) -> dict[str, object]:
        return {
            "model": str(self.model),
            "resumed": self.resumed,
            "steps": self.state.step if self.state else 0,
            "data": self.data.as_dict(),
            "gate": self.gate.as_dict() if self.gate else None,
            "profile": self.profile,
        }


def mine_groups(
    index: EvalIndex, plan: TrainingPlan, folder: Path, progress: StageProgress = silent
) -> list[Group]:
    """Labelled and title groups with hard negatives from the index (reused when saved)."""
    groups_file = plan.out_dir / GROUPS_FILE
    if groups_file.is_file():
        return load_groups(groups_file)
    config = plan.config
    engine = index.workspace.engine
    # A labelled query is searched three ways (dense, BM25, hybrid): encode it once.
    searcher = caching_searcher(engine)
    corpus = {d.doc_id: d for d in iter_corpus(folder)}
    try:
        with progress("mine negatives") as tick:
            tick(0, 2)
            groups = mine_labelled(
                searcher, plan.train, corpus, config.negatives, config.mining_depth
            )
            tick(1, 2)
            groups += mine_titles(
                searcher,
                corpus,
                config.self_supervised,
                config.negatives,
                config.mining_depth,
                config.seed,
            )
            tick(2, 2)
    finally:
        searcher.close()
    save_groups(groups_file, groups)
    return groups


def gate_model(
    index: EvalIndex,
    model_dir: Path,
    dev: Dataset,
    settings: Settings,
    *,
    device: str,
    max_length: int,
    rerank_depth: int,
    required_p: float,
    blend: float = 1.0,
    progress: StageProgress = silent,
) -> GateResult:
    """Hybrid vs hybrid + the model in ``model_dir`` on ``dev``, through the product's searcher,
    judged at ``blend`` (the cross-encoder's share of the reranked score) and reported at
    ``REPORTED_BLENDS`` too."""
    from braid.engine.reranker import CrossEncoderReranker

    engine = index.workspace.engine
    reranker = CrossEncoderReranker(
        str(model_dir),
        device=device,
        cpu_threads=settings.embedder.cpu_threads,
        max_length=max_length,
        batch_size=settings.reranker.batch_size,
    )
    searcher = HybridSearcher(
        engine.embedder,
        engine.dense,
        engine.sparse,
        CachingReranker(reranker),
        engine.searcher.defaults,
    )
    shares = sorted({blend, *REPORTED_BLENDS})
    try:
        with progress("gate") as tick:
            first = evaluate_mode(searcher, dev, RunParams(mode="hybrid"), on_query=tick)
            reranked = {
                share: evaluate_mode(
                    searcher,
                    dev,
                    RunParams(mode="hybrid+rerank", rerank_depth=rerank_depth, rerank_blend=share),
                    on_query=tick,
                ).scores[PRIMARY]
                for share in shares
            }
    finally:
        searcher.close()
    return gate(
        first.scores[PRIMARY],
        reranked[blend],
        rerank_depth=rerank_depth,
        required_p=required_p,
        blend=blend,
        by_blend={f"{share:g}": mean(reranked[share]) for share in shares},
    )


def train_and_gate(
    plan: TrainingPlan,
    folder: Path,
    settings: Settings,
    *,
    device: str,
    gate_p: float = 0.05,
    blend: float = 1.0,
    index_dir: Path | None = None,
    progress: StageProgress = silent,
) -> TrainingRecord:
    """Mine, train (resuming), gate on dev; write ``training.json``, the card and, when the
    gate passes, the ``<dataset>-rerank`` profile under ``settings.data_dir``. ``gate_p`` is
    the randomisation p the dev gain must beat and ``blend`` the cross-encoder's share of the
    reranked score the gate judges (neither is part of the config: they decide nothing that
    is trained).

    Raises:
        BraidError: the index cannot be opened, or a search fails.
    """
    config = plan.config
    index = open_with_progress(folder, settings, index_dir, progress=progress)
    try:
        # Only once the index opened: a refused index (another model's, say) leaves no folder.
        plan.out_dir.mkdir(parents=True, exist_ok=True)
        groups = mine_groups(index, plan, folder, progress)
        record = TrainingRecord(
            model=plan.out_dir,
            resumed=plan.resumed,
            config=config,
            created=created_now(),
            device=device,
            index=index.state,
            data=TrainingData(
                labelled=sum(g.source == "labelled" for g in groups),
                title=sum(g.source == "title" for g in groups),
                train_queries=len(plan.train.queries),
                dev_queries=len(plan.dev.queries),
            ),
        )
        with progress("train") as tick:
            record.state = train_cross_encoder(
                groups,
                config,
                plan.out_dir,
                device=device,
                on_step=lambda step, total, _loss: tick(step, total),
                record=record.as_dict(),  # checkpoints carry it (find_unfinished reads it)
            )
        record.gate = gate_model(
            index,
            plan.out_dir,
            plan.dev,
            settings,
            device=device,
            max_length=config.max_length,
            rerank_depth=config.gate_rerank_depth,
            required_p=gate_p,
            blend=blend,
            progress=progress,
        )
        if record.gate.passed:
            record.profile = f"{plan.labelled.name}-rerank"
            save_profile(
                settings.data_dir,
                record.profile,
                {
                    "reranker_model": str(plan.out_dir.resolve()),
                    "rerank_depth": config.gate_rerank_depth,
                    "rerank_blend": blend,
                    "tuned_on": {
                        "dataset": plan.labelled.name,
                        "split": plan.dev.split,
                        "gate": record.gate.as_dict(),
                    },
                },
            )
        document = record.as_dict()
        (plan.out_dir / STATE_FILE).write_text(json.dumps(document, indent=1, default=str) + "\n")
        write_card(plan.out_dir, document)
        return record
    finally:
        index.close()
