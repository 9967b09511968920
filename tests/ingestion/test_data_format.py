"""A data dir says which braid format it holds; one written by a newer braid is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ingest_helpers import settings_for

from braid.engine.errors import ConfigError
from braid.ingestion.data_format import DATA_FORMAT, FORMAT_FILE
from braid.ingestion.service import open_workspace


def open_and_close(data: Path) -> None:
    open_workspace(settings_for(data), role="test", models=False).close()


def test_the_marker_is_written_once_and_a_legacy_data_dir_gets_one(tmp_path: Path) -> None:
    data = tmp_path / "data"
    open_and_close(data)
    marker = json.loads((data / FORMAT_FILE).read_text())
    assert marker["format"] == DATA_FORMAT == 1
    assert marker["written_by"].startswith("braid ")
    (data / FORMAT_FILE).unlink()  # a data dir from before the marker
    open_and_close(data)
    assert json.loads((data / FORMAT_FILE).read_text())["format"] == 1


def test_a_newer_format_is_refused_and_left_alone(tmp_path: Path) -> None:
    data = tmp_path / "data"
    open_and_close(data)
    newer = {"format": DATA_FORMAT + 1, "written_by": "braid 9.0.0"}
    (data / FORMAT_FILE).write_text(json.dumps(newer))
    with pytest.raises(
        ConfigError, match=r"written by a newer braid \(braid 9.0.0, data format 2\)"
    ):
        open_and_close(data)
    assert json.loads((data / FORMAT_FILE).read_text()) == newer
    # The lock was released: the refusal is about the format, not a stuck owner.
    (data / FORMAT_FILE).unlink()
    open_and_close(data)


def test_an_unreadable_marker_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    open_and_close(data)
    (data / FORMAT_FILE).write_text("{not json")
    with pytest.raises(ConfigError, match="is not a braid format marker"):
        open_and_close(data)
