"""The root ``braid`` command: every command and group, registered in one place.

To add a command, write it in the module of its area (``index``, ``search``, ``admin``,
``worker``, ``serve``, ``eval``, ``train``, ``bench``) and register it below. Modules here
import only typer, rich and light engine modules at their top: models, stores, the web
stack and the evaluation harness are imported inside the commands that use them, so
``braid --help`` and ``braid stats`` never load torch.
"""

from __future__ import annotations

import errno
import os
import sys
import traceback
from typing import Annotated, Any

import typer
from typer import _click as click  # typer's own copy of click: what its groups are made of
from typer.core import TyperGroup
from typer.exceptions import TyperException

from braid.cli import admin, index, search, serve, worker
from braid.cli.bench import bench_app
from braid.cli.common import ExitCode, fail
from braid.cli.eval import eval_app
from braid.cli.train import train_app
from braid.engine.errors import BraidError

DEBUG_ENV = "BRAID_DEBUG"
MAX_MESSAGE_CHARS = 500  # an exception's text in the one-line report; --debug shows it all


def internal_error_line(exc: BaseException) -> str:
    """The one line printed for an exception no command turned into a message."""
    message = " ".join(str(exc).split())  # one line, whatever the exception's text holds
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[: MAX_MESSAGE_CHARS - 3] + "..."
    name = type(exc).__name__ + (f": {message}" if message else "")
    return f"braid: internal error: {name} (run with --debug for the traceback)"


def _passes_through(exc: Exception) -> bool:
    """Exits and usage errors, which typer's main turns into their own exit code and text,
    and a closed stdout (``braid search --json | head``), which it quiets."""
    if isinstance(exc, typer.Exit | typer.Abort | TyperException):
        return True
    if isinstance(exc, OSError) and exc.errno == errno.EPIPE:
        return True
    # uvicorn raises the real click's exceptions; only loaded when something imported it.
    real_click = sys.modules.get("click")
    return real_click is not None and isinstance(
        exc,
        real_click.exceptions.ClickException
        | real_click.exceptions.Exit
        | real_click.exceptions.Abort,
    )


class GuardedGroup(TyperGroup):
    """The root group, around every command: the last line of defence of the CLI contract.

    An exception that no command turned into a message is a bug, but the user still gets
    one line on stderr (``braid: internal error: Type: message``) and exit 70, not a
    traceback; ``--debug`` (or ``BRAID_DEBUG=1``) lets it through with its traceback. A
    ``BraidError`` a command forgot to catch is still a message for the user (``error:``,
    exit 1). Ctrl-C exits 130 with one line. ``typer.Exit``, click's usage errors and
    ``SystemExit`` pass through unchanged.
    """

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command line's command under the guard."""
        debug = bool(ctx.params.get("debug"))
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as exc:
            if debug:
                traceback.print_exc()
            typer.echo("braid: interrupted", err=True)
            raise typer.Exit(ExitCode.INTERRUPTED) from exc
        except Exception as exc:
            if debug or _passes_through(exc):
                raise
            if isinstance(exc, BraidError):
                raise fail(str(exc)) from exc
            typer.echo(internal_error_line(exc), err=True)
            raise typer.Exit(ExitCode.INTERNAL) from exc


app = typer.Typer(
    name="braid",
    help="braid: hybrid BM25 + dense search with fusion and reranking.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=GuardedGroup,
)


@app.callback()
def _root(
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            envvar=DEBUG_ENV,
            help="show the traceback of an unexpected error (env BRAID_DEBUG=1); "
            "without it, one line and exit 70",
        ),
    ] = False,
) -> None:
    # Read by GuardedGroup from the root context's parameters: nothing to do here.
    del debug


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
