"""Micro-batching of query embeddings across concurrent search requests.

Each search request runs on one of the server's search threads and needs one query vector.
Here one thread owns the model for queries and encodes whatever queries have arrived since
its last batch together. Nothing waits for a batch to fill: under light load a query is
encoded alone and at once, under heavy load queries that arrived during one encode form the
next batch. It pays where a batch costs about what one query does, on a GPU; on a CPU a batch
costs what its queries cost apart, plus padding, so a server batches only when its query
encoder runs on a GPU (``api.runtime.micro_batching``, ``api.micro_batch``).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future

import numpy as np

from braid.engine.models import ModelInfo
from braid.engine.protocols import Embedder, Vectors

MAX_QUERY_BATCH = 64
_STOP = object()


class QueryBatchingEmbedder:
    """An ``Embedder`` whose ``encode_queries`` calls are batched by one background thread.

    Passages (ingestion) go straight to the wrapped embedder: they come in large batches.
    """

    def __init__(
        self,
        inner: Embedder,
        *,
        max_batch: int = MAX_QUERY_BATCH,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.inner = inner
        self.max_batch = max_batch
        self._on_batch = on_batch
        self._queue: queue.Queue[object] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="braid-query-batcher", daemon=True)
        self._thread.start()

    @property
    def info(self) -> ModelInfo:
        return self.inner.info

    @property
    def max_seq_length(self) -> int:
        return self.inner.max_seq_length

    @property
    def passage_prefix(self) -> str:
        return self.inner.passage_prefix

    def encode_queries(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return self.inner.encode_queries([])
        future: Future[Vectors] = Future()
        self._queue.put((list(texts), future))
        return future.result()

    def encode_passages(self, texts: Sequence[str], batch_size: int | None = None) -> Vectors:
        return self.inner.encode_passages(texts, batch_size)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self.inner.count_tokens(texts)

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join()

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            pending = [first]
            size = len(first[0])  # type: ignore[index]
            stop = False
            while size < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                pending.append(item)
                size += len(item[0])  # type: ignore[index]
            self._encode(pending)  # type: ignore[arg-type]
            if stop:
                return

    def _encode(self, pending: list[tuple[list[str], Future[Vectors]]]) -> None:
        texts = [t for texts, _ in pending for t in texts]
        try:
            vectors = self.inner.encode_queries(texts)
        except BaseException as exc:  # hand the failure to every waiting request
            for _, future in pending:
                future.set_exception(exc)
            return
        if self._on_batch is not None:
            self._on_batch(len(texts))
        start = 0
        for texts_of, future in pending:
            end = start + len(texts_of)
            future.set_result(np.ascontiguousarray(vectors[start:end]))
            start = end
