"""Shared fixtures: the real MiniLM embedder (loaded once) and the hand-written sample corpus.

Nothing here imports torch or loads a model at collection: the embedder is imported and loaded
by the first test that asks for it, so collecting (or running) a test that needs no model
costs no model.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from braid.engine.metadata import validate_metadata
from braid.engine.models import Chunk
from braid.engine.sparse.analysis import bm25_text

if TYPE_CHECKING:
    import numpy as np

    from braid.engine.embedder import SentenceTransformerEmbedder

# Two cores on the CI machines: more torch threads only contend with Qdrant and Tantivy.
# Through the environment, so that torch reads it whenever (and wherever) it is imported.
TORCH_THREADS = 2
os.environ.setdefault("OMP_NUM_THREADS", str(TORCH_THREADS))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tests compare engines with the torch `embedder` fixture below, so they pin torch; the
# ONNX backends (the CPU default, embedder.backend=auto) have their own tests
# (tests/engine/test_onnx_embedder.py, test_embedder_backend.py).
os.environ.setdefault("BRAID_EMBEDDER__BACKEND", "torch")
# ONNX exports made by tests go to one folder per machine, never the user's ~/.cache.
os.environ.setdefault(
    "BRAID_EMBEDDER__ONNX_CACHE_DIR", os.path.join(tempfile.gettempdir(), "braid-test-onnx")
)

TESTS_DIR = Path(__file__).parent
SAMPLE_PATH = TESTS_DIR / "data" / "sample.jsonl"
# Read in place, never copied into the project (BEIR layout, see its README).
SHARED_DATA = TESTS_DIR.parent / ".." / "shared" / "data"
_DOC_KEYS = ("id", "title", "text")


def load_sample_docs() -> list[dict[str, object]]:
    """The 12 documents of ``tests/data/sample.jsonl`` as decoded JSON objects."""
    with SAMPLE_PATH.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def doc_to_chunk(doc: dict[str, object]) -> Chunk:
    """One sample document as its single chunk, metadata validated as ingestion does."""
    metadata = validate_metadata({k: v for k, v in doc.items() if k not in _DOC_KEYS})
    text = str(doc["text"])
    return Chunk(
        doc_id=str(doc["id"]),
        chunk_index=0,
        text=text,
        title=str(doc["title"]),
        metadata=metadata,
        content_hash=f"hash-{doc['id']}",
        start=0,
        end=len(text),
    )


@pytest.fixture(scope="session")
def embedder() -> Iterator[SentenceTransformerEmbedder]:
    """all-MiniLM-L6-v2 from the bundled copy, on the CPU, loaded once per session."""
    from braid.engine.embedder import SentenceTransformerEmbedder

    yield SentenceTransformerEmbedder(device="cpu", cpu_threads=TORCH_THREADS)


@pytest.fixture(scope="session")
def sample_docs() -> list[dict[str, object]]:
    return load_sample_docs()


@pytest.fixture(scope="session")
def sample_chunks(sample_docs: list[dict[str, object]]) -> list[Chunk]:
    return [doc_to_chunk(d) for d in sample_docs]


@pytest.fixture(scope="session")
def sample_vectors(embedder: SentenceTransformerEmbedder, sample_chunks: list[Chunk]) -> np.ndarray:
    """Passage embeddings of the sample chunks (title and text, as BM25 sees them)."""
    return embedder.encode_passages([bm25_text(c) for c in sample_chunks])


@pytest.fixture(scope="session")
def doc_of(sample_chunks: list[Chunk]) -> dict[str, str]:
    """Point id -> doc id for the sample corpus."""
    return {c.point_id: c.doc_id for c in sample_chunks}
