"""``CrossEncoderReranker``: any sentence-transformers CrossEncoder by name or path."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from sentence_transformers import CrossEncoder

from braid.engine.devices import quiet_model_loading, resolve_device, set_cpu_threads
from braid.engine.errors import ConfigError
from braid.engine.onnx_reranker import OnnxCrossEncoder

RerankBackend = Literal["torch", "onnx", "onnx-int8"]


class CrossEncoderReranker:
    """Scores (query, passage) pairs jointly; batched; CUDA + fp16 when present.

    ``backend="onnx"``/``"onnx-int8"`` export the model once to an ONNX file in its folder
    (int8: dynamically quantised) and run it on onnxruntime's CPU provider
    (``engine.onnx_reranker``). Measured here (2 cores, 30 SciFact pairs, 256 tokens):
    torch 31 pairs/s, ONNX fp32 21, ONNX int8 29; choose by measuring on the target CPU.
    """

    def __init__(
        self,
        name_or_path: str,
        *,
        device: str = "auto",
        cpu_threads: int | None = None,
        max_length: int = 256,
        batch_size: int = 32,
        backend: RerankBackend = "torch",
    ) -> None:
        """Load the cross-encoder.

        Raises:
            ConfigError: the model cannot be loaded.
            MissingDependencyError: an ONNX backend without ``braid-search[onnx]``.
        """
        self._device = resolve_device(device)
        set_cpu_threads(cpu_threads)
        quiet_model_loading()
        self._batch_size = batch_size
        self._name = name_or_path
        self._onnx: OnnxCrossEncoder | None = None
        try:
            if backend == "torch":
                self._model = CrossEncoder(name_or_path, device=self._device, max_length=max_length)
                if self._device.startswith("cuda"):
                    self._model.model.half()
            else:
                self._onnx = OnnxCrossEncoder(
                    name_or_path,
                    max_length=max_length,
                    quantized=backend == "onnx-int8",
                    threads=cpu_threads,
                )
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot load reranker {name_or_path!r}: {exc}") from exc

    @property
    def model_id(self) -> str:
        return self._name

    @property
    def device(self) -> str:
        """Where the torch backend runs (``cuda``, ``cpu``); the ONNX backends run on the CPU."""
        return "cpu" if self._onnx is not None else self._device

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        """Relevance score of each passage for ``query`` (higher is better)."""
        if not passages:
            return []
        pairs = [(query, p) for p in passages]
        if self._onnx is not None:
            return [float(s) for s in self._onnx.predict(pairs, self._batch_size)]
        scores = self._model.predict(
            pairs, batch_size=self._batch_size, show_progress_bar=False, convert_to_numpy=True
        )
        return [float(s) for s in np.asarray(scores, dtype=np.float32).reshape(-1)]
