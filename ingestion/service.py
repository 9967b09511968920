"""Open a data dir for writing: lock, engine, ledger, chunker and pipeline together."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from braid.engine.config import Settings
from braid.engine.factory import Engine, build_engine
from braid.engine.locking import DataDirLock
from braid.ingestion.data_format import check_data_format
from braid.ingestion.ledger import LEDGER_FILE, Ledger
from braid.ingestion.pipeline import DocumentLimits, IngestPipeline

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from braid.ingestion.chunking import ChunkingPolicy, TokenChunker


@dataclass
class Workspace:
    """A data dir opened by its one owning process."""

    settings: Settings
    engine: Engine
    ledger: Ledger
    pipeline: IngestPipeline
    lock: DataDirLock

    def close(self) -> None:
        try:
            self.engine.close()
            self.ledger.close()
        finally:
            self.lock.release()


def tokenizer_of(engine: Engine) -> PreTrainedTokenizerBase:
    return tokenizer_of_embedder(engine.embedder)


def tokenizer_of_embedder(embedder: object) -> PreTrainedTokenizerBase:
    """The embedder's own tokenizer (token-aware chunking measures with it)."""
    from transformers import PreTrainedTokenizerBase

    model = getattr(embedder, "model", None)
    tokenizer = getattr(model, "tokenizer", None)
    if not isinstance(tokenizer, PreTrainedTokenizerBase):
        raise TypeError("token-aware chunking needs an embedder that exposes its tokenizer")
    return tokenizer


def _chunker(engine: Engine, settings: Settings, policy: ChunkingPolicy | None) -> TokenChunker:
    # Imported here: chunking pulls in transformers' tokenizers (a second of start-up).
    from braid.ingestion.chunking import ChunkingPolicy, TokenChunker

    return TokenChunker(
        tokenizer_of(engine),
        engine.embedder.max_seq_length,
        engine.embedder.passage_prefix,
        policy or ChunkingPolicy(settings.chunking.max_tokens, settings.chunking.overlap_tokens),
    )


def open_workspace(
    settings: Settings,
    *,
    role: str,
    api_url: str | None = None,
    batch_size: int | None = None,
    policy: ChunkingPolicy | None = None,
    models: bool = True,
) -> Workspace:
    """Take the data dir's lock and open everything needed to search and write it.

    Args:
        settings: the data dir and its backends.
        role: who holds the lock (shown to a process that is refused).
        api_url: the URL this process serves, written beside the lock.
        batch_size: embedding batch size (default: ``settings.embedder.batch_size``).
        policy: chunking policy (default: ``settings.chunking``).
        models: ``False`` loads no model and imports no torch (``braid stats``, ``delete``,
            ``optimize``, ``collections``, ``promote``, ``drop``): deletes, compaction,
            optimizing, counts and the ledger work; ingesting or searching by vector raises
            ``ModelsNotLoadedError``.

    Raises:
        IndexLockedError: another process (a server, another ingest) owns the data dir.
        ModelMismatchError: the stores were built with another embedding model.
        ConfigError: the data dir was written by a newer braid (``data_format``).
    """
    lock = DataDirLock(settings.data_dir, role=role, api_url=api_url)
    lock.acquire()
    try:
        check_data_format(settings.data_dir)
        engine = build_engine(settings, models=models)
    except BaseException:
        lock.release()
        raise
    try:
        chunker = _chunker(engine, settings, policy) if models else None
        ledger = Ledger(settings.data_dir / LEDGER_FILE)
    except BaseException:
        engine.close()
        lock.release()
        raise
    pipeline = IngestPipeline(
        engine.embedder,
        engine.dense,
        engine.sparse,
        ledger,
        chunker,
        batch_size=batch_size or settings.embedder.batch_size,
        limits=DocumentLimits.from_settings(settings),
        maintenance=settings.maintenance,
    )
    return Workspace(settings=settings, engine=engine, ledger=ledger, pipeline=pipeline, lock=lock)
