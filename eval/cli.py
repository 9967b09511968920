"""``braid eval``, ``braid bench`` and ``braid train``, registered through an entry point."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the evaluation, benchmark and training groups to the root ``braid`` command."""
    from braid.eval.bench.cli import bench_app

    app.add_typer(
        bench_app, name="bench", help="Benchmarks: medians and ratios, printed, not asserted."
    )
    try:
        from braid.eval.commands import eval_app, train_app  # type: ignore[import-not-found,unused-ignore]
    except ImportError:  # not written yet
        return
    app.add_typer(eval_app, name="eval", help="Evaluate on BEIR-format datasets, tune fusion.")
    app.add_typer(train_app, name="train", help="Train models (a cross-encoder reranker).")
