"""Evaluation datasets: a corpus, queries and relevance judgements (qrels) per split.

Two layouts are read, both as a folder:

- BEIR: ``corpus.jsonl`` (``_id``, ``title``, ``text``, ``metadata``), ``queries.jsonl``
  (``_id``, ``text``) and ``qrels/<split>.tsv`` (query-id, corpus-id, score; one header line).
- braid's own JSONL: the corpus as ``braid ingest`` reads it (``id`` or ``_id``, ``text``,
  ``title``, any other key is metadata), queries with ``id`` or ``_id``, and qrels either as the
  BEIR TSV or as ``qrels/<split>.jsonl`` lines ``{"query_id", "doc_id", "relevance"}``.

Query metadata (SciFact keeps the cited evidence there) is a label: it is kept apart and never
given to retrieval.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from braid.engine.errors import BraidError

Qrels = dict[str, dict[str, int]]  # query id -> doc id -> graded relevance
DATASETS_ENV = "BRAID_EVAL_DATASETS"


class DatasetError(BraidError):
    """A dataset folder is missing a file or holds a malformed line."""


@dataclass(frozen=True)
class Dataset:
    """One split of a dataset: the queries that have judgements, and the judgements."""

    name: str
    folder: Path
    split: str
    queries: dict[str, str]  # only queries judged in this split, in file order
    qrels: Qrels
    query_metadata: dict[str, object] = field(default_factory=dict, repr=False)

    @property
    def corpus_path(self) -> Path:
        return self.folder / "corpus.jsonl"


def resolve_dataset(name_or_path: str | Path, root: Path | None = None) -> Path:
    """A dataset folder: the path itself, or ``name`` under ``root`` (or ``$BRAID_EVAL_DATASETS``).

    Raises:
        DatasetError: no such folder holds a ``corpus.jsonl``.
    """
    path = Path(name_or_path)
    candidates = [path]
    env_root = os.environ.get(DATASETS_ENV)
    for base in (root, Path(env_root) if env_root else None):
        if base is not None:
            candidates.append(base / str(name_or_path))
    for candidate in candidates:
        if (candidate / "corpus.jsonl").is_file():
            return candidate
    raise DatasetError(
        f"no dataset folder {str(name_or_path)!r} (looked for corpus.jsonl in "
        f"{', '.join(str(c) for c in candidates)}; set --datasets or {DATASETS_ENV})"
    )


def splits(folder: Path) -> list[str]:
    """Split names that have a qrels file."""
    qrels_dir = folder / "qrels"
    if not qrels_dir.is_dir():
        return []
    return sorted({p.stem for p in qrels_dir.iterdir() if p.suffix in (".tsv", ".jsonl")})


def _jsonl(path: Path) -> Iterator[tuple[int, dict[str, object]]]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{path}:{number}: malformed JSON: {exc.msg}") from exc
            if not isinstance(obj, dict):
                raise DatasetError(f"{path}:{number}: expected a JSON object")
            yield number, obj


def _record_id(obj: dict[str, object], where: str) -> str:
    raw = obj.get("_id", obj.get("id"))
    if raw is None or isinstance(raw, bool) or not isinstance(raw, str | int):
        raise DatasetError(f"{where}: missing '_id' (or 'id')")
    return str(raw)


def load_queries(path: Path) -> tuple[dict[str, str], dict[str, object]]:
    """Query texts and their metadata (labels, never retrieval input), by query id."""
    if not path.is_file():
        raise DatasetError(f"missing {path}")
    texts: dict[str, str] = {}
    metadata: dict[str, object] = {}
    for number, obj in _jsonl(path):
        query_id = _record_id(obj, f"{path}:{number}")
        text = obj.get("text")
        if not isinstance(text, str) or not text.strip():
            raise DatasetError(f"{path}:{number}: query {query_id!r} has no 'text'")
        texts[query_id] = text
        if obj.get("metadata"):
            metadata[query_id] = obj["metadata"]
    return texts, metadata


def load_qrels(folder: Path, split: str) -> Qrels:
    """Judgements of one split from ``qrels/<split>.tsv`` (BEIR) or ``qrels/<split>.jsonl``."""
    tsv = folder / "qrels" / f"{split}.tsv"
    jsonl = folder / "qrels" / f"{split}.jsonl"
    qrels: Qrels = {}
    if tsv.is_file():
        with tsv.open(encoding="utf-8", newline="") as handle:
            rows = csv.reader(handle, delimiter="\t")
            for number, row in enumerate(rows, start=1):
                if not row or (number == 1 and not _is_int(row[-1])):
                    continue  # the header line (query-id corpus-id score)
                if len(row) == 4:  # TREC qrels: qid iteration docid rel
                    row = [row[0], row[2], row[3]]
                if len(row) != 3 or not _is_int(row[2]):
                    raise DatasetError(f"{tsv}:{number}: expected query-id, corpus-id, score")
                qrels.setdefault(row[0], {})[row[1]] = int(row[2])
        return qrels
    if jsonl.is_file():
        for number, obj in _jsonl(jsonl):
            try:
                query_id, doc_id = str(obj["query_id"]), str(obj["doc_id"])
                relevance = obj.get("relevance", obj.get("score", 1))
                if isinstance(relevance, bool) or not isinstance(relevance, int | float | str):
                    raise TypeError
                qrels.setdefault(query_id, {})[doc_id] = int(relevance)
            except (KeyError, TypeError, ValueError) as exc:
                raise DatasetError(
                    f"{jsonl}:{number}: expected query_id, doc_id and an integer relevance"
                ) from exc
        return qrels
    available = ", ".join(splits(folder)) or "none"
    raise DatasetError(f"{folder}: no qrels for split {split!r} (available: {available})")


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def load_dataset(folder: Path, split: str) -> Dataset:
    """The queries judged in ``split`` with their qrels.

    Raises:
        DatasetError: a file is missing or malformed, or a judged query has no text.
    """
    if not (folder / "corpus.jsonl").is_file():
        raise DatasetError(f"missing {folder / 'corpus.jsonl'}")
    qrels = load_qrels(folder, split)
    texts, metadata = load_queries(folder / "queries.jsonl")
    missing = sorted(set(qrels) - set(texts))
    if missing:
        raise DatasetError(f"{folder}: qrels of {split!r} name unknown queries {missing[:5]}")
    queries = {qid: text for qid, text in texts.items() if qid in qrels}
    return Dataset(
        name=folder.resolve().name,
        folder=folder,
        split=split,
        queries=queries,
        qrels=qrels,
        query_metadata={qid: metadata[qid] for qid in queries if qid in metadata},
    )


@dataclass(frozen=True)
class CorpusDoc:
    doc_id: str
    title: str
    text: str


def iter_corpus(folder: Path) -> Iterator[CorpusDoc]:
    """Documents of ``corpus.jsonl`` (id, title, text), for training data and reports."""
    path = folder / "corpus.jsonl"
    for number, obj in _jsonl(path):
        doc_id = _record_id(obj, f"{path}:{number}")
        title = obj.get("title") or ""
        text = obj.get("text") or ""
        yield CorpusDoc(doc_id, str(title), str(text))


def corpus_fingerprint(folder: Path) -> str:
    """SHA-256 (first 16 hex digits) of ``corpus.jsonl``: which corpus an index holds."""
    digest = hashlib.sha256()
    with (folder / "corpus.jsonl").open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def count_corpus(folder: Path) -> int:
    with (folder / "corpus.jsonl").open("rb") as handle:
        return sum(1 for line in handle if line.strip())
