"""``braid train reranker``: fine-tune a CrossEncoder on our own hard negatives, gate it on dev.

A thin wrapper over ``braid.eval.finetune``; torch and the models load inside the command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from braid.cli.common import (
    DataDirOption,
    ExitCode,
    JsonOption,
    emit_json,
    exit_on_error,
    load_settings,
    out,
)
from braid.cli.eval import DatasetsOption, IndexDirOption, read_split, stage_progress

if TYPE_CHECKING:
    from braid.eval.finetune import TrainingRecord

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
        f"reranked {gate.reranked:.4f} (p={gate.p_randomisation:.3f})"
    )
    if gate.passed:
        out.print(f"[green]passed[/]: enable it with --profile {record.profile}")
    else:
        out.print("[yellow]not recommended[/]: it does not beat the first stage on dev")
