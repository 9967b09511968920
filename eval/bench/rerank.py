"""``braid bench rerank``: what reranking N (query, passage) pairs costs, per backend.

One query and N real passages per call, as the query path reranks them (``reranker.depth``
fused hits of one query in one ``score`` call), timed through the product's
``CrossEncoderReranker``: fp16 on CUDA, onnxruntime or torch on a CPU. Issue 15's GPU figure
(100 pairs) is this command on a lent GPU.

Where no reranker is configured, or ``--model`` names an embedding model, the cross-encoder is
the embedding model's own weights with a fresh one-logit head: what ``braid train reranker``
starts from, the same architecture and sequence length as the model it trains, so the same
cost per pair. Its scores mean nothing; the report says so (``untrained_head``).
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from braid.engine.config import Settings
from braid.engine.errors import ConfigError
from braid.engine.model_files import resolve_model_path
from braid.engine.reranker import CrossEncoderReranker, RerankBackend
from braid.eval.bench.corpus import queries

RERANK_BACKENDS: tuple[RerankBackend, ...] = ("torch", "onnx", "onnx-int8")
WARMUP_CALLS = 2


def passages(corpus: Path, count: int) -> list[str]:
    """The first ``count`` documents of a BEIR corpus as ``title\\ntext``, as they are indexed."""
    texts: list[str] = []
    with (corpus / "corpus.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            doc = json.loads(line)
            texts.append(f"{doc.get('title') or ''}\n{doc.get('text') or ''}".strip())
            if len(texts) == count:
                break
    return texts


def is_cross_encoder(folder: Path) -> bool:
    """Whether a model folder holds a cross-encoder (a sequence-classification head).

    What ``CrossEncoder.save`` writes, and every published cross-encoder, names a
    ``...ForSequenceClassification`` architecture in ``config.json``; an embedding model names
    its bare encoder (``BertModel``).
    """
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return any(
        str(a).endswith("ForSequenceClassification") for a in config.get("architectures", [])
    )


def run_rerank_bench(
    settings: Settings,
    corpus: Path,
    pairs: int,
    repeats: int,
    backends: Sequence[str],
    model: str | None = None,
) -> dict[str, Any]:
    """Time ``repeats`` calls of ``score(query, pairs passages)`` per backend; return the report.

    Each backend first scores ``WARMUP_CALLS`` queries untimed (CUDA kernels, onnxruntime's
    arena); every backend then sees the same queries and passages.

    Raises:
        ValueError: an unknown backend, or fewer documents than ``pairs``, or no queries.
        ConfigError: the model cannot be loaded.
    """
    chosen = [_backend(name) for name in backends]
    texts = passages(corpus, pairs)
    if len(texts) < pairs:
        raise ValueError(f"{corpus} has {len(texts)} documents, fewer than {pairs} pairs")
    asked = queries(corpus, repeats + WARMUP_CALLS)
    if not asked:
        raise ValueError(f"{corpus} has no queries")
    calls = [asked[i % len(asked)] for i in range(repeats + WARMUP_CALLS)]
    name = model or settings.reranker.model or settings.embedder.model
    folder = Path(resolve_model_path(name))
    untrained = not is_cross_encoder(folder)
    reranker_settings = settings.reranker
    report: dict[str, Any] = {
        "model": name,
        "untrained_head": untrained,
        "pairs": pairs,
        "calls": repeats,
        "max_length": reranker_settings.max_length,
        "batch_size": reranker_settings.batch_size,
        "backends": {},
    }
    with tempfile.TemporaryDirectory(prefix="braid-bench-rerank-") as scratch:
        source = _cross_encoder_folder(folder, Path(scratch)) if untrained else folder
        for backend in chosen:
            reranker = CrossEncoderReranker(
                str(source),
                device=reranker_settings.device if backend == "torch" else "cpu",
                cpu_threads=settings.embedder.cpu_threads,
                max_length=reranker_settings.max_length,
                batch_size=reranker_settings.batch_size,
                backend=backend,
            )
            report["backends"][backend] = _time_backend(reranker, backend, calls, texts)
    return report


def _backend(name: str) -> RerankBackend:
    for backend in RERANK_BACKENDS:
        if backend == name:
            return backend
    raise ValueError(f"unknown rerank backend {name!r}; choose from {', '.join(RERANK_BACKENDS)}")


def _cross_encoder_folder(embedder_folder: Path, scratch: Path) -> Path:
    from sentence_transformers import CrossEncoder

    out = scratch / "cross-encoder"
    try:
        CrossEncoder(str(embedder_folder), num_labels=1, device="cpu").save(str(out))
    except (OSError, ValueError) as exc:  # the words CrossEncoderReranker uses for its own
        raise ConfigError(f"cannot load reranker {str(embedder_folder)!r}: {exc}") from exc
    return out


def _time_backend(
    reranker: CrossEncoderReranker, backend: str, calls: list[str], texts: list[str]
) -> dict[str, Any]:
    device = reranker.device
    cuda = device.startswith("cuda")
    samples: list[float] = []
    for index, query in enumerate(calls):
        started = time.perf_counter()
        # Returns Python floats, copied off the GPU: the call has finished on the device too.
        scores = reranker.score(query, texts)
        elapsed = (time.perf_counter() - started) * 1000
        if len(scores) != len(texts):
            raise RuntimeError(f"{backend} scored {len(scores)} of {len(texts)} pairs")
        if index >= WARMUP_CALLS:
            samples.append(elapsed)
    p50 = statistics.median(samples)
    return {
        "device": device,
        "dtype": "float16" if cuda else ("int8" if backend == "onnx-int8" else "float32"),
        "device_name": _device_name(device),
        "ms": {
            "p50": round(p50, 3),
            "p95": round(float(np.percentile(samples, 95)), 3),
            "min": round(min(samples), 3),
        },
        "pairs_per_s": round(len(texts) / (p50 / 1000), 1),
    }


def _device_name(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return str(torch.cuda.get_device_name(device))
    import os
    import platform

    name = platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            name = next(
                (
                    line.split(":", 1)[1].strip()
                    for line in cpuinfo
                    if line.startswith("model name")
                ),
                name,
            )
    except OSError:  # not Linux
        pass
    return f"{name}, {os.cpu_count()} cores"
