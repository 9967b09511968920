"""The ledger: one SQLite row per document, the source of truth for what both stores hold.

A document is ``pending`` from the moment its chunks start being written until both stores
have committed them, then ``indexed``. After a crash, pending documents are exactly those
whose state in the stores is unknown: ``IngestPipeline.recover`` removes them everywhere.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

LEDGER_FILE = "ledger.sqlite"
State = Literal["pending", "indexed"]
_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY,
    content_hash TEXT NOT NULL,
    chunk_count INTEGER NOT NULL,
    model_id TEXT NOT NULL,
    model_version TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'indexed')),
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS documents_state ON documents (state);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
INDEX_VERSION_KEY = "index_version"
# In the same transaction as the write it counts.
_BUMP_VERSION = (
    "INSERT INTO meta VALUES ('index_version', '1') "
    "ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + 1"
)
_LOOKUP_CHUNK = 500  # SQLite's host-parameter limit is far above; keeps statements small


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    doc_id: str
    content_hash: str
    chunk_count: int
    model_id: str
    model_version: str
    state: State
    updated_at: str


class Ledger:
    """SQLite ledger in WAL mode; one connection per thread.

    ``read_only=True`` is for processes that do not own the data dir (a reader API beside a
    ``braid worker``): its connections cannot write, and in WAL mode they see each commit
    of the writing process as soon as it is made.
    """

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self._path = path
        self._read_only = read_only
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        if read_only and path.exists():
            return
        # A reader that starts before the writer ever ran creates the empty ledger, in WAL
        # mode, once: read-only connections cannot.
        conn = self._connect(writable=True)
        try:
            with conn:
                conn.executescript(_SCHEMA)
        finally:
            if read_only:
                conn.close()
            else:
                self._local.conn = conn

    def _connect(self, *, writable: bool) -> sqlite3.Connection:
        if not writable:
            return sqlite3.connect(
                self._path.resolve().as_uri() + "?mode=ro", timeout=30.0, uri=True
            )
        conn = sqlite3.connect(self._path, timeout=30.0)
        # WAL + NORMAL: a committed transaction survives a killed process.
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect(writable=not self._read_only)
            self._local.conn = conn
        return conn

    def lookup(self, doc_ids: Sequence[str]) -> dict[str, LedgerEntry]:
        found: dict[str, LedgerEntry] = {}
        conn = self._conn()
        for i in range(0, len(doc_ids), _LOOKUP_CHUNK):
            part = doc_ids[i : i + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(part))
            rows = conn.execute(f"SELECT * FROM documents WHERE doc_id IN ({marks})", part)
            found.update((row[0], LedgerEntry(*row)) for row in rows)
        return found

    def get(self, doc_id: str) -> LedgerEntry | None:
        return self.lookup([doc_id]).get(doc_id)

    def mark_pending(
        self, entries: Iterable[tuple[str, str, int]], model_id: str, model_version: str
    ) -> None:
        """Record (doc_id, content_hash, chunk_count) as being written."""
        now = datetime.now(UTC).isoformat()
        with self._conn() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO documents VALUES (?, ?, ?, ?, ?, 'pending', ?)",
                [(d, h, n, model_id, model_version, now) for d, h, n in entries],
            )
            conn.execute(_BUMP_VERSION)

    def mark_indexed(self, doc_ids: Sequence[str]) -> None:
        now = datetime.now(UTC).isoformat()
        with self._conn() as conn:
            conn.executemany(
                "UPDATE documents SET state = 'indexed', updated_at = ? WHERE doc_id = ?",
                [(now, d) for d in doc_ids],
            )
            conn.execute(_BUMP_VERSION)

    def remove(self, doc_ids: Sequence[str]) -> None:
        with self._conn() as conn:
            conn.executemany("DELETE FROM documents WHERE doc_id = ?", [(d,) for d in doc_ids])
            conn.execute(_BUMP_VERSION)

    def doc_ids(self, state: State | None = None) -> list[str]:
        query = "SELECT doc_id FROM documents" + (" WHERE state = ?" if state else "")
        return [row[0] for row in self._conn().execute(query, (state,) if state else ())]

    def totals(self) -> dict[str, int]:
        """Documents and chunks per state."""
        rows = self._conn().execute(
            "SELECT state, COUNT(*), COALESCE(SUM(chunk_count), 0) FROM documents GROUP BY state"
        )
        totals = {"documents": 0, "chunks": 0, "pending_documents": 0}
        for state, docs, chunks in rows:
            if state == "indexed":
                totals["documents"] += docs
                totals["chunks"] += chunks
            else:
                totals["pending_documents"] += docs
        return totals

    def models(self) -> list[tuple[str, str, int]]:
        """(model id, version, documents) of every model the ledger has seen."""
        rows = self._conn().execute(
            "SELECT model_id, model_version, COUNT(*) FROM documents GROUP BY 1, 2 ORDER BY 3 DESC"
        )
        return [(str(a), str(b), int(c)) for a, b, c in rows]

    def set_model(self, model_id: str, model_version: str) -> int:
        """Record that every document's chunks now carry this model's vectors (a promotion)."""
        with self._conn() as conn:
            cursor = conn.execute(
                "UPDATE documents SET model_id = ?, model_version = ?", (model_id, model_version)
            )
            conn.execute(_BUMP_VERSION)
        return int(cursor.rowcount)

    def index_version(self) -> str:
        """A counter every write of documents raises (search cursors compare it).

        Raised when documents are marked pending (before the stores are written), indexed
        (after), removed, and when a promotion switches their model.
        """
        return self.get_meta(INDEX_VERSION_KEY, "0")

    def get_meta(self, key: str, default: str = "") -> str:
        row = self._conn().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else default

    def set_meta(self, key: str, value: str) -> None:
        with self._conn() as conn:
            conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
