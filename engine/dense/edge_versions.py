"""Model versions side by side on Qdrant Edge: one shard per model version and a pointer.

A server keeps one collection per embedding model version behind an alias
(``engine.qdrant.aliases``). Edge has no aliases, so a data dir lays its shards out as:

- ``<data_dir>/dense``: the first model's shard (every data dir made before model versions
  existed has exactly this one);
- ``<data_dir>/dense-models/<collection>``: each model indexed since by ``braid reindex``,
  named as on a server (``collection_for(qdrant.collection, model)``);
- ``<data_dir>/dense-serving.json``: ``{"collection", "path"}`` (``path`` relative to the
  data dir), the shard that searches and writes use. Absent: ``dense``.

Only ``promote`` writes the pointer, in one atomic rename, so a crashed re-index never
changes what is served. ``dense``'s name is computed from its manifest's model, the same
way, so that every shard is listed, promoted and dropped by one kind of name.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from braid.engine.dense.edge import MANIFEST_FILE, QdrantEdgeDenseStore
from braid.engine.dense.manifest import model_of
from braid.engine.errors import ConfigError
from braid.engine.models import ModelInfo
from braid.engine.qdrant.edge import read_manifest
from braid.engine.qdrant.naming import collection_for

SERVING_FILE = "dense-serving.json"
LEGACY_DIR = "dense"
MODELS_DIR = "dense-models"
# A dropped shard is renamed to this prefix before its files are deleted: a crash midway
# leaves a hidden folder that listings skip and the next drop removes, never half a shard.
_DROPPING = ".dropping-"


@dataclass(frozen=True)
class EdgeShard:
    """One model version's shard in a data dir."""

    collection: str
    path: Path
    model: ModelInfo
    serving: bool


def _check_name(collection: str) -> None:
    # Names become folder names: one plain path component, never hidden, never "..".
    if not collection or collection.startswith(".") or Path(collection).name != collection:
        raise ConfigError(f"{collection!r} is not a collection name")


def _relative(path: Path, data_dir: Path) -> str:
    return path.relative_to(data_dir).as_posix()


def read_pointer(data_dir: Path) -> tuple[str, Path] | None:
    """The serving shard the pointer names, as (collection, absolute path); ``None``: no pointer.

    Raises:
        ConfigError: the pointer file is not one braid wrote.
    """
    file = data_dir / SERVING_FILE
    if not file.exists():
        return None
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        collection, relative = data["collection"], data["path"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{file} is not a serving pointer braid wrote: {exc}") from exc
    parts = PurePosixPath(str(relative)).parts
    well_formed = isinstance(collection, str) and (
        parts == (LEGACY_DIR,) or (len(parts) == 2 and parts[0] == MODELS_DIR)
    )
    if not well_formed or (len(parts) == 2 and parts[1].startswith(".")):
        raise ConfigError(f"{file} names {relative!r}, which is not a dense shard's folder")
    return collection, data_dir.joinpath(*parts)


def serving_path(data_dir: Path) -> Path:
    """The shard searches and writes use: the pointer's, else ``<data_dir>/dense``.

    Raises:
        ConfigError: the pointer names a shard that is not there any more (opening it would
            silently start an empty index).
    """
    pointer = read_pointer(data_dir)
    if pointer is None:
        return data_dir / LEGACY_DIR
    collection, path = pointer
    if not (path / MANIFEST_FILE).exists():
        raise ConfigError(
            f"{data_dir / SERVING_FILE} serves {collection!r} from {path}, which holds no "
            f"shard: restore it, or delete {SERVING_FILE} to serve {data_dir / LEGACY_DIR}"
        )
    return path


def shards(data_dir: Path, alias: str) -> list[EdgeShard]:
    """Every model version's shard in ``data_dir`` (``dense`` first, then by name).

    A shard whose manifest names no model (nothing was ever written) is not listed.

    Raises:
        ConfigError: the pointer file is malformed or names a missing shard.
    """
    serving = serving_path(data_dir)
    candidates = [data_dir / LEGACY_DIR]
    models_dir = data_dir / MODELS_DIR
    if models_dir.is_dir():
        candidates += sorted(
            p for p in models_dir.iterdir() if p.is_dir() and not p.name.startswith(".")
        )
    found = []
    for path in candidates:
        model = model_of(read_manifest(path, MANIFEST_FILE))
        if model is None:
            continue
        name = collection_for(alias, model) if path.name == LEGACY_DIR else path.name
        found.append(EdgeShard(name, path, model, serving=path == serving))
    return found


def shard_path(data_dir: Path, alias: str, collection: str) -> Path:
    """Where ``collection``'s shard is, or goes: an existing shard of that name (``dense``
    included), else ``<data_dir>/dense-models/<collection>``.

    Raises:
        ConfigError: ``collection`` cannot be a folder name.
    """
    _check_name(collection)
    for shard in shards(data_dir, alias):
        if shard.collection == collection:
            return shard.path
    return data_dir / MODELS_DIR / collection


def count_points(path: Path) -> int:
    """Points in the shard at ``path``, opened and closed here.

    Never call it on the shard a process holds open (Edge shards belong to one opener).
    """
    store = QdrantEdgeDenseStore(path, None, search_threads=1)
    try:
        return store.count()
    finally:
        store.close()


def promote(data_dir: Path, shard: EdgeShard) -> None:
    """Serve ``shard`` from now on: the pointer is replaced in one atomic rename.

    Raises:
        ConfigError: the shard is not there (no manifest).
    """
    if not (shard.path / MANIFEST_FILE).exists():
        raise ConfigError(f"no Qdrant Edge shard {shard.collection!r} at {shard.path}")
    file = data_dir / SERVING_FILE
    tmp = file.with_name(f"{SERVING_FILE}.tmp")
    document = {"collection": shard.collection, "path": _relative(shard.path, data_dir)}
    with tmp.open("w", encoding="utf-8") as handle:
        json.dump(document, handle)
        handle.flush()
        os.fsync(handle.fileno())  # the new pointer's bytes are on disk before it is renamed in
    os.replace(tmp, file)  # a crash leaves the old pointer or the new one, never half of one


def drop(data_dir: Path, alias: str, names: Iterable[str]) -> list[str]:
    """Delete the shards of ``names`` that nothing serves; returns those dropped.

    Unknown names are skipped (as a server's ``drop``); nothing is deleted when one of the
    names is the serving shard.

    Raises:
        ConfigError: one of them is the serving shard.
    """
    wanted = list(dict.fromkeys(names))
    known = {s.collection: s for s in shards(data_dir, alias)}
    for name in wanted:
        if name in known and known[name].serving:
            raise ConfigError(f"{name!r} is what {alias!r} serves: promote another one first")
    trash_dir = data_dir / MODELS_DIR
    if trash_dir.is_dir():
        for left in trash_dir.glob(f"{_DROPPING}*"):
            shutil.rmtree(left, ignore_errors=True)  # an earlier drop that crashed midway
    dropped = []
    for name in wanted:
        shard = known.get(name)
        if shard is None:
            continue
        trash_dir.mkdir(parents=True, exist_ok=True)
        trash = trash_dir / f"{_DROPPING}{uuid.uuid4().hex}"
        os.replace(shard.path, trash)  # atomic: the shard is listed whole or not at all
        shutil.rmtree(trash)
        dropped.append(name)
    return dropped


def remove_unfinished(path: Path) -> None:
    """Delete a ``dense-models`` folder left without a manifest (a crash while creating it),
    so that the shard can be created afresh; a folder with a manifest is kept."""
    if path.parent.name == MODELS_DIR and path.is_dir() and not (path / MANIFEST_FILE).exists():
        shutil.rmtree(path)
