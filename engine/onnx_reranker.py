"""A cross-encoder on onnxruntime: exported once from its folder, optionally int8-quantised.

sentence-transformers' own ONNX backend goes through optimum-onnx, which (as of
sentence-transformers 6.2) pins transformers 4 and cannot be installed beside it. The export
here uses torch's ONNX exporter and onnxruntime's dynamic quantisation directly; the model,
tokenizer and truncation are those of the CrossEncoder folder.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from braid.engine.errors import ConfigError, MissingDependencyError

ONNX_DIR = "onnx"
FP32_FILE = "model.onnx"
INT8_FILE = "model_int8.onnx"
_EXPORT_LOCK = threading.Lock()


def export_onnx(folder: Path, *, quantized: bool) -> Path:
    """Export the sequence-classification model in ``folder`` (once) and return the file.

    Batch size and sequence length stay dynamic; a test checks the scores against torch's on
    batches of different lengths.
    """
    target = folder / ONNX_DIR / (INT8_FILE if quantized else FP32_FILE)
    if target.is_file():
        return target
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    with _EXPORT_LOCK:
        fp32 = target.parent / FP32_FILE
        if not fp32.is_file():
            fp32.parent.mkdir(parents=True, exist_ok=True)
            model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
            tokenizer = AutoTokenizer.from_pretrained(folder)
            sample = tokenizer([("query", "passage")], return_tensors="pt")
            # Positional inputs must follow forward()'s order (input_ids, attention_mask,
            # token_type_ids), not the tokenizer's (which puts token_type_ids second).
            names = [n for n in inspect.signature(model.forward).parameters if n in sample]
            axes = {name: {0: "batch", 1: "sequence"} for name in names}
            torch.onnx.export(
                model,
                tuple(sample[name] for name in names),
                str(fp32),
                input_names=names,
                output_names=["logits"],
                dynamic_axes=axes | {"logits": {0: "batch"}},
                opset_version=17,
                dynamo=False,  # the TorchScript exporter needs no onnxscript
            )
        if quantized and not target.is_file():
            from onnxruntime.quantization import QuantType, quantize_dynamic

            quantize_dynamic(str(fp32), str(target), weight_type=QuantType.QInt8)
    return target


class OnnxCrossEncoder:
    """``predict(pairs)`` like ``CrossEncoder.predict``, running on onnxruntime's CPU provider."""

    def __init__(
        self, name_or_path: str, *, max_length: int, quantized: bool, threads: int | None
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise MissingDependencyError(
                "the ONNX reranker backend needs onnxruntime: pip install 'braid-search[onnx]'"
            ) from exc
        from transformers import AutoConfig, AutoTokenizer

        folder = Path(name_or_path)
        if not folder.is_dir():
            raise ConfigError(f"the ONNX backend needs a local model folder, got {name_or_path!r}")
        path = export_onnx(folder, quantized=quantized)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._tokenizer = AutoTokenizer.from_pretrained(folder)
        self._max_length = max_length
        labels = int(getattr(AutoConfig.from_pretrained(folder), "num_labels", 1))
        # CrossEncoder's default activation: sigmoid for one label.
        self._sigmoid = labels == 1

    def predict(
        self, pairs: Sequence[tuple[str, str]], batch_size: int = 32
    ) -> npt.NDArray[np.float32]:
        scores: list[npt.NDArray[np.float32]] = []
        for start in range(0, len(pairs), batch_size):
            part = pairs[start : start + batch_size]
            encoded = self._tokenizer(
                [q for q, _ in part],
                [p for _, p in part],
                padding=True,
                truncation="only_second",
                max_length=self._max_length,
                return_tensors="np",
            )
            feeds = {k: v.astype(np.int64) for k, v in encoded.items() if k in self._inputs}
            logits = np.asarray(self._session.run(["logits"], feeds)[0], dtype=np.float32)
            scores.append(logits[:, 0] if logits.ndim == 2 else logits)
        out = np.concatenate(scores) if scores else np.zeros(0, dtype=np.float32)
        if self._sigmoid:
            return (1.0 / (1.0 + np.exp(-out))).astype(np.float32)
        return out
