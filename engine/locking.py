"""One process owns a data dir: an advisory lock plus a note saying who holds it.

Qdrant Edge and Tantivy are single-process stores. The owner (``braid serve`` or
``braid ingest``) takes this lock; another process gets ``IndexLockedError`` that names the
owner and, for a server, its URL, so the CLI can send its work over HTTP instead.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Any

from braid.engine.errors import IndexLockedError

LOCK_FILE = "braid.lock"
OWNER_FILE = "braid.owner.json"


def read_owner(data_dir: Path) -> dict[str, Any] | None:
    """What the current owner wrote about itself (pid, role, api URL), if anything."""
    try:
        loaded = json.loads((data_dir / OWNER_FILE).read_text())
    except (OSError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) else None


class DataDirLock:
    """Exclusive, non-blocking ``flock`` on ``data_dir/braid.lock`` (released on exit or crash)."""

    def __init__(self, data_dir: Path, role: str, api_url: str | None = None) -> None:
        self._data_dir = data_dir
        self._role = role
        self._api_url = api_url
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise ``IndexLockedError`` naming the owner."""
        self._data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(fd)
            owner = read_owner(self._data_dir) or {}
            where = f" serving {owner['api_url']}" if owner.get("api_url") else ""
            raise IndexLockedError(
                f"{self._data_dir} is in use by {owner.get('role', 'another process')} "
                f"(pid {owner.get('pid', '?')}){where}"
            ) from exc
        self._fd = fd
        note = {"pid": os.getpid(), "role": self._role, "api_url": self._api_url}
        (self._data_dir / OWNER_FILE).write_text(json.dumps(note))

    def release(self) -> None:
        if self._fd is None:
            return
        (self._data_dir / OWNER_FILE).unlink(missing_ok=True)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> DataDirLock:
        self.acquire()
        return self

    def __exit__(self, *_: object) -> None:
        self.release()
