"""What every ``braid`` command shares: options, settings and profiles, output, exit codes.

Commands live one module per area beside this one (``index``, ``search``, ``admin``,
``worker``, ``serve``, ``eval``, ``train``, ``bench``); each is a thin wrapper: parse the
options, call the library, print the result with ``emit_json`` or a table, turn a
``BraidError`` into ``fail(...)``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Protocol, TypeVar

import typer
from rich.console import Console

from braid.engine.errors import BraidError

# Imported where used: `braid --help` reads only the options, and pydantic-settings, the
# filter parser and rich's progress bars cost a good part of its start-up.
if TYPE_CHECKING:
    from braid.engine.config import Settings
    from braid.engine.filters import FilterExpr
    from braid.ingestion.service import Workspace


class ExitCode(IntEnum):
    """The exit codes of every command (the README's CLI contract)."""

    OK = 0
    FAILED = 1  # a runtime error, or bad input records (each reported as file:line)
    USAGE = 2  # bad usage: an invalid option value, filter or setting
    INTERNAL = 70  # an unexpected exception, i.e. a bug in braid (sysexits.h EX_SOFTWARE)
    INTERRUPTED = 130  # Ctrl-C: 128 + SIGINT, what shells report for an interrupted command


console = Console(stderr=True)  # messages, progress, errors
out = Console()  # tables: the human form of a command's result

DataDirOption = Annotated[
    Path | None,
    typer.Option("--data-dir", help="data directory (default ./braid-data, env BRAID_DATA_DIR)"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="print machine-readable JSON on stdout")]
ProfileOption = Annotated[
    str | None,
    typer.Option("--profile", help="a tuned profile from `braid eval sweep` (env BRAID_PROFILE)"),
]


def fail(message: str, code: int = ExitCode.FAILED) -> typer.Exit:
    """Print ``error: message`` on stderr; ``raise fail(...)`` exits with ``code``."""
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(int(code))


def load_settings(data_dir: Path | None = None, *, profile: str | None = None) -> Settings:
    """Settings from the environment, ``--data-dir`` first; profiles resolved here, once.

    ``BRAID_PROFILE`` and then ``--profile NAME`` (both from ``<data_dir>/profiles``) are
    applied to the returned settings, whose ``profile`` is then ``None``: whatever the command
    opens later (an evaluation index in another folder, a server) gets the values, not a name
    to look up again.
    """
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from braid.engine.config import Settings
    from braid.engine.profiles import apply_profile, load_profile, with_profile

    try:
        settings = Settings(data_dir=data_dir) if data_dir is not None else Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors()
        )
        raise fail(f"invalid settings: {problems}", ExitCode.USAGE) from exc
    except SettingsError as exc:  # an environment value that does not parse (bad JSON)
        cause = f" ({exc.__cause__})" if exc.__cause__ else ""
        raise fail(f"invalid settings: {exc}{cause}", ExitCode.USAGE) from exc
    if settings.data_dir.exists() and not settings.data_dir.is_dir():
        raise fail(f"the data dir {settings.data_dir} is a file, not a folder", ExitCode.USAGE)
    try:
        settings = with_profile(settings)
        if profile is not None:
            settings = apply_profile(settings, load_profile(settings.data_dir, profile))
    except BraidError as exc:
        raise fail(str(exc), ExitCode.USAGE) from exc
    return settings.model_copy(update={"profile": None})


def parse_filter_option(
    text: str | None, option: str = "--filter"
) -> tuple[object | None, FilterExpr | None]:
    """The raw JSON and the parsed expression of a ``--filter`` value (exit 2 when invalid)."""
    from braid.engine.filters import MAX_DEPTH, parse_filter

    if not text:
        return None, None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise fail(f"{option} is not valid JSON: {exc}", ExitCode.USAGE) from exc
    except RecursionError as exc:  # json's decoder gives up near a thousand levels
        raise fail(
            f"{option} is nested too deeply to read (filters nest {MAX_DEPTH} levels at most)",
            ExitCode.USAGE,
        ) from exc
    try:
        return raw, parse_filter(raw)
    except BraidError as exc:
        raise fail(f"{option}: {exc}", ExitCode.USAGE) from exc


@contextmanager
def exit_on_error(code: int = ExitCode.FAILED) -> Iterator[None]:
    """Inside, a ``BraidError`` becomes ``error: <its message>`` and exit ``code``."""
    from braid.engine.errors import BraidError

    try:
        yield
    except BraidError as exc:
        raise fail(str(exc), code) from exc


class Report(Protocol):
    """A library result that a command prints: ``as_dict()`` is its ``--json`` document."""

    def as_dict(self) -> Mapping[str, object]: ...


ReportT = TypeVar("ReportT", bound=Report)


def show(report: ReportT, as_json: bool, print_human: Callable[[ReportT], None]) -> None:
    """``--json``: the report's document on stdout; otherwise its human form."""
    if as_json:
        emit_json(report.as_dict())
    else:
        print_human(report)


def emit_json(payload: object) -> None:
    """One JSON document on stdout (``--json``)."""
    sys.stdout.write(json.dumps(payload, ensure_ascii=False, default=str) + "\n")


def print_table(
    title: str, columns: Sequence[str], rows: Iterable[Sequence[object]], *, fold: str = ""
) -> None:
    """The one table renderer: ``rows`` under ``columns`` (``fold``: a column that wraps)."""
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold" if column == fold else "ellipsis")
    for row in rows:
        table.add_row(*("-" if cell is None else str(cell) for cell in row))
    out.print(table)


def print_fields(title: str, fields: Iterable[tuple[str, object]]) -> None:
    """A two-column table of named values (summaries such as ``braid stats``)."""
    from rich.table import Table

    table = Table(title=title, show_header=False)
    for name, value in fields:
        table.add_row(name, str(value))
    out.print(table)


def _no_progress(done: int, total: int) -> None:
    del done, total


@contextmanager
def progress(label: str, quiet: bool) -> Iterator[Callable[[int, int], None]]:
    """A ``(done, total)`` progress callback, drawn only on an interactive terminal."""
    if quiet or not sys.stderr.isatty():
        yield _no_progress
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def require_index(settings: Settings) -> None:
    """Exit 1 unless the data dir holds a braid index: commands that only read or look after
    an index never create one (a mistyped ``--data-dir`` is not an empty result)."""
    from braid.engine.errors import IndexLockedError
    from braid.engine.locking import OWNER_FILE, DataDirLock
    from braid.ingestion.ledger import LEDGER_FILE

    if not (settings.data_dir / LEDGER_FILE).is_file():
        if (settings.data_dir / OWNER_FILE).exists():
            # Another process may be creating it right now: say who, not "no index".
            lock = DataDirLock(settings.data_dir, role="braid")
            try:
                lock.acquire()
            except IndexLockedError as exc:
                raise fail(str(exc)) from exc
            lock.release()
        where = "does not exist" if not settings.data_dir.exists() else "holds no braid index"
        raise fail(
            f"{settings.data_dir} {where}: ingest into it first (braid ingest PATH --data-dir "
            f"{settings.data_dir}), or check --data-dir / BRAID_DATA_DIR"
        )


@contextmanager
def owned_workspace(settings: Settings, role: str, *, models: bool = True) -> Iterator[Workspace]:
    """An existing data dir opened as its one owner (``models=False``: stores only).

    A data dir without an index exits 1 (``require_index``). Opening or running into a
    ``BraidError`` (the data dir in use, a model mismatch, ...) exits 1 with its message; the
    workspace is closed either way.
    """
    from braid.ingestion.service import open_workspace

    require_index(settings)

    try:
        workspace = open_workspace(settings, role=role, models=models)
    except BraidError as exc:
        raise fail(str(exc)) from exc
    try:
        yield workspace
    except BraidError as exc:
        raise fail(str(exc)) from exc
    finally:
        workspace.close()
