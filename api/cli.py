"""``braid serve``: registered on the root command through the ``braid.commands`` entry point."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the API's commands to the root ``braid`` command."""
