"""``braid ingest/search/delete/stats`` through typer's CliRunner, and a real second process
for the data dir lock. Expected ids come from reading tests/data/sample.jsonl.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import INGEST_KEYS, SAMPLE_PATH, braid, cli_env, python_command, sample_ids
from typer.testing import CliRunner, Result

from braid.engine.locking import DataDirLock

SAMPLE_IDS = sample_ids()


def json_out(result: Result) -> Any:
    return json.loads(result.stdout)


def test_ingest_prints_its_report_as_json(runner: CliRunner, sample_data: tuple[Path, Any]) -> None:
    data, report = sample_data
    assert set(report) == INGEST_KEYS
    assert {k: report[k] for k in INGEST_KEYS - {"seconds"}} == {
        "documents": 12,
        "chunks": 12,
        "skipped_unchanged": 0,
        "deleted": 0,
        "errors": [],
        "skipped_files": [],
    }
    assert isinstance(report["seconds"], float) and report["seconds"] > 0

    again = braid(runner, "ingest", str(SAMPLE_PATH), "--json", "--data-dir", str(data))
    assert again.exit_code == 0
    assert json_out(again) | {"seconds": 0} == {
        "documents": 0,
        "chunks": 0,
        "skipped_unchanged": 12,
        "deleted": 0,
        "errors": [],
        "skipped_files": [],
        "seconds": 0,
    }


def test_malformed_line_exits_1_naming_file_and_line(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "broken.jsonl"
    path.write_text(
        '{"id": "ok-1", "text": "A fine document about tides."}\n'
        '{"id": "bad", "text": "unterminated\n'
        '{"id": "ok-2", "text": "Another fine one about waves."}\n'
        '{"id": "no-text"}\n',
        encoding="utf-8",
    )
    data = tmp_path / "data"
    result = braid(runner, "ingest", str(path), "--json", "--data-dir", str(data))
    assert result.exit_code == 1
    report = json_out(result)
    assert (report["documents"], report["chunks"]) == (2, 2)
    [malformed, missing] = report["errors"]
    assert malformed.startswith(f"{path}:2: malformed JSON")
    assert missing == f"{path}:4: document 'no-text': missing 'text' string"

    # The human form prints the same on stderr; --strict stops at the first bad line.
    strict = braid(runner, "ingest", str(path), "--strict", "--data-dir", str(tmp_path / "d2"))
    assert strict.exit_code == 1
    assert f"{path}:2: malformed JSON" in strict.stderr.replace("\n", "")
    stats = json_out(braid(runner, "stats", "--json", "--data-dir", str(tmp_path / "d2")))
    assert stats["ledger"]["documents"] == 1


@pytest.mark.parametrize(
    ("query", "top"),
    [
        ("how are rankings merged", "rrf-fusion"),
        ("finding planets around other stars", "exoplanet-transit"),
        ("splitting long documents before embedding", "tokenization"),
    ],
)
def test_search_json_top_hit(
    runner: CliRunner, sample_data: tuple[Path, Any], query: str, top: str
) -> None:
    data, _ = sample_data
    result = braid(runner, "search", query, "--json", "--no-rerank", "--data-dir", str(data))
    assert result.exit_code == 0, result.stderr
    response = json_out(result)
    assert {"hits", "timings_ms"} <= set(response)
    hits = response["hits"]
    assert hits[0]["doc_id"] == top
    # First in both rankings: adaptive fusion gives it share * 1 + (1 - share) * 1.
    assert hits[0]["score"] == pytest.approx(1.0)
    assert set(hits[0]["stages"]) >= {"bm25", "dense"}
    assert hits[0]["chunk_id"] == f"{top}#0"
    assert {h["doc_id"] for h in hits} <= SAMPLE_IDS
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert {"embed", "dense", "sparse", "fuse", "total"} <= set(response["timings_ms"])
    assert all(v >= 0 for v in response["timings_ms"].values())


def test_search_fuses_exactly_and_filters(runner: CliRunner, sample_data: tuple[Path, Any]) -> None:
    data = str(sample_data[0])
    # Only sourdough mentions yeast, bread or fermentation, so BM25 has one hit; the dense
    # side ranks sourdough then espresso.
    bm25 = json_out(
        braid(
            runner,
            "search",
            "wild yeast bread fermentation",
            "--mode",
            "bm25",
            "--json",
            "--data-dir",
            data,
        )
    )
    assert [h["doc_id"] for h in bm25["hits"]] == ["sourdough"]
    hybrid = json_out(
        braid(
            runner,
            "search",
            "wild yeast bread fermentation",
            "--top-k",
            "2",
            "--json",
            "--no-rerank",
            "--data-dir",
            data,
        )
    )
    # Adaptive fusion: sourdough tops both lists (1 from each, shares summing to 1);
    # espresso, dense's second and absent from BM25, gets only part of dense's share.
    share = hybrid["fusion_weights"]["bm25"]
    assert 0.05 <= share <= 0.95
    assert hybrid["fusion_weights"]["dense"] == pytest.approx(1 - share)
    assert [h["doc_id"] for h in hybrid["hits"]] == ["sourdough", "espresso"]
    assert hybrid["hits"][0]["score"] == pytest.approx(1.0)
    assert 0.0 < hybrid["hits"][1]["score"] < 1 - share
    kitchen = json_out(
        braid(
            runner,
            "search",
            "ranking",
            "--filter",
            '{"source": "kitchen"}',
            "--json",
            "--no-rerank",
            "--data-dir",
            data,
        )
    )
    assert {h["doc_id"] for h in kitchen["hits"]} == {"sourdough", "espresso"}
    assert all(h["metadata"]["source"] == "kitchen" for h in kitchen["hits"])


@pytest.mark.parametrize(
    ("command", "filter_json", "message"),
    [
        ("search", "{bad json", "--filter is not valid JSON"),
        ("search", '{"year": {"$foo": 1}}', "unknown operator '$foo'"),
        ("search", '{"bad-key": 1}', "$.bad-key"),
        ("delete", "[1, 2", "--filter is not valid JSON"),
        ("delete", '{"$or": 3}', "$or takes a non-empty list"),
    ],
)
def test_invalid_filter_exits_2_naming_the_problem(
    runner: CliRunner, tmp_path: Path, command: str, filter_json: str, message: str
) -> None:
    args = [command, "some query"] if command == "search" else [command]
    result = braid(runner, *args, "--filter", filter_json, "--data-dir", str(tmp_path / "d"))
    assert result.exit_code == 2
    assert message in " ".join(result.stderr.split())
    assert not (tmp_path / "d").exists()  # rejected before anything was opened


def test_delete_and_stats(runner: CliRunner, tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    # Through stdin this time.
    ingested = braid(
        runner, "ingest", "-", "--json", "--data-dir", data, stdin=SAMPLE_PATH.read_bytes()
    )
    assert ingested.exit_code == 0, ingested.stderr
    assert json_out(ingested)["documents"] == 12

    stats = json_out(braid(runner, "stats", "--json", "--data-dir", data))
    assert stats["dense"]["chunks"] == stats["sparse"]["chunks"] == 12
    assert stats["ledger"]["documents"] == stats["ledger"]["chunks"] == 12
    assert stats["ledger"]["pending_documents"] == 0
    model = stats["embedding_model"]
    assert model["id"] == "sentence-transformers/all-MiniLM-L6-v2" and model["dim"] == 384
    assert stats["ledger"]["models"] == [
        {"id": model["id"], "version": model["version"], "documents": 12}
    ]

    by_id = braid(runner, "delete", "sourdough", "no-such-doc", "--json", "--data-dir", data)
    assert by_id.exit_code == 0
    assert json_out(by_id) == {"deleted": ["sourdough"], "not_found": ["no-such-doc"]}
    by_filter = braid(
        runner, "delete", "--filter", '{"source": "kitchen"}', "--json", "--data-dir", data
    )
    assert json_out(by_filter) == {"deleted": ["espresso"], "not_found": []}

    stats = json_out(braid(runner, "stats", "--json", "--data-dir", data))
    assert stats["dense"]["chunks"] == stats["sparse"]["chunks"] == 10
    assert stats["ledger"]["documents"] == 10
    neither = braid(runner, "delete", "--data-dir", data)
    assert neither.exit_code == 2 and "give document ids or --filter" in neither.stderr


def test_second_process_is_told_the_data_dir_is_in_use(runner: CliRunner, tmp_path: Path) -> None:
    data = tmp_path / "data"
    with DataDirLock(data, role="braid ingest"):
        proc = subprocess.run(
            [*python_command(), "ingest", str(SAMPLE_PATH), "--json", "--data-dir", str(data)],
            env=cli_env(),
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert proc.returncode == 1, proc.stderr
        message = " ".join(proc.stderr.split())
        assert f"{data} is in use by braid ingest (pid {os.getpid()})" in message
        assert proc.stdout == ""
        # Readers are turned away too, in this process as in another.
        search = braid(runner, "search", "bread", "--json", "--data-dir", str(data))
        assert search.exit_code == 1
        assert "is in use by braid ingest" in " ".join(search.stderr.split())
    assert not (data / "ledger.sqlite").exists()  # nothing was written while it was held
    after = braid(runner, "stats", "--json", "--data-dir", str(data))
    assert after.exit_code == 1 and "holds no braid index" in " ".join(after.stderr.split())
