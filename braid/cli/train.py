"""``braid train reranker``: fine-tune a CrossEncoder on our own hard negatives, gate it on dev.
``braid train embedder``: fine-tune the embedding model on the corpus, gate it on dev.
``braid train pca``: a smaller embedding model from the index's own vectors (no training).

Thin wrappers over ``braid.eval.finetune`` and ``braid.eval.embedder_training``; torch and the
models load inside the commands.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from braid.cli.common import (
    DataDirOption,
    ExitCode,
    JsonOption,
    console,
    emit_json,
    exit_on_error,
    fail,
    load_settings,
    out,
    require_index,
)
from braid.cli.eval import DatasetsOption, IndexDirOption, read_split, stage_progress

if TYPE_CHECKING:
    from braid.eval.embedder_training import EmbedderTrainingRecord
    from braid.eval.finetune import TrainingRecord

T = TypeVar("T")
train_app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)


@train_app.command("reranker")
def train_reranker_command(
    dataset: Annotated[str, typer.Option("--dataset", help="dataset folder (BEIR layout) or name")],
    split: Annotated[str, typer.Option(help="split with the training labels")] = "train",
    base: Annotated[
        str, typer.Option(help="starting weights (default: the bundled MiniLM)")
    ] = "sentence-transformers/all-MiniLM-L6-v2",
    negatives: Annotated[int, typer.Option(min=1, help="hard negatives per positive")] = 4,
    self_supervised: Annotated[
        int, typer.Option(min=0, help="title -> abstract groups from the corpus")
    ] = 2000,
    epochs: Annotated[float, typer.Option(min=0.01)] = 1.0,
    batch_groups: Annotated[int, typer.Option(min=1, help="groups per optimiser step")] = 4,
    lr: Annotated[float, typer.Option(help="peak learning rate")] = 5e-5,
    head_lr_scale: Annotated[
        float, typer.Option(help="learning-rate multiplier of the new classification head")
    ] = 20.0,
    max_length: Annotated[int, typer.Option(min=16, help="tokens per (query, passage) pair")] = 256,
    max_steps: Annotated[int | None, typer.Option(min=1, help="stop after N steps")] = None,
    save_every: Annotated[int, typer.Option(min=1, help="checkpoint every N steps")] = 50,
    dev_fraction: Annotated[float, typer.Option(help="train queries held out for the gate")] = 0.1,
    gate_depth: Annotated[int, typer.Option(min=1, help="rerank depth of the gate")] = 30,
    gate_p: Annotated[
        float,
        typer.Option(help="the gain on dev must be significant at this level (randomisation)"),
    ] = 0.05,
    blend: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="the cross-encoder's share of a reranked score the gate judges (the rest: "
            "the first stage's); 1 = the cross-encoder alone",
        ),
    ] = 1.0,
    distill: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="share of the loss that follows the first stage's fused scores (distillation; "
            "0 = labels only)",
        ),
    ] = 0.0,
    distill_temperature: Annotated[
        float, typer.Option(min=0.001, help="softmax temperature of the first stage's scores")
    ] = 0.1,
    seed: Annotated[int, typer.Option()] = 13,
    data_dir: DataDirOption = None,
    index_dir: IndexDirOption = None,
    datasets: DatasetsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Fine-tune a CrossEncoder with hard negatives from our own index; gate it on held-out dev."""
    from braid.engine.devices import resolve_device
    from braid.eval.finetune import plan_training, train_and_gate
    from braid.eval.training import TrainConfig

    settings = load_settings(data_dir)
    folder, labelled = read_split(dataset, datasets, split)
    config = TrainConfig(
        base=base,
        dataset=labelled.name,
        split=split,
        negatives=negatives,
        self_supervised=self_supervised,
        dev_fraction=dev_fraction,
        epochs=epochs,
        batch_groups=batch_groups,
        lr=lr,
        max_length=max_length,
        seed=seed,
        max_steps=max_steps,
        save_every=save_every,
        gate_rerank_depth=gate_depth,
        head_lr_scale=head_lr_scale,
        distill=distill,
        distill_temperature=distill_temperature,
    )
    with exit_on_error(ExitCode.USAGE):
        device = resolve_device(settings.reranker.device)
        plan = plan_training(labelled, config, settings.data_dir)
    with exit_on_error():
        record = train_and_gate(
            plan,
            folder,
            settings,
            device=device,
            gate_p=gate_p,
            blend=blend,
            index_dir=index_dir,
            progress=stage_progress(as_json),
        )
    if as_json:
        emit_json(record.summary())
    else:
        print_training(record)


def print_training(record: TrainingRecord) -> None:
    out.print(f"model: {record.model}" + (" (resumed)" if record.resumed else ""))
    gate = record.gate
    if gate is None:
        return
    out.print(
        f"gate on {gate.queries} dev queries, nDCG@10: first stage {gate.first_stage:.4f}, "
        f"reranked {gate.reranked:.4f} at blend {gate.blend:g} (p={gate.p_randomisation:.3f})"
    )
    if gate.by_blend:
        shares = ", ".join(f"{share}: {value:.4f}" for share, value in gate.by_blend.items())
        out.print(f"[dim]dev nDCG@10 by the cross-encoder's share: {shares}[/]")
    if gate.passed:
        out.print(f"[green]passed[/]: enable it with --profile {record.profile}")
    else:
        out.print("[yellow]not recommended[/]: it does not beat the first stage on dev")


LOSSES = ("mnrl", "cached-mnrl")


def _numbers(text: str, convert: Callable[[str], T], what: str, hint: str) -> tuple[T, ...]:
    try:
        return tuple(convert(part) for part in text.split(","))
    except ValueError as exc:
        raise typer.BadParameter(f"a comma-separated list of {what}", param_hint=hint) from exc


def parse_dims(text: str | None) -> tuple[int, ...]:
    """``--matryoshka 384,256,128,64`` as a tuple of positive ints (exit 2 otherwise)."""
    if not text:
        return ()
    dims = _numbers(text, int, "integers", "--matryoshka")
    if any(d <= 0 for d in dims):
        raise typer.BadParameter("dimensions must be positive", param_hint="--matryoshka")
    return dims


def parse_weights(text: str | None, dims: int) -> tuple[float, ...]:
    """``--matryoshka-weights 1,1,2,1``: one positive number per dimension (exit 2 otherwise)."""
    if not text:
        return ()
    weights = _numbers(text, float, "numbers", "--matryoshka-weights")
    if len(weights) != dims or any(not w > 0 for w in weights):
        raise typer.BadParameter(
            f"one positive weight per --matryoshka dimension ({dims} given)",
            param_hint="--matryoshka-weights",
        )
    return weights


@train_app.command("embedder")
def train_embedder_command(
    dataset: Annotated[
        str | None,
        typer.Option("--dataset", help="dataset folder (BEIR layout) or name; its index mines"),
    ] = None,
    split: Annotated[str, typer.Option(help="split with the training labels")] = "train",
    pairs: Annotated[
        Path | None,
        typer.Option("--pairs", help='JSONL of {"query", "positive", "negative"?} pairs'),
    ] = None,
    self_supervised: Annotated[
        bool,
        typer.Option(
            "--self-supervised",
            help="add title -> body and inverse-cloze pairs from the indexed chunks "
            "(automatic when there are no labels)",
        ),
    ] = False,
    max_pairs: Annotated[int, typer.Option(min=1, help="cap on self-supervised pairs")] = 10_000,
    negatives: Annotated[int, typer.Option(min=0, help="hard negatives per pair")] = 1,
    negative_margin: Annotated[
        float | None,
        typer.Option(
            help="false-negative guard: skip candidates the base model scores >= this x the "
            "positive (e.g. 0.95; default: no guard)"
        ),
    ] = None,
    loss: Annotated[str, typer.Option(help="mnrl or cached-mnrl")] = "mnrl",
    mini_batch: Annotated[
        int, typer.Option(min=1, help="cached-mnrl: texts per forward pass")
    ] = 32,
    matryoshka: Annotated[
        str | None, typer.Option(help="train these dimensions too, e.g. 384,256,128,64")
    ] = None,
    matryoshka_weights: Annotated[
        str | None,
        typer.Option(
            help="each --matryoshka dimension's weight in the loss, e.g. 1,1,2,1 (default: equal)"
        ),
    ] = None,
    epochs: Annotated[float, typer.Option(min=0.01)] = 1.0,
    batch_size: Annotated[int, typer.Option(min=2, help="pairs per step")] = 32,
    lr: Annotated[float, typer.Option(help="peak learning rate")] = 3e-5,
    warmup: Annotated[float, typer.Option(min=0.0, max=0.99, help="warmup share")] = 0.1,
    max_length: Annotated[int, typer.Option(min=16, help="tokens per text in training")] = 256,
    max_steps: Annotated[int | None, typer.Option(min=1, help="stop after N steps")] = None,
    save_every: Annotated[int, typer.Option(min=1, help="checkpoint every N steps")] = 200,
    dev_fraction: Annotated[
        float, typer.Option(min=0.0, max=0.9, help="query groups held out for the gate")
    ] = 0.1,
    alpha: Annotated[float, typer.Option(help="the gate's significance level")] = 0.05,
    gate_corpus: Annotated[
        int, typer.Option(min=1, help="corpus passages the gate searches (sampled beyond)")
    ] = 20_000,
    seed: Annotated[int, typer.Option()] = 13,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="model folder (default <data-dir>/models/<base>-ft-<time>)"),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="continue the unfinished run in --out (or newest)")
    ] = False,
    data_dir: DataDirOption = None,
    index_dir: IndexDirOption = None,
    datasets: DatasetsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Fine-tune the embedding model on the corpus with hard negatives; gate it on held-out dev."""
    from braid.engine.devices import resolve_device
    from braid.eval.datasets import resolve_dataset, splits
    from braid.eval.embedder_fit import EmbedderTrainConfig
    from braid.eval.embedder_training import train_embedder

    if loss not in LOSSES:
        raise typer.BadParameter(f"one of {', '.join(LOSSES)}", param_hint="--loss")
    dims = parse_dims(matryoshka)
    dim_weights = parse_weights(matryoshka_weights, len(dims))
    settings = load_settings(data_dir)
    folder, labelled = None, None
    if dataset is not None:
        with exit_on_error(ExitCode.USAGE):
            folder = resolve_dataset(dataset, datasets)
        if split in splits(folder):
            folder, labelled = read_split(dataset, datasets, split)
        elif pairs is None:
            console.print(
                f"[dim]{folder.name} has no {split!r} labels: training self-supervised[/]"
            )
    if folder is None:
        # Without a dataset the data dir's own index is the corpus: refuse a missing one
        # before the model loads (and before opening it would create an empty one).
        require_index(settings)
    config = EmbedderTrainConfig(
        base=settings.embedder.model,
        dataset=folder.resolve().name if folder else None,
        split=split,
        pairs_file=str(pairs.resolve()) if pairs else None,
        self_supervised=self_supervised,
        loss="cached-mnrl" if loss == "cached-mnrl" else "mnrl",
        mini_batch=mini_batch,
        matryoshka=dims,
        matryoshka_weights=dim_weights,
        negatives=negatives,
        negative_margin=negative_margin,
        max_pairs=max_pairs,
        dev_fraction=dev_fraction,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        warmup=warmup,
        max_length=max_length,
        seed=seed,
        max_steps=max_steps,
        save_every=save_every,
        gate_corpus=gate_corpus,
    )
    with exit_on_error(ExitCode.USAGE):
        device = resolve_device(settings.embedder.device)
    with exit_on_error():
        record = train_embedder(
            config,
            settings,
            dataset_folder=folder,
            labelled=labelled,
            out_dir=out_dir,
            resume=resume,
            alpha=alpha,
            device=device,
            index_dir=index_dir,
            progress=stage_progress(as_json),
        )
    if as_json:
        emit_json(record.summary())
    else:
        print_embedder_training(record)


def print_embedder_training(record: EmbedderTrainingRecord) -> None:
    data, outcome = record.data, record.outcome
    sources = ", ".join(f"{n} {s}" for s, n in data.sources.items() if n)
    out.print(f"model: {record.out}" + (" (resumed)" if record.resumed else ""))
    out.print(
        f"pairs: {sources}; {data.train_pairs} train, {data.dev_pairs} dev; "
        f"{data.mining.mined} negatives mined, {data.mining.guarded} refused by the guard"
    )
    if outcome is not None:
        out.print(f"steps: {outcome.steps} of {outcome.total_steps} in {outcome.seconds:.0f} s")
        if outcome.interrupted:
            out.print("[yellow]stopped[/]: the model so far and a checkpoint are saved")
    gate = record.gate
    if gate is not None:
        out.print(
            f"gate on {gate.queries} {'judged' if gate.judged else 'self-supervised'} dev "
            f"queries, {gate.corpus} passages: nDCG@10 base "
            f"{gate.base['ndcg@10']:.4f}, fine-tuned {gate.fine_tuned['ndcg@10']:.4f}; MRR@10 "
            f"{gate.base['mrr@10']:.4f} -> {gate.fine_tuned['mrr@10']:.4f}"
        )
        colour = "green" if gate.verdict == "promote" else "yellow"
        out.print(f"[{colour}]{gate.verdict}[/]: {gate.reason}")
    out.print("next:")
    for step in record.next_steps():
        out.print(f"  {step}", highlight=False)


@train_app.command("pca")
def train_pca_command(
    dims: Annotated[int, typer.Option("--dims", min=1, help="dimensions to keep, e.g. 128")],
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out", help="model folder (default <data-dir>/models/<base>-pca<dims>-<time>)"
        ),
    ] = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """A smaller embedding model: the index's vectors rotated onto their principal axes and cut
    to --dims, as a linear layer of the model (label-free, no training; measure it first with
    `braid eval tradeoffs --pca`)."""
    from braid.engine.errors import BraidError, InvalidRequestError
    from braid.eval.pca_model import fit_pca_model

    settings = load_settings(data_dir)
    require_index(settings)
    try:
        record = fit_pca_model(settings, dims, out_dir)
    except InvalidRequestError as exc:  # --dims out of range, --out taken
        raise fail(str(exc), ExitCode.USAGE) from exc
    except BraidError as exc:
        raise fail(str(exc)) from exc
    next_steps = [
        f"braid reindex --model {record.out}",
        "braid collections   # then braid promote <the new collection>",
    ]
    if as_json:
        emit_json(record.as_dict() | {"next_steps": next_steps})
        return
    out.print(f"model: {record.out} ({record.dims} of {record.base['dim']} dimensions)")
    out.print(
        f"fitted on {record.vectors} vectors of {record.base['id']} "
        f"({record.base['version']}): {record.variance_kept:.1%} of their variance kept"
    )
    out.print("next:")
    for step in next_steps:
        out.print(f"  {step}", highlight=False)
