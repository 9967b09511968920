"""Fine-tune the embedding model on the user's corpus (``braid train embedder``).

Flow (``train_embedder``): pairs (``eval.embedder_pairs``: labelled, a JSONL file, or
self-supervised from the indexed chunks) -> a dev split by group -> hard negatives from the
index (a dataset's own index, else the data dir), with the false-negative guard -> training
(``eval.embedder_fit``) -> the gate (``eval.embedder_gate``) -> a SentenceTransformer folder
(``SentenceTransformer(path)`` loads it) with ``braid-model-card.json`` and a ``README.md``
card. Judging the model through the real query path takes a re-index
(``braid reindex --model``) and ``braid eval compare``: the record lists those next steps.

``<out>/pairs.jsonl`` keeps the mined pairs and ``<out>/braid-run.json`` the run's options and
status, so that ``resume`` continues an interrupted run on exactly the same data.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from braid.engine.config import Settings
from braid.engine.errors import InvalidRequestError
from braid.engine.models import ModelInfo
from braid.eval.datasets import CorpusDoc, Dataset, iter_corpus
from braid.eval.embedder_fit import (
    LOSS_CLASSES,
    EmbedderTrainConfig,
    TrainOutcome,
    fit,
    loss_description,
)
from braid.eval.embedder_gate import (
    Distractor,
    EmbedderGate,
    gate_models,
    gate_pairs,
    gate_set,
)
from braid.eval.embedder_pairs import (
    MiningStats,
    TrainPair,
    count_by_source,
    labelled_pairs,
    load_pairs,
    mine_negatives,
    read_pairs_file,
    save_pairs,
    self_supervised_pairs,
    split_dev,
)
from braid.eval.indexes import index_state, open_with_progress
from braid.eval.metrics import PRIMARY
from braid.eval.progress import StageProgress, silent
from braid.eval.training import created_now, passage
from braid.ingestion.service import Workspace, open_workspace

if TYPE_CHECKING:
    from braid.engine.embedder import SentenceTransformerEmbedder

CARD_FILE = "braid-model-card.json"
RUN_FILE = "braid-run.json"  # options and status while training (resume reads it)
PAIRS_FILE = "pairs.jsonl"
ROLE = "braid train embedder"


def default_out_dir(data_dir: Path, base: str, now: datetime | None = None) -> Path:
    """``<data_dir>/models/<base-name>-ft-<UTC timestamp>``."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    return data_dir / "models" / f"{base.rstrip('/').rsplit('/', 1)[-1]}-ft-{stamp}"


def find_unfinished(data_dir: Path, config: EmbedderTrainConfig) -> Path | None:
    """The newest ``<base-name>-ft-*`` folder whose run of this config did not finish."""
    root = default_out_dir(data_dir, config.base).parent
    prefix = default_out_dir(data_dir, config.base).name.rsplit("-ft-", 1)[0]
    for folder in sorted(root.glob(f"{prefix}-ft-*"), key=lambda p: p.name, reverse=True):
        run = _read_json(folder / RUN_FILE)
        if run.get("config_key") == config.key() and run.get("status") != "complete":
            return folder
    return None


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    loaded = json.loads(path.read_text(encoding="utf-8"))
    return loaded if isinstance(loaded, dict) else {}


def _write_json(path: Path, payload: Mapping[str, object]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=1, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)


@dataclass(frozen=True)
class TrainingData:
    """Pair counts by source (dev included), the split, and what mining did."""

    sources: dict[str, int]
    train_pairs: int
    dev_pairs: int
    dev_queries: int
    mining: MiningStats

    def as_dict(self) -> dict[str, object]:
        return {
            "sources": self.sources,
            "train_pairs": self.train_pairs,
            "dev_pairs": self.dev_pairs,
            "dev_queries": self.dev_queries,
            "negatives_mined": self.mining.mined,
            "negatives_guarded": self.mining.guarded,
            "pairs_short_of_negatives": self.mining.short,
        }


@dataclass
class EmbedderTrainingRecord:
    """A trained embedder and how it came about: ``as_dict`` is ``braid-model-card.json``,
    ``summary`` the ``--json`` output of ``braid train embedder``."""

    out: Path
    config: EmbedderTrainConfig
    created: str
    device: str
    base: ModelInfo
    index: Mapping[str, object]
    data: TrainingData
    resumed: bool = False
    outcome: TrainOutcome | None = None
    model: ModelInfo | None = None
    gate: EmbedderGate | None = None

    @property
    def status(self) -> str:
        if self.outcome is None:
            return "training"
        return "interrupted" if self.outcome.interrupted else "complete"

    def next_steps(self) -> list[str]:
        if self.outcome is None or self.outcome.interrupted:
            return [f"braid train embedder --resume --out {self.out} (same options)"]
        steps = [f"braid reindex --model {self.out}   # then braid promote <collection>"]
        if self.config.dataset:
            # Side B gets its own evaluation index, built on first use.
            steps.append(
                f"braid eval compare {self.config.dataset} --model-a {self.base.model_id} "
                f"--model-b {self.out}"
            )
        return steps

    def as_dict(self) -> dict[str, object]:
        outcome = self.outcome or TrainOutcome()
        return {
            "status": self.status,
            "created": self.created,
            "base": asdict(self.base),
            "model": asdict(self.model) if self.model else None,
            "data": self.data.as_dict(),
            "loss": loss_description(self.config),
            "hyperparameters": asdict(self.config),
            "config_key": self.config.key(),
            "device": self.device,
            "index": dict(self.index),
            "resumed": self.resumed,
            "steps": outcome.steps,
            "total_steps": outcome.total_steps,
            "seconds": outcome.seconds,
            "losses": outcome.losses,
            "gate": self.gate.as_dict() if self.gate else None,
            "next_steps": self.next_steps(),
        }

    def summary(self) -> dict[str, object]:
        outcome = self.outcome or TrainOutcome()
        return {
            "out": str(self.out),
            "status": self.status,
            "resumed": self.resumed,
            "pairs": self.data.as_dict(),
            "steps": outcome.steps,
            "total_steps": outcome.total_steps,
            "seconds": outcome.seconds,
            "gate": self.gate.as_dict() if self.gate else None,
            "next_steps": self.next_steps(),
        }


def write_card(folder: Path, record: EmbedderTrainingRecord) -> None:
    """``braid-model-card.json`` and the ``README.md`` card beside the weights."""
    doc = record.as_dict()
    _write_json(folder / CARD_FILE, doc)
    cfg, data = record.config, record.data
    sources = ", ".join(f"{n} {s}" for s, n in data.sources.items() if n)
    lines = [
        f"# {folder.name}",
        "",
        f"Fine-tuned by `braid train embedder` ({doc['status']}, {record.created}).",
        "",
        f"- base: `{record.base.model_id}` (weights {record.base.version}, dim {record.base.dim})",
        f"- pairs: {sources}; {data.train_pairs} train, {data.dev_pairs} dev "
        f"({data.dev_queries} queries); {data.mining.mined} hard negatives mined from "
        f"braid's dense and BM25 top {cfg.mining_depth}, "
        + (
            f"{data.mining.guarded} refused by the false-negative guard "
            f"(>= {cfg.negative_margin} x the positive's score)"
            if cfg.negative_margin is not None
            else "no false-negative guard"
        ),
        f"- loss: {LOSS_CLASSES[cfg.loss]}"
        + (f" in MatryoshkaLoss {list(cfg.matryoshka)}" if cfg.matryoshka else "")
        + f"; batch {cfg.batch_size} (NO_DUPLICATES), lr {cfg.lr}, warmup {cfg.warmup:.0%}, "
        f"max_length {cfg.max_length}, {cfg.epochs:g} epochs, seed {cfg.seed}",
        f"- steps: {doc['steps']} of {doc['total_steps']}, {doc['seconds']} s on {record.device}",
    ]
    if record.gate:
        g = record.gate
        lines.append(
            f"- gate on {g.queries} {'judged' if g.judged else 'self-supervised'} dev queries "
            f"over {g.corpus} passages (exact search): "
            f"nDCG@10 {g.base[PRIMARY]:.4f} -> {g.fine_tuned[PRIMARY]:.4f}, MRR@10 "
            f"{g.base['mrr@10']:.4f} -> {g.fine_tuned['mrr@10']:.4f}: **{g.verdict}** ({g.reason})"
        )
    lines += ["", "Next:", "", *(f"    {step}" for step in record.next_steps())]
    (folder / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


@contextmanager
def _source_index(
    settings: Settings, folder: Path | None, index_dir: Path | None, progress: StageProgress
) -> Iterator[tuple[Workspace, dict[str, object]]]:
    """The dataset's own index (ingested on first use), else the data dir itself."""
    if folder is not None:
        index = open_with_progress(folder, settings, index_dir, progress=progress, role=ROLE)
        try:
            yield index.workspace, index.state
        finally:
            index.close()
        return
    workspace = open_workspace(settings, role=ROLE)
    try:
        yield workspace, index_state(workspace)
    finally:
        workspace.close()


def _pairs(
    config: EmbedderTrainConfig,
    workspace: Workspace,
    labelled: Dataset | None,
    corpus: Mapping[str, CorpusDoc],
    given: list[TrainPair],
) -> list[TrainPair]:
    """Labelled and given pairs; self-supervised ones when asked for or when there are none."""
    pairs = labelled_pairs(labelled, corpus) if labelled is not None else []
    pairs += given
    if config.self_supervised or not pairs:
        chunks = workspace.engine.sparse.chunks()
        pairs += self_supervised_pairs(chunks, seed=config.seed, max_pairs=config.max_pairs)
    if not pairs:
        raise InvalidRequestError("no training pairs: the index holds no usable chunks")
    return pairs


def _distractors(workspace: Workspace, corpus: Mapping[str, CorpusDoc]) -> Iterator[Distractor]:
    """Corpus documents as the dataset has them, else the indexed chunks (title\ntext)."""
    if corpus:
        yield from (Distractor(d, d, passage(doc)) for d, doc in corpus.items())
        return
    for c in workspace.engine.sparse.chunks():
        text = f"{c.title}\n{c.text}" if c.title else c.text
        yield Distractor(c.chunk_id, c.doc_id, text)


def _output_folder(
    config: EmbedderTrainConfig, data_dir: Path, out_dir: Path | None, resume: bool
) -> tuple[Path, dict[str, Any]]:
    """The model folder and, when resuming, what its run saved.

    Raises:
        InvalidRequestError: nothing to resume, or a fresh run into a folder holding one.
    """
    if not resume:
        if out_dir is not None and (out_dir / RUN_FILE).is_file():
            raise InvalidRequestError(
                f"{out_dir} already holds a training run: pass --resume, or another --out"
            )
        return out_dir or default_out_dir(data_dir, config.base), {}
    folder = out_dir or find_unfinished(data_dir, config)
    saved = _read_json(folder / RUN_FILE) if folder else {}
    if folder is None or saved.get("config_key") != config.key():
        where = folder or default_out_dir(data_dir, config.base).parent
        raise InvalidRequestError(
            f"nothing to resume: {where} holds no unfinished run of these options"
        )
    return folder, saved


def _mine(
    pairs: list[TrainPair],
    workspace: Workspace,
    config: EmbedderTrainConfig,
    corpus: Mapping[str, CorpusDoc],
    progress: StageProgress,
) -> tuple[list[TrainPair], MiningStats]:
    with progress("mine negatives") as tick:
        return mine_negatives(
            pairs,
            workspace.engine.searcher,
            workspace.engine.embedder,
            count=config.negatives,
            margin=config.negative_margin,
            depth=config.mining_depth,
            corpus=corpus,
            on_pair=tick,
        )


def _saved_stats(saved: Mapping[str, Any]) -> MiningStats:
    data = saved["data"]
    return MiningStats(
        data["negatives_mined"], data["negatives_guarded"], data["pairs_short_of_negatives"]
    )


def _load_tuned(folder: Path, settings: Settings, device: str) -> SentenceTransformerEmbedder:
    from braid.engine.embedder import SentenceTransformerEmbedder

    emb = settings.embedder
    return SentenceTransformerEmbedder(
        str(folder),
        device=device,
        cpu_threads=emb.cpu_threads,
        query_prefix=emb.query_prefix,
        passage_prefix=emb.passage_prefix,
        batch_size=emb.batch_size,
        max_seq_length=emb.max_seq_length,
    )


def train_embedder(
    config: EmbedderTrainConfig,
    settings: Settings,
    *,
    dataset_folder: Path | None = None,
    labelled: Dataset | None = None,
    out_dir: Path | None = None,
    resume: bool = False,
    alpha: float = 0.05,
    device: str = "cpu",
    index_dir: Path | None = None,
    progress: StageProgress = silent,
) -> EmbedderTrainingRecord:
    """Pairs -> dev split -> negatives -> training -> gate -> model folder with its cards.

    Args:
        config: what to train; ``config.base`` is the data dir's embedding model.
        settings: the main settings (prefixes, devices, the data dir for the output).
        dataset_folder: a dataset whose own index supplies chunks and negatives (else the
            data dir's index).
        labelled: the dataset's labelled split, when it has one.
        out_dir: the model folder (default ``<data_dir>/models/<base>-ft-<timestamp>``).
        resume: continue the unfinished run in ``out_dir`` (default: the newest one of this
            config) on its saved pairs, from its last checkpoint.
        alpha: the gate's significance level.

    Raises:
        BraidError: the pairs file is malformed, the index cannot be opened, or the options
            are inconsistent (nothing to resume, no pairs, a dev split that takes them all).
    """
    out, saved = _output_folder(config, settings.data_dir, out_dir, resume)
    reuse = bool(saved) and (out / PAIRS_FILE).is_file()
    # Read the file before opening (and perhaps ingesting) anything: a bad line fails fast.
    given = read_pairs_file(Path(config.pairs_file)) if config.pairs_file and not reuse else []
    emb = settings.embedder
    with _source_index(settings, dataset_folder, index_dir, progress) as (workspace, state):
        corpus = {d.doc_id: d for d in iter_corpus(dataset_folder)} if dataset_folder else {}
        out.mkdir(parents=True, exist_ok=True)
        if reuse:
            pairs, stats = load_pairs(out / PAIRS_FILE), _saved_stats(saved)
        else:
            found = _pairs(config, workspace, labelled, corpus, given)
            pairs, stats = _mine(found, workspace, config, corpus, progress)
            save_pairs(out / PAIRS_FILE, pairs)
        train, dev = split_dev(pairs, config.dev_fraction, config.seed)
        if not train:
            raise InvalidRequestError("every pair fell into the dev split: lower --dev-fraction")
        record = EmbedderTrainingRecord(
            out=out,
            config=config,
            created=created_now(),
            device=device,
            base=workspace.engine.embedder.info,
            index=state,
            resumed=resume,
            data=TrainingData(
                sources=count_by_source(pairs),
                train_pairs=len(train),
                dev_pairs=len(dev),
                dev_queries=len({p.query for p in dev}),
                mining=stats,
            ),
        )
        _write_json(out / RUN_FILE, record.as_dict())
        with progress("train") as tick:
            record.outcome = fit(
                train,
                config,
                out,
                device=device,
                query_prefix=emb.query_prefix,
                passage_prefix=emb.passage_prefix,
                resume=resume,
                on_step=tick,
            )
        # a resumed run's time includes the sessions before it
        record.outcome.seconds = round(record.outcome.seconds + float(saved.get("seconds", 0)), 2)
        tuned = _load_tuned(out, settings, device)
        record.model = ModelInfo(str(out), tuned.info.version, tuned.info.dim)
        if not record.outcome.interrupted:
            with progress("gate") as tick:
                tick(0, 1)
                judge_on, judged = gate_pairs(dev)
                gate = gate_set(
                    judge_on,
                    _distractors(workspace, corpus),
                    limit=config.gate_corpus,
                    seed=config.seed,
                )
                record.gate = gate_models(
                    workspace.engine.embedder, tuned, gate, alpha=alpha, judged=judged
                )
                tick(1, 1)
    _write_json(out / RUN_FILE, record.as_dict())
    write_card(out, record)
    return record
