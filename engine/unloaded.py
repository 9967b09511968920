"""``UnloadedEmbedder``: the embedder of an engine opened without models (``models=False``).

``braid stats``, ``delete``, ``optimize``, ``collections``, ``promote`` and ``drop`` never
encode, so they open the stores alone and never import torch. Anything that would need the
model fails here with a ``ModelsNotLoadedError`` that says so, rather than loading the model
behind the caller's back (seconds of start-up, and a model the stores were never checked
against) or failing with an ``AttributeError``.
"""

# The arguments are the protocol's; a stand-in that stores nothing ignores them.
# ruff: noqa: ARG002

from __future__ import annotations

from collections.abc import Sequence
from typing import NoReturn

from braid.engine.errors import ModelsNotLoadedError
from braid.engine.models import ModelInfo
from braid.engine.protocols import Vectors


class UnloadedEmbedder:
    """Satisfies ``Embedder``; every use raises ``ModelsNotLoadedError``."""

    def __init__(self, configured: str) -> None:
        """Args:
        configured: the model name the settings configure (named in the error).
        """
        self._configured = configured

    def _fail(self, what: str) -> NoReturn:
        raise ModelsNotLoadedError(
            f"{what} needs the embedding model ({self._configured}), but the engine was "
            "opened without models (models=False): open it with models=True"
        )

    @property
    def info(self) -> ModelInfo:
        self._fail("the embedding model's identity")

    @property
    def max_seq_length(self) -> int:
        self._fail("chunking")

    @property
    def passage_prefix(self) -> str:
        self._fail("chunking")

    def encode_queries(self, texts: Sequence[str]) -> Vectors:
        self._fail("encoding queries")

    def encode_passages(self, texts: Sequence[str], batch_size: int | None = None) -> Vectors:
        self._fail("encoding passages")

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        self._fail("counting tokens")
