"""Readers: JSONL, BEIR folders, text/Markdown/HTML trees and stdin; bad input is reported."""

from __future__ import annotations

import io
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from ingest_helpers import SAMPLE_PATH, SCIFACT_DIR, sample_rows

from braid.ingestion.documents import InputError, SourceDocument
from braid.ingestion.readers import (
    Record,
    html_to_text,
    read_beir,
    read_inputs,
    read_jsonl,
    read_jsonl_stream,
    read_tree,
)


def docs_of(records: list[Record]) -> list[SourceDocument]:
    assert [r for r in records if isinstance(r, InputError)] == []
    return [r for r in records if isinstance(r, SourceDocument)]


def test_jsonl_ids_titles_and_metadata(tmp_path: Path) -> None:
    lines = [
        {"id": "a", "title": "Alpha", "text": "first", "year": 2020, "tags": ["x", "y"]},
        {"_id": "b", "text": "second", "reviewed": False, "score": 0.5},
        {"id": 7, "text": "third", "metadata": {"source": "beir", "lang": "en"}},
        {"id": "d", "text": "fourth", "title": None, "note": None},
    ]
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n", encoding="utf-8")
    a, b, c, d = docs_of(list(read_jsonl(path)))
    assert (a.doc_id, a.title, a.text, dict(a.metadata)) == (
        "a",
        "Alpha",
        "first",
        {"year": 2020, "tags": ["x", "y"]},
    )
    assert (b.doc_id, b.title, dict(b.metadata)) == ("b", "", {"reviewed": False, "score": 0.5})
    # Integer ids become strings; BEIR's nested metadata object is flattened one level.
    assert (c.doc_id, dict(c.metadata)) == ("7", {"source": "beir", "lang": "en"})
    assert (d.title, dict(d.metadata)) == ("", {})  # null title and null values dropped
    assert [x.origin for x in (a, b, c, d)] == [f"{path}:{n}" for n in (1, 2, 3, 4)]


def test_sample_corpus_reads_whole(tmp_path: Path) -> None:
    docs = docs_of(list(read_jsonl(SAMPLE_PATH)))
    rows = sample_rows()
    assert [d.doc_id for d in docs] == [r["id"] for r in rows]
    rrf = docs[1]
    assert rrf.doc_id == "rrf-fusion"
    assert dict(rrf.metadata) == {
        "source": "docs",
        "year": 2021,
        "tags": ["fusion", "ranking"],
        "published": "2021-06-01",
        "reviewed": True,
    }


def test_content_hash_changes_with_text_title_and_metadata() -> None:
    base = SourceDocument("x", "text", "title", {"k": "v"})
    same = SourceDocument("x", "text", "title", {"k": "v"}, origin="elsewhere:9")
    assert base.content_hash == same.content_hash
    variants = [
        SourceDocument("x", "text!", "title", {"k": "v"}),
        SourceDocument("x", "text", "title!", {"k": "v"}),
        SourceDocument("x", "text", "title", {"k": "w"}),
    ]
    assert len({base.content_hash, *(v.content_hash for v in variants)}) == 4


def test_byte_order_mark_is_not_part_of_the_first_record() -> None:
    stream = io.BytesIO(
        b'\xef\xbb\xbf{"id": "a", "text": "with a BOM"}\n{"id": "b", "text": "x"}\n'
    )
    [a, b] = docs_of(list(read_jsonl_stream(stream, "bom.jsonl")))
    assert (a.doc_id, b.doc_id) == ("a", "b")


def test_beir_folder(tmp_path: Path) -> None:
    folder = tmp_path / "tiny-beir"
    folder.mkdir()
    (folder / "corpus.jsonl").write_text(
        json.dumps({"_id": "1", "title": "T", "text": "body one", "metadata": {}})
        + "\n"
        + json.dumps({"_id": "2", "title": "", "text": "body two", "metadata": {"y": 3}})
        + "\n",
        encoding="utf-8",
    )
    (folder / "queries.jsonl").write_text('{"_id": "q1", "text": "not a document"}\n')
    one, two = docs_of(list(read_inputs([str(folder)])))
    assert (one.doc_id, one.title, one.text, dict(one.metadata)) == ("1", "T", "body one", {})
    assert (two.doc_id, dict(two.metadata)) == ("2", {"y": 3})
    assert one.origin == f"{folder / 'corpus.jsonl'}:1"


def test_scifact_reads_without_errors() -> None:
    if not (SCIFACT_DIR / "corpus.jsonl").is_file():
        pytest.skip(f"the shared SciFact corpus is not at {SCIFACT_DIR}")
    records = list(read_beir(SCIFACT_DIR))
    docs = docs_of(records)
    with (SCIFACT_DIR / "corpus.jsonl").open(encoding="utf-8") as handle:
        lines = [json.loads(line) for line in handle if line.strip()]
    assert len(docs) == len(lines)
    assert [d.doc_id for d in docs[:50]] == [str(x["_id"]) for x in lines[:50]]
    assert docs[0].title == lines[0]["title"]


PAGE = """<!doctype html>
<html><head><title> Hybrid  search notes </title>
<style>body { color: red; } .hidden-css-word {}</style>
<script>var secretScriptWord = 1;</script></head>
<body>
<h1>Fusion</h1>
<p>Reciprocal rank fusion &amp; BM25 <b>together</b>.</p>
<noscript>enable javascript please</noscript>
<script type="module">console.log("scriptword2")</script>
<div>Dense vectors<br>and sparse terms.</div>
</body></html>
"""


def test_html_is_reduced_to_its_visible_text() -> None:
    text, title = html_to_text(PAGE)
    assert title == "Hybrid  search notes"
    for visible in ("Fusion", "Reciprocal rank fusion & BM25", "together", "Dense vectors"):
        assert visible in text
    for hidden in ("secretScriptWord", "scriptword2", "hidden-css-word", "color", "javascript"):
        assert hidden not in text
    assert "<" not in text and "&amp;" not in text
    assert "Hybrid  search notes" not in text  # the title is metadata, not body text


def test_tree_of_text_markdown_and_html(tmp_path: Path) -> None:
    root = tmp_path / "notes"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "a.txt").write_text("Plain text note.\n", encoding="utf-8")
    (root / "sub" / "b.md").write_text("# Heading\n\nMarkdown *body*.\n", encoding="utf-8")
    (root / "sub" / "deeper" / "c.html").write_text(PAGE, encoding="utf-8")
    (root / "skip.pdf").write_bytes(b"%PDF-1.4 binary")
    (root / "sub" / "data.json").write_text('{"not": "a document"}')
    stamp = datetime(2024, 5, 1, 12, 0, tzinfo=UTC).timestamp()
    os.utime(root / "a.txt", (stamp, stamp))

    docs = docs_of(list(read_inputs([str(root)])))
    assert [d.doc_id for d in docs] == ["a.txt", "sub/b.md", "sub/deeper/c.html"]
    a, b, c = docs
    assert (a.text, a.title) == ("Plain text note.\n", "")
    assert dict(a.metadata) == {
        "source": "notes",
        "path": "a.txt",
        "modified": "2024-05-01T12:00:00+00:00",
    }
    assert a.origin == str(root / "a.txt")
    assert b.text.startswith("# Heading") and b.metadata["path"] == "sub/b.md"
    assert c.title == "Hybrid  search notes"
    assert "Reciprocal rank fusion" in c.text and "secretScriptWord" not in c.text
    assert c.metadata["path"] == "sub/deeper/c.html"
    datetime.fromisoformat(str(c.metadata["modified"]))  # an ISO-8601 timestamp


def test_tree_reports_bad_files_and_goes_on(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    (root / "good.txt").write_text("fine", encoding="utf-8")
    (root / "latin1.txt").write_bytes("café au lait".encode("latin-1"))
    (root / "blank.md").write_text("  \n\n", encoding="utf-8")
    (root / "only-script.html").write_text("<html><script>x()</script></html>")
    records = list(read_tree(root))
    errors = {Path(r.origin).name: r.message for r in records if isinstance(r, InputError)}
    assert set(errors) == {"latin1.txt", "blank.md", "only-script.html"}
    assert "not UTF-8" in errors["latin1.txt"]
    assert errors["blank.md"] == errors["only-script.html"] == "empty document"
    assert [r.doc_id for r in records if isinstance(r, SourceDocument)] == ["good.txt"]


def test_stdin_stream_and_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    data = b'{"id": "s1", "text": "from stdin"}\nnot json\n{"id": "s2", "text": "more"}\n'
    records = list(read_jsonl_stream(io.BytesIO(data), "<stdin>"))
    assert [r.doc_id for r in records if isinstance(r, SourceDocument)] == ["s1", "s2"]
    assert [str(r).split(": ")[0] for r in records if isinstance(r, InputError)] == ["<stdin>:2"]

    class FakeStdin:  # read_inputs reads sys.stdin.buffer for "-"
        buffer = io.BytesIO(data)

    monkeypatch.setattr("sys.stdin", FakeStdin())
    via_dash = list(read_inputs(["-"]))
    assert [getattr(r, "doc_id", None) for r in via_dash] == ["s1", None, "s2"]


def test_missing_path_is_an_error() -> None:
    [record] = list(read_inputs(["/nonexistent/braid/input.jsonl"]))
    assert isinstance(record, InputError)
    assert str(record) == "/nonexistent/braid/input.jsonl: no such file or directory"


BAD_LINES = [
    # (raw line, words the message must contain)
    (b'{"id": "a", "text": "ok"', "malformed JSON"),
    (b'["id", "text"]', "expected a JSON object"),
    (b'{"text": "no id here"}', "missing 'id'"),
    (b'{"id": "  ", "text": "blank id"}', "missing 'id'"),
    (b'{"id": true, "text": "bool id"}', "'id' must be a string or an integer"),
    (b'{"id": "x" , "title": "t"}', "missing 'text'"),
    (b'{"id": "x", "text": 42}', "missing 'text'"),
    (b'{"id": "x", "text": "caf\xe9"}', "not UTF-8"),
    (b'{"id": "x", "text": ""}', "empty document"),
    (b'{"id": "x", "text": " \\n\\t", "title": ""}', "empty document"),
    (b'{"id": "x", "text": "t", "title": ["a"]}', "'title' must be a string"),
    (b'{"id": "x", "text": "t", "nested": {"a": 1}}', "'nested'"),
    (b'{"id": "x", "text": "t", "tags": [1, 2]}', "'tags'"),
    (b'{"id": "x", "text": "t", "bad-key": 1}', "'bad-key'"),
    (b'{"id": "x", "text": "t", "metadata": [1]}', "'metadata'"),
    (b'{"id": "' + b"i" * 600 + b'", "text": "t"}', "id longer than"),
]


@pytest.mark.parametrize(("raw", "reason"), BAD_LINES, ids=[r for _, r in BAD_LINES])
def test_bad_records_are_errors_with_file_and_line(tmp_path: Path, raw: bytes, reason: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(
        b'{"id": "first", "text": "fine"}\n\n' + raw + b'\n{"id": "last", "text": "ok"}\n'
    )
    records = list(read_jsonl(path))
    assert [r.doc_id for r in records if isinstance(r, SourceDocument)] == ["first", "last"]
    [error] = [r for r in records if isinstance(r, InputError)]
    assert error.origin == f"{path}:3"  # the blank line 2 still counts
    assert reason in error.message
    assert str(error).startswith(f"{path}:3: ")


def test_a_line_nested_too_deeply_is_an_input_error_and_its_neighbours_still_count() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    deep_metadata = b'{"id": "c", "text": "x", "metadata": ' + b'{"k": ' * 50_000 + b"1"
    deep_metadata += b"}" * 50_000 + b"}"
    lines = [b'{"id": "a", "text": "one"}', deep, b'{"id": "b", "text": "two"}', deep_metadata]
    records = list(read_jsonl_stream(io.BytesIO(b"\n".join(lines) + b"\n"), "f.jsonl"))
    assert [getattr(r, "doc_id", None) for r in records] == ["a", None, "b", None]
    errors = [r for r in records if isinstance(r, InputError)]
    assert [(e.origin, e.message) for e in errors] == [
        ("f.jsonl:2", "malformed JSON: nested too deeply"),
        ("f.jsonl:4", "malformed JSON: nested too deeply"),
    ]


def test_a_folder_reports_the_files_it_does_not_read_and_follows_no_link_out(
    tmp_path: Path,
) -> None:
    from braid.ingestion.documents import SkippedFile
    from braid.ingestion.readers import read_tree

    root = tmp_path / "notes"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("alpha")
    (root / "sub" / "b.md").write_text("beta")
    (root / "report.pdf").write_bytes(b"%PDF-1.4")
    (root / "rows.jsonl").write_text('{"id": "x", "text": "y"}\n')
    outside = tmp_path / "secret.txt"
    outside.write_text("not in the folder")
    (root / "leak.txt").symlink_to(outside)
    (root / "alias.txt").symlink_to(root / "a.txt")  # inside: read under its own name
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "c.txt").write_text("gamma")
    (root / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)

    items = list(read_tree(root))
    read = {i.doc_id: i.text for i in items if isinstance(i, SourceDocument)}
    skipped = {Path(i.origin).name: i.reason for i in items if isinstance(i, SkippedFile)}
    assert read == {"a.txt": "alpha", "alias.txt": "alpha", "sub/b.md": "beta"}
    assert skipped == {
        "leak.txt": "a link to a file outside the folder",
        "linked": "a linked folder, not followed",
        "report.pdf": "not a text, Markdown or HTML file (.pdf)",
        "rows.jsonl": "a JSONL file: name it on its own to ingest it",
    }
    assert not any(isinstance(i, InputError) for i in items)
