"""``SentenceTransformerEmbedder``: any sentence-transformers model by name or local path."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

from braid.engine.devices import quiet_model_loading, resolve_device, set_cpu_threads
from braid.engine.errors import ConfigError
from braid.engine.model_files import model_id_for, resolve_model_path, weights_version
from braid.engine.models import DEFAULT_MODEL, ModelInfo
from braid.engine.protocols import Vectors

_log = logging.getLogger(__name__)


class SentenceTransformerEmbedder:
    """Bi-encoder with L2-normalised output, query/passage prefixes and device control."""

    def __init__(
        self,
        name_or_path: str = DEFAULT_MODEL,
        *,
        device: str = "auto",
        cpu_threads: int | None = None,
        query_prefix: str = "",
        passage_prefix: str = "",
        batch_size: int = 64,
        max_seq_length: int | None = None,
    ) -> None:
        """Load the model once.

        Args:
            name_or_path: a sentence-transformers model name or folder.
            device: ``auto`` (CUDA when present), ``cpu``, ``cuda``, ``cuda:1``...
            cpu_threads: torch intra-op threads on the CPU.
            query_prefix: prepended to queries (E5: ``"query: "``; BGE: an instruction).
            passage_prefix: prepended to passages (E5: ``"passage: "``).
            batch_size: default encode batch size.
            max_seq_length: lower the model's own limit (never raise it).

        Raises:
            ConfigError: the model cannot be loaded.
        """
        self._device = resolve_device(device)
        set_cpu_threads(cpu_threads)
        quiet_model_loading()
        path = resolve_model_path(name_or_path)
        # braid runs offline: a name that is no folder is looked up in the local Hugging Face
        # cache only, so a typo fails at once instead of retrying an unreachable hub.
        # HF_HUB_OFFLINE=0 allows downloads where a hub is reachable.
        offline = not Path(path).is_dir() and os.environ.get("HF_HUB_OFFLINE", "1") != "0"
        try:
            self._model = SentenceTransformer(path, device=self._device, local_files_only=offline)
        except (OSError, ValueError) as exc:
            where = (
                " (not a folder, and not in the local Hugging Face cache; braid does not "
                "download models unless HF_HUB_OFFLINE=0)"
                if offline
                else ""
            )
            raise ConfigError(
                f"cannot load embedding model {name_or_path!r}{where}: {exc}"
            ) from exc
        if self._device.startswith("cuda"):
            # Half precision on the GPU: same rankings, about twice the throughput.
            self._model.half()
        model_limit = self._model.max_seq_length or max_seq_length or 512
        if max_seq_length is not None:
            self._model.max_seq_length = min(max_seq_length, model_limit)
        self._query_prefix = query_prefix
        self._passage_prefix = passage_prefix
        self._batch_size = batch_size
        dim = self._model.get_embedding_dimension()
        if dim is None:
            raise ConfigError(f"{name_or_path!r} does not declare its embedding dimension")
        model_id = model_id_for(name_or_path)
        version = self._version(Path(path))
        self._info = ModelInfo(model_id=model_id, version=version, dim=int(dim))

    def _version(self, folder: Path) -> str:
        if folder.is_dir() and (found := weights_version(folder)):
            return found
        # Loaded from a hub cache: hash the parameters themselves.
        digest = hashlib.sha256()
        for name, tensor in sorted(self._model.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().to("cpu", torch.float32).numpy().tobytes())
        return digest.hexdigest()[:12]

    @property
    def info(self) -> ModelInfo:
        return self._info

    @property
    def device(self) -> str:
        return self._device

    @property
    def max_seq_length(self) -> int:
        return int(self._model.max_seq_length or 512)

    @property
    def passage_prefix(self) -> str:
        return self._passage_prefix

    @property
    def model(self) -> SentenceTransformer:
        """The underlying model (benchmarks compare against its raw ``encode``)."""
        return self._model

    def encode_queries(self, texts: Sequence[str]) -> Vectors:
        """Embed queries (query prefix applied), one row per text."""
        return self._encode([self._query_prefix + t for t in texts], self._batch_size)

    def encode_passages(self, texts: Sequence[str], batch_size: int | None = None) -> Vectors:
        """Embed passages (passage prefix applied), one row per text."""
        return self._encode(
            [self._passage_prefix + t for t in texts], batch_size or self._batch_size
        )

    def _encode(self, texts: list[str], batch_size: int) -> Vectors:
        if not texts:
            return np.zeros((0, self._info.dim), dtype=np.float32)
        with torch.inference_mode():
            vectors = self._model.encode(
                texts,
                batch_size=batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens each text takes, special tokens included (no truncation)."""
        tokenizer = self._model.tokenizer
        encoded = tokenizer(list(texts), add_special_tokens=True, truncation=False, verbose=False)
        return [len(ids) for ids in encoded["input_ids"]]
