"""``braid train ...``: moved here from ``braid.eval.commands`` (in progress)."""

from braid.eval.commands import train_app

__all__ = ["train_app"]
