"""Fine-tuning a sentence-transformers model on training pairs, with its own trainer.

``fit`` runs ``SentenceTransformerTrainer`` (no hand-written loop) with
``MultipleNegativesRankingLoss`` or ``CachedMultipleNegativesRankingLoss`` (GradCache: a large
batch of in-batch negatives in ``mini_batch``-sized forward passes), optionally inside
``MatryoshkaLoss``, and the NO_DUPLICATES batch sampler, so that no in-batch negative is a copy
of a batch's own positive. Mixed precision only on CUDA; torch threads are left as configured.

Checkpoints go to ``<folder>/checkpoints`` every ``save_every`` steps (the trainer's own:
weights, optimizer, scheduler, RNG and data position) and a run resumes from the last one. The
first Ctrl-C finishes the current step, checkpoints and returns with ``interrupted`` set (the
model so far is saved too); a second one stops at once.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from braid.engine.errors import InvalidRequestError
from braid.eval.embedder_pairs import TrainPair

if TYPE_CHECKING:
    import torch
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer

LossName = Literal["mnrl", "cached-mnrl"]
LOSS_CLASSES: dict[str, str] = {
    "mnrl": "MultipleNegativesRankingLoss",
    "cached-mnrl": "CachedMultipleNegativesRankingLoss",
}
CHECKPOINTS = "checkpoints"


@dataclass(frozen=True)
class EmbedderTrainConfig:
    """Everything that decides the trained model (``key`` ignores max_steps and save_every)."""

    base: str
    dataset: str | None = None
    split: str = "train"
    pairs_file: str | None = None
    self_supervised: bool = False
    loss: LossName = "mnrl"
    mini_batch: int = 32  # cached-mnrl: texts per forward pass
    matryoshka: tuple[int, ...] = ()
    # Each dimension's share of the Matryoshka loss (empty: equal shares, as
    # sentence-transformers' default); more on a small dimension keeps it closer to the full.
    matryoshka_weights: tuple[float, ...] = ()
    negatives: int = 1
    negative_margin: float | None = None  # the false-negative guard, off by default
    mining_depth: int = 20
    max_pairs: int = 10_000  # self-supervised pairs
    dev_fraction: float = 0.1
    epochs: float = 1.0
    batch_size: int = 32
    lr: float = 3e-5
    warmup: float = 0.1
    max_length: int = 256
    seed: int = 13
    max_steps: int | None = None
    save_every: int = 200
    gate_corpus: int = 20_000

    def key(self) -> str:
        decisive = {k: v for k, v in asdict(self).items() if k not in ("max_steps", "save_every")}
        return hashlib.sha256(json.dumps(decisive, sort_keys=True).encode()).hexdigest()[:12]


def build_loss(model: SentenceTransformer, config: EmbedderTrainConfig) -> torch.nn.Module:
    """The configured sentence-transformers loss, inside ``MatryoshkaLoss`` when dims are given.

    Raises:
        InvalidRequestError: a Matryoshka dimension is not within the model's dimension.
    """
    from sentence_transformers.sentence_transformer import losses

    loss: torch.nn.Module
    if config.loss == "cached-mnrl":
        loss = losses.CachedMultipleNegativesRankingLoss(model, mini_batch_size=config.mini_batch)
    else:
        loss = losses.MultipleNegativesRankingLoss(model)
    if not config.matryoshka:
        return loss
    dim = model.get_embedding_dimension() or 0
    if any(d <= 0 or d > dim for d in config.matryoshka):
        raise InvalidRequestError(
            f"--matryoshka dimensions must lie in 1..{dim} (the model's dimension)"
        )
    weights = list(config.matryoshka_weights) or None
    if weights is not None and (
        len(weights) != len(config.matryoshka) or any(w <= 0 for w in weights)
    ):
        raise InvalidRequestError(
            "--matryoshka-weights takes one positive weight per --matryoshka dimension"
        )
    return losses.MatryoshkaLoss(model, loss, list(config.matryoshka), weights)


def loss_description(config: EmbedderTrainConfig) -> dict[str, object]:
    return {
        "name": config.loss,
        "class": LOSS_CLASSES[config.loss],
        "mini_batch": config.mini_batch if config.loss == "cached-mnrl" else None,
        "matryoshka_dims": list(config.matryoshka) or None,
        "matryoshka_weights": list(config.matryoshka_weights) or None,
    }


def to_datasets(
    pairs: Sequence[TrainPair], query_prefix: str = "", passage_prefix: str = ""
) -> Any:
    """A ``datasets.Dataset`` (anchor, positive, negative_1..n), or a ``DatasetDict`` with one
    dataset per negative count when pairs differ in it (the trainer draws each batch from one).
    """
    from datasets import Dataset as HFDataset  # type: ignore[import-untyped]
    from datasets import DatasetDict

    by_count: dict[int, list[TrainPair]] = {}
    for pair in pairs:
        by_count.setdefault(len(pair.negatives), []).append(pair)
    parts = {}
    for count, group in sorted(by_count.items()):
        columns = {
            "anchor": [query_prefix + p.query for p in group],
            "positive": [passage_prefix + p.positive for p in group],
        }
        for i in range(count):
            columns[f"negative_{i + 1}"] = [passage_prefix + p.negatives[i] for p in group]
        parts[f"negatives_{count}"] = HFDataset.from_dict(columns)
    return next(iter(parts.values())) if len(parts) == 1 else DatasetDict(parts)


@dataclass
class TrainOutcome:
    steps: int = 0
    total_steps: int = 0
    seconds: float = 0.0
    losses: list[float] = field(default_factory=list)
    interrupted: bool = False
    resumed_at: int | None = None  # the checkpoint's step, when resumed


@contextmanager
def _sigint_requests_stop() -> Iterator[threading.Event]:
    """While inside, the first Ctrl-C sets the event (the training stops after the current
    step); the previous handler is back for a second one."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop  # signals reach only the main thread
        return
    previous = signal.getsignal(signal.SIGINT)

    def request_stop(signum: int, frame: object) -> None:
        del signum, frame
        stop.set()
        signal.signal(signal.SIGINT, previous)

    signal.signal(signal.SIGINT, request_stop)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def _callback(stop: threading.Event, on_step: Callable[[int, int], None] | None) -> Any:
    from transformers import TrainerCallback

    class Control(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            del args, kwargs
            if on_step is not None:
                on_step(state.global_step, state.max_steps)
            if stop.is_set():
                control.should_save = True  # the checkpoint a --resume continues from
                control.should_training_stop = True
            return control

    return Control()


def _trainer_class() -> type[SentenceTransformerTrainer]:
    from sentence_transformers import SentenceTransformerTrainer

    class Trainer(SentenceTransformerTrainer):
        def add_model_card_callback(self, default_args_dict: dict[str, Any]) -> None:
            # braid writes its own card: skip sentence-transformers' (it samples the data
            # for widget examples and draws a progress bar doing it)
            del default_args_dict

    return Trainer


def _step_of(checkpoint: Path) -> int:
    suffix = checkpoint.name.rsplit("-", 1)[-1]
    return int(suffix) if suffix.isdigit() else -1


def last_checkpoint(folder: Path) -> Path | None:
    """The trainer's newest complete ``checkpoint-<step>`` under ``folder``, if any."""
    done = [p for p in folder.glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
    return max(done, key=_step_of, default=None)


def fit(
    pairs: Sequence[TrainPair],
    config: EmbedderTrainConfig,
    folder: Path,
    *,
    device: str = "cpu",
    query_prefix: str = "",
    passage_prefix: str = "",
    resume: bool = False,
    on_step: Callable[[int, int], None] | None = None,
) -> TrainOutcome:
    """Fine-tune ``config.base`` on ``pairs`` with sentence-transformers' trainer and save the
    model (complete or interrupted) into ``folder``; ``resume`` continues from the last
    checkpoint in ``folder/checkpoints`` (from the start when there is none).

    Raises:
        InvalidRequestError: a Matryoshka dimension exceeds the model's.
    """
    import torch
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers
    from transformers import PrinterCallback

    from braid.engine.devices import quiet_model_loading
    from braid.engine.model_files import resolve_model_path

    quiet_model_loading()
    model = SentenceTransformer(resolve_model_path(config.base), device=device)
    deployed_length = model.max_seq_length
    model.max_seq_length = config.max_length
    checkpoints = folder / CHECKPOINTS
    last = last_checkpoint(checkpoints) if resume else None
    if not resume:
        shutil.rmtree(checkpoints, ignore_errors=True)  # a fresh run never continues old ones
    cuda = device.startswith("cuda")
    bf16 = cuda and torch.cuda.is_bf16_supported()
    args = SentenceTransformerTrainingArguments(
        output_dir=str(checkpoints),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.lr,
        warmup_steps=config.warmup,  # a float below 1: a share of the steps
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        seed=config.seed,
        data_seed=config.seed,
        save_strategy="steps",
        save_steps=config.save_every,
        save_total_limit=1,
        logging_steps=1,
        report_to="none",
        disable_tqdm=True,  # the caller draws progress from on_step
        use_cpu=not cuda,
        bf16=bf16,
        fp16=cuda and not bf16,
        dataloader_pin_memory=cuda,
    )
    with _sigint_requests_stop() as stop:
        trainer = _trainer_class()(
            model=model,
            args=args,
            train_dataset=to_datasets(pairs, query_prefix, passage_prefix),
            loss=build_loss(model, config),
            callbacks=[_callback(stop, on_step)],
        )
        trainer.remove_callback(PrinterCallback)  # it prints every log line on stdout
        started = time.perf_counter()
        interrupted = False
        try:
            trainer.train(resume_from_checkpoint=str(last) if last else None)
        except KeyboardInterrupt:  # off the main thread, or a second Ctrl-C
            interrupted = True
    state = trainer.state
    # a Ctrl-C that came after the last step stopped nothing
    interrupted = interrupted or (stop.is_set() and state.global_step < state.max_steps)
    # Trained at --max-length for speed; saved with the base's limit, which is what chunking
    # measures with, so a re-index with this model cuts the corpus as before.
    model.max_seq_length = deployed_length
    model.save(str(folder), create_model_card=False)
    if not interrupted:
        shutil.rmtree(checkpoints, ignore_errors=True)
    return TrainOutcome(
        steps=int(state.global_step),
        total_steps=int(state.max_steps),
        seconds=round(time.perf_counter() - started, 2),
        losses=[round(float(e["loss"]), 5) for e in state.log_history if "loss" in e],
        interrupted=interrupted,
        resumed_at=_step_of(last) if last else None,
    )
