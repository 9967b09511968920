"""Device choice and torch thread control, shared by the embedder and the reranker."""

from __future__ import annotations

import torch

from braid.engine.errors import ConfigError


def resolve_device(device: str) -> str:
    """``auto`` picks CUDA when present, else the CPU; explicit names are checked."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but CUDA is not available")
    return device


def quiet_model_loading() -> None:
    """Silence transformers' per-load progress bars: braid reports its own progress."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]


def set_cpu_threads(threads: int | None) -> None:
    """Cap torch's intra-op threads; ``None`` or 0 leaves torch's default (one per core).

    Several torch pools on a small machine contend for the same cores, so the process sets
    the count once, deliberately.
    """
    if threads and threads > 0 and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
