"""The root ``braid`` command: every command and group, registered in one place.

To add a command, write it in the module of its area (``index``, ``search``, ``admin``,
``worker``, ``serve``, ``eval``, ``train``, ``bench``) and register it below. Modules here
import only typer, rich and light engine modules at their top: models, stores, the web
stack and the evaluation harness are imported inside the commands that use them, so
``braid --help`` and ``braid stats`` never load torch.
"""

from __future__ import annotations

import os

import typer

from braid.cli import admin, index, search, serve, worker
from braid.cli.bench import bench_app
from braid.cli.eval import eval_app
from braid.cli.train import train_app

app = typer.Typer(
    name="braid",
    help="braid: hybrid BM25 + dense search with fusion and reranking.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

# Indexing and searching a data dir.
app.command()(index.ingest)
app.command()(search.search)
app.command()(index.delete)
app.command()(admin.stats)
app.command()(index.optimize)
app.command("move-sparse")(index.move_sparse)
# Model versions side by side (Qdrant server or local mode).
app.command()(index.reindex)
app.command()(admin.collections)
app.command()(admin.promote)
app.command()(admin.drop)
# Processes.
app.command()(serve.serve)
app.command()(worker.worker)
# Evaluation, training, benchmarks.
app.add_typer(eval_app, name="eval", help="Evaluate on BEIR-format datasets, tune fusion.")
app.add_typer(
    train_app,
    name="train",
    help="Train models: the embedder (fine-tuned on your corpus) and a cross-encoder reranker.",
)
app.add_typer(
    bench_app, name="bench", help="Benchmarks: medians and ratios, printed, not asserted."
)


def main() -> None:
    """The ``braid`` console script."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    app()
