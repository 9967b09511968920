"""``braid eval ...``: moved here from ``braid.eval.commands`` (in progress)."""

from braid.eval.commands import eval_app

__all__ = ["eval_app"]
