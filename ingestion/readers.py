"""Readers: JSONL files (or stdin), BEIR dataset folders, and trees of text/Markdown/HTML.

Every reader yields ``SourceDocument`` or ``InputError`` in input order, never raising on a
bad record: the pipeline decides whether to stop (``--strict``) or to go on and report.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from braid.engine.errors import InvalidDocumentError
from braid.engine.metadata import validate_metadata
from braid.ingestion.documents import InputError, SkippedFile, SourceDocument

TEXT_SUFFIXES = {".txt", ".md", ".markdown"}
HTML_SUFFIXES = {".html", ".htm"}
MAX_ID_LENGTH = 512
_RESERVED_KEYS = {"id", "_id", "text", "title"}

Record = SourceDocument | InputError
# What reading inputs yields: records, and the files of a folder that were not read.
ReadItem = Record | SkippedFile


def record_to_document(obj: object, origin: str) -> Record:
    """Turn one JSON object (``id``/``_id``, ``text``, optional ``title``, rest metadata)."""
    if not isinstance(obj, Mapping):
        return InputError(origin, "expected a JSON object")
    raw_id = obj.get("id", obj.get("_id"))
    if raw_id is None or (isinstance(raw_id, str) and not raw_id.strip()):
        return InputError(origin, "missing 'id' (or '_id')")
    if not isinstance(raw_id, str | int) or isinstance(raw_id, bool):
        return InputError(origin, "'id' must be a string or an integer")
    doc_id = str(raw_id)
    if len(doc_id) > MAX_ID_LENGTH:
        return InputError(origin, f"id longer than {MAX_ID_LENGTH} characters")
    text = obj.get("text")
    if not isinstance(text, str):
        return InputError(origin, f"document {doc_id!r}: missing 'text' string")
    title = obj.get("title") or ""
    if not isinstance(title, str):
        return InputError(origin, f"document {doc_id!r}: 'title' must be a string")
    if not text.strip() and not title.strip():
        return InputError(origin, f"document {doc_id!r}: empty document")
    extra = {k: v for k, v in obj.items() if k not in _RESERVED_KEYS}
    # BEIR puts its metadata in a nested object: flatten one level of it.
    nested = extra.pop("metadata", None)
    if isinstance(nested, Mapping):
        extra = {**nested, **extra}
    elif nested is not None:
        extra["metadata"] = nested
    try:
        metadata = validate_metadata(extra)
    except InvalidDocumentError as exc:
        return InputError(origin, f"document {doc_id!r}: {exc}")
    return SourceDocument(doc_id=doc_id, text=text, title=title, metadata=metadata, origin=origin)


def read_jsonl_stream(stream: IO[bytes], name: str) -> Iterator[Record]:
    """Records of a JSONL byte stream; blank lines are skipped, line numbers are 1-based."""
    for number, raw in enumerate(stream, start=1):
        origin = f"{name}:{number}"
        try:
            # A byte-order mark (Windows tools write one) is not part of the first record.
            line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            yield InputError(origin, f"not UTF-8 ({exc.reason} at byte {exc.start})")
            continue
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            yield InputError(origin, f"malformed JSON: {exc.msg} (column {exc.colno})")
            continue
        except RecursionError:
            # json's decoder recurses once per nesting level: a line nested thousands of
            # levels deep is bad input, not a crash (the lines around it still count).
            yield InputError(origin, "malformed JSON: nested too deeply")
            continue
        try:
            yield record_to_document(obj, origin)
        except RecursionError:
            yield InputError(origin, "metadata nested too deeply")


def read_jsonl(path: Path) -> Iterator[Record]:
    with path.open("rb") as handle:
        yield from read_jsonl_stream(handle, str(path))


def read_beir(folder: Path) -> Iterator[Record]:
    """The ``corpus.jsonl`` of a BEIR dataset folder."""
    yield from read_jsonl(folder / "corpus.jsonl")


def html_to_text(html: str) -> tuple[str, str]:
    """Visible text and ``<title>`` of an HTML page (scripts and styles dropped)."""
    # The Lexbor backend: selectolax 1.0 made the old Modest one (selectolax.parser) raise.
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(html)
    title_node = tree.css_first("title")
    title = title_node.text(strip=True) if title_node else ""
    for node in tree.css("script, style, noscript, template, head"):
        node.decompose()
    body = tree.body or tree.root
    text = body.text(separator="\n", strip=True) if body else ""
    return text, title


def _tree_files(root: Path) -> Iterator[Path | SkippedFile]:
    """Every file under ``root``, sorted; links are followed only to files inside ``root``
    (a linked folder is never entered: it may lead outside, or back in a loop)."""
    inside = root.resolve()
    found: list[Path | SkippedFile] = []
    for folder, subfolders, files in os.walk(root, followlinks=False):
        here = Path(folder)
        for name in subfolders:
            if (here / name).is_symlink():
                found.append(SkippedFile(str(here / name), "a linked folder, not followed"))
        for name in files:
            path = here / name
            if path.is_symlink() and not path.resolve().is_relative_to(inside):
                found.append(SkippedFile(str(path), "a link to a file outside the folder"))
            elif path.is_file():
                found.append(path)
    yield from sorted(found, key=lambda item: str(item if isinstance(item, Path) else item.origin))


def read_tree(root: Path) -> Iterator[ReadItem]:
    """``.txt``, ``.md`` and ``.html`` files under ``root``; doc id = relative path. Other
    files, and links that lead out of ``root``, come back as ``SkippedFile``."""
    for path in _tree_files(root):
        if isinstance(path, SkippedFile):
            yield path
            continue
        suffix = path.suffix.lower()
        if suffix not in TEXT_SUFFIXES | HTML_SUFFIXES:
            kind = (
                "a JSONL file: name it on its own to ingest it"
                if suffix == ".jsonl"
                else (f"not a text, Markdown or HTML file ({suffix or 'no extension'})")
            )
            yield SkippedFile(str(path), kind)
            continue
        relative = path.relative_to(root).as_posix()
        try:
            content = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            yield InputError(str(path), f"not UTF-8 ({exc.reason} at byte {exc.start})")
            continue
        title = ""
        if suffix in HTML_SUFFIXES:
            content, title = html_to_text(content)
        if not content.strip():
            yield InputError(str(path), "empty document")
            continue
        modified = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC).isoformat()
        metadata = {"source": root.name, "path": relative, "modified": modified}
        yield SourceDocument(relative, content, title, metadata, origin=str(path))


def without_duplicates(records: Iterable[ReadItem]) -> Iterator[ReadItem]:
    """Pass records through; a document whose id was already seen in this run becomes an error
    naming both places (the first copy wins)."""
    seen: dict[str, str] = {}
    for record in records:
        if isinstance(record, SourceDocument):
            first = seen.get(record.doc_id)
            if first is not None:
                yield InputError(
                    record.origin, f"duplicate id {record.doc_id!r} (first at {first})"
                )
                continue
            seen[record.doc_id] = record.origin
        yield record


def read_inputs(paths: Iterable[str]) -> Iterator[ReadItem]:
    """Records from every input: ``-`` (stdin JSONL), a BEIR folder, a tree, or a JSONL file."""
    for name in paths:
        if name == "-":
            yield from read_jsonl_stream(sys.stdin.buffer, "<stdin>")
            continue
        path = Path(name)
        if path.is_dir():
            yield from read_beir(path) if (path / "corpus.jsonl").is_file() else read_tree(path)
        elif path.is_file():
            yield from read_jsonl(path)
        else:
            yield InputError(name, "no such file or directory")
