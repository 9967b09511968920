"""A reader's view of a Tantivy index that another process (``braid worker``) writes.

Tantivy's reader does reload by itself after a commit by another process, but through a
watcher that polls ``meta.json`` about every 500 ms: a search made right after a job is
``done`` could miss that job's writes. ``FollowingSparseStore`` stats ``meta.json`` before
each read (one system call) and reloads when it changed, so a read that starts after a job
has finished sees what the job wrote.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Sequence

from braid.engine.filters import FilterExpr
from braid.engine.models import Chunk, ScoredPoint
from braid.engine.sparse.tantivy_store import TantivySparseStore

META_FILE = "meta.json"  # Tantivy replaces it atomically (write, then rename) at each commit
_log = logging.getLogger(__name__)


class FollowingSparseStore:
    """A read-only ``TantivySparseStore`` that sees each commit of the writing process.

    Writes go to the wrapped store, which refuses them (``IndexLockedError``): it has no
    writer.
    """

    def __init__(self, store: TantivySparseStore) -> None:
        self.store = store
        self._meta = store.path / META_FILE
        self._lock = threading.Lock()
        self._seen: tuple[int, int, int] | None = None
        self._follow()

    def _follow(self) -> None:
        try:
            st = os.stat(self._meta)
        except FileNotFoundError:  # no commit yet
            return
        # A commit renames a new file over meta.json: its inode changes, and its mtime.
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp == self._seen:
            return
        with self._lock:
            if stamp == self._seen:
                return
            try:
                self.store.reload()
            except ValueError as exc:
                # The writer's merge removed a file of the commit we were opening: keep the
                # snapshot we have; the next read tries the newer commit.
                _log.warning("cannot reload the Tantivy index yet: %s", exc)
                return
            self._seen = stamp

    # -- reads: follow the writer first ----------------------------------------------------

    def search(self, query: str, limit: int, filter: FilterExpr | None = None) -> list[ScoredPoint]:
        self._follow()
        return self.store.search(query, limit, filter)

    def analyze(self, text: str) -> list[str]:
        return self.store.analyze(text)

    def fetch(self, point_ids: Sequence[str]) -> dict[str, Chunk]:
        self._follow()
        return self.store.fetch(point_ids)

    def chunks(self, filter: FilterExpr | None = None) -> Iterable[Chunk]:
        self._follow()
        return self.store.chunks(filter)

    def doc_ids(self, filter: FilterExpr | None = None) -> set[str]:
        self._follow()
        return self.store.doc_ids(filter)

    def count(self) -> int:
        self._follow()
        return self.store.count()

    # -- writes: refused by the read-only store -------------------------------------------

    def upsert(self, chunks: Sequence[Chunk]) -> None:
        self.store.upsert(chunks)

    def delete_docs(self, doc_ids: Sequence[str]) -> None:
        self.store.delete_docs(doc_ids)

    def commit(self) -> None:
        self.store.commit()

    def optimize(self) -> None:
        self.store.optimize()

    def close(self) -> None:
        self.store.close()
