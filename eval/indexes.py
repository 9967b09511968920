"""One braid data dir per evaluation dataset, ingested once and reused.

The index of a dataset lives in its own data dir (default ``<data-dir>/eval/<dataset>``) and is
built with the ordinary ingestion pipeline (``open_workspace`` + ``IngestPipeline.run`` over
``read_beir``), so what is evaluated is what ``braid ingest`` builds. A second run finds the
corpus fingerprint and the embedding model in the ledger and skips ingestion; a changed corpus
is re-ingested incrementally (the pipeline skips unchanged documents) and documents that left
the corpus are deleted.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from braid.engine.config import Settings
from braid.eval.datasets import corpus_fingerprint, count_corpus, iter_corpus
from braid.eval.progress import StageProgress, silent
from braid.ingestion.pipeline import Progress
from braid.ingestion.readers import read_beir
from braid.ingestion.service import Workspace, open_workspace

CORPUS_KEY = "eval.corpus_sha256"
ERRORS_KEY = "eval.skipped_documents"
MODEL_KEY = "eval.embedding_model"
DATASET_KEY = "eval.dataset"


def default_index_dir(data_dir: Path, dataset_name: str) -> Path:
    return data_dir / "eval" / dataset_name


def index_settings(settings: Settings, index_dir: Path) -> Settings:
    """The same settings, pointed at the dataset's own data dir.

    A named profile (``Settings.profile``) is applied by the caller against the main data dir;
    it is cleared here so the engine does not look for it inside the index's data dir.
    """
    if settings.profile:
        from braid.engine.profiles import with_profile

        settings = with_profile(settings)
    return settings.model_copy(update={"data_dir": index_dir, "profile": None})


@dataclass
class EvalIndex:
    """An opened (and locked) dataset index, and what it holds."""

    workspace: Workspace
    state: dict[str, object]
    ingested: bool  # False: reused as it was

    @property
    def data_dir(self) -> Path:
        return self.workspace.settings.data_dir

    def close(self) -> None:
        self.workspace.close()


def model_key(workspace: Workspace) -> str:
    info = workspace.engine.embedder.info
    return f"{info.model_id}@{info.version}"


def index_state(workspace: Workspace) -> dict[str, object]:
    """What the index holds: corpus fingerprint, counts, models and chunking (for run files)."""
    info = workspace.engine.embedder.info
    totals = workspace.ledger.totals()
    settings = workspace.settings
    return {
        "data_dir": str(settings.data_dir),
        "dataset": workspace.ledger.get_meta(DATASET_KEY),
        "corpus_sha256": workspace.ledger.get_meta(CORPUS_KEY),
        "documents": totals["documents"],
        "chunks": totals["chunks"],
        "embedding_model": {"id": info.model_id, "version": info.version, "dim": info.dim},
        "chunking": {
            "max_tokens": settings.chunking.max_tokens or workspace.engine.embedder.max_seq_length,
            "overlap_tokens": settings.chunking.overlap_tokens,
        },
        "dense_backend": settings.qdrant.mode,
        "skipped_documents": json.loads(workspace.ledger.get_meta(ERRORS_KEY, "[]")),
    }


def is_current(workspace: Workspace, fingerprint: str) -> bool:
    """The ledger says this exact corpus is fully indexed with the loaded embedding model."""
    ledger = workspace.ledger
    return (
        ledger.get_meta(CORPUS_KEY) == fingerprint
        and ledger.get_meta(MODEL_KEY) == model_key(workspace)
        and ledger.totals()["pending_documents"] == 0
    )


def open_index(
    dataset_folder: Path,
    settings: Settings,
    index_dir: Path | None = None,
    *,
    role: str = "braid eval",
    on_progress: Callable[[Progress], None] | None = None,
) -> EvalIndex:
    """Open the dataset's index, ingesting the corpus first unless it is already there.

    Raises:
        IndexLockedError: another process holds the index's data dir.
        ModelMismatchError: the index was built with another embedding model (use another
            index dir, or delete this one).

    Corpus lines the pipeline rejects (Cranfield has two empty documents) are skipped, as
    ``braid ingest`` skips them; they are listed in the state under ``skipped_documents``.
    """
    name = dataset_folder.resolve().name
    target = index_dir or default_index_dir(settings.data_dir, name)
    workspace = open_workspace(index_settings(settings, target), role=role)
    try:
        fingerprint = corpus_fingerprint(dataset_folder)
        ingested = False
        if not is_current(workspace, fingerprint):
            skipped = ingest_corpus(workspace, dataset_folder, on_progress)
            workspace.ledger.set_meta(ERRORS_KEY, json.dumps(skipped))
            workspace.ledger.set_meta(CORPUS_KEY, fingerprint)
            workspace.ledger.set_meta(MODEL_KEY, model_key(workspace))
            workspace.ledger.set_meta(DATASET_KEY, name)
            ingested = True
        return EvalIndex(workspace=workspace, state=index_state(workspace), ingested=ingested)
    except BaseException:
        workspace.close()
        raise


def ingest_corpus(
    workspace: Workspace,
    dataset_folder: Path,
    on_progress: Callable[[Progress], None] | None = None,
) -> list[str]:
    """Bring the index in line with ``corpus.jsonl`` through the ordinary pipeline.

    Returns:
        The pipeline's messages for corpus lines it could not ingest.
    """
    report = workspace.pipeline.run(read_beir(dataset_folder), on_progress=on_progress)
    wanted = {doc.doc_id for doc in iter_corpus(dataset_folder)}
    stale = sorted(set(workspace.ledger.doc_ids()) - wanted)
    if stale:
        workspace.pipeline.delete(stale)
        workspace.pipeline.maybe_compact()
    return list(report.errors)


def open_with_progress(
    dataset_folder: Path,
    settings: Settings,
    index_dir: Path | None = None,
    *,
    progress: StageProgress = silent,
    role: str = "braid eval",
) -> EvalIndex:
    """``open_index``, reporting ingestion as documents handled out of the corpus's count."""
    total = count_corpus(dataset_folder)
    with progress(f"ingest {dataset_folder.name}") as tick:
        return open_index(
            dataset_folder,
            settings,
            index_dir,
            role=role,
            on_progress=lambda p: tick(p.documents + p.skipped + p.errors, total),
        )
