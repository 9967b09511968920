"""Progress reporting of long evaluation steps, without a terminal.

The library takes a ``StageProgress``: given a stage's label it returns a context manager that
yields a ``(done, total)`` callback. The CLI passes one that draws a rich bar per stage
(``braid.cli.common.progress``); library callers and tests pass nothing and get ``silent``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

Tick = Callable[[int, int], None]
StageProgress = Callable[[str], AbstractContextManager[Tick]]


def no_tick(done: int, total: int) -> None:
    del done, total


@contextmanager
def silent(label: str) -> Iterator[Tick]:
    """The default ``StageProgress``: reports nothing."""
    del label
    yield no_tick
