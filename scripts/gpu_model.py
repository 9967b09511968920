"""Pack a sentence-transformers model small enough to travel to a lent GPU machine, and unpack it.

The device tool carries at most 64 MiB a call; MiniLM's float32 weights alone are 87 MiB. Each
matrix travels as int8 with one float16 scale per row (symmetric, per-row absolute maximum),
everything else as float16; unpacked, the weights are float32 again. The unpacked model is
MiniLM to about 0.4% per weight, not bit for bit: its embeddings agree with the original's at
cosine >= 0.99 (``pack`` measures and prints it), and its compute cost is the original's, which
is what the GPU figures measure. The weights are not committed anywhere: the pack lives in the
ignored ``.gpu/`` folder.

    python scripts/gpu_model.py pack MODEL_DIR OUT_DIR     # here
    python scripts/gpu_model.py unpack PACK_DIR MODEL_DIR  # on the device machine
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

WEIGHTS = "model.safetensors"
PACKED = "weights.npz"


def pack(model_dir: Path, out: Path) -> None:
    """Copy ``model_dir`` to ``out`` with its weights as ``weights.npz`` (int8 rows + scales)."""
    shutil.copytree(model_dir, out, ignore=shutil.ignore_patterns(WEIGHTS, "*.onnx", "onnx*"))
    arrays: dict[str, np.ndarray] = {}
    for name, tensor in load_file(str(model_dir / WEIGHTS)).items():
        tensor = tensor.astype(np.float32)
        if tensor.ndim == 2 and tensor.size >= 4096:
            scale = np.abs(tensor).max(axis=1, keepdims=True) / 127.0
            scale[scale == 0] = 1.0
            arrays[f"q8:{name}"] = np.round(tensor / scale).astype(np.int8)
            arrays[f"scale:{name}"] = scale.astype(np.float16)
        else:
            arrays[f"f16:{name}"] = tensor.astype(np.float16)
    np.savez_compressed(out / PACKED, **arrays)  # type: ignore[arg-type]


def unpack(pack_dir: Path, model_dir: Path) -> None:
    """Rebuild a loadable model folder (float32 ``model.safetensors``) from a pack."""
    shutil.copytree(pack_dir, model_dir, ignore=shutil.ignore_patterns(PACKED))
    packed = np.load(pack_dir / PACKED)
    tensors: dict[str, np.ndarray] = {}
    for key in packed.files:
        kind, name = key.split(":", 1)
        if kind == "q8":
            scale = packed[f"scale:{name}"].astype(np.float32)
            tensors[name] = packed[key].astype(np.float32) * scale
        elif kind == "f16":
            tensors[name] = packed[key].astype(np.float32)
    save_file(tensors, str(model_dir / WEIGHTS), metadata={"format": "pt"})


def _agreement(original: Path, rebuilt: Path) -> float:
    from sentence_transformers import SentenceTransformer

    texts = [
        "what causes antibiotic resistance in bacteria",
        "Reciprocal rank fusion combines several rankings by summing reciprocal ranks.",
        "The aerodynamic heating of a blunt body in hypersonic flow.",
    ]
    a = SentenceTransformer(str(original), device="cpu").encode(texts, normalize_embeddings=True)
    b = SentenceTransformer(str(rebuilt), device="cpu").encode(texts, normalize_embeddings=True)
    return float(np.min(np.einsum("ij,ij->i", a, b)))


if __name__ == "__main__":
    command, source, target = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    if command == "pack":
        pack(source, target)
        check = target.parent / (target.name + "-check")
        shutil.rmtree(check, ignore_errors=True)
        unpack(target, check)
        agreement = _agreement(source, check)
        print(f"packed {source} -> {target}; min cosine to the original: {agreement:.5f}")  # noqa: T201
        shutil.rmtree(check)
    elif command == "unpack":
        unpack(source, target)
    else:
        raise SystemExit(f"unknown command {command!r}: pack or unpack")
