"""Fixtures of the eval tests: the tiny dataset in a temp dir and its braid index."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from eval_tiny import tiny_settings, write_beir

from braid.eval.indexes import EvalIndex, open_index


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_beir(tmp_path_factory.mktemp("datasets") / "tiny")


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("braid-data")


@pytest.fixture(scope="session")
def tiny_index(tiny_dataset: Path, tiny_data_dir: Path) -> Iterator[EvalIndex]:
    """The tiny dataset's index, ingested once per session (closed before the CLI tests run)."""
    index = open_index(tiny_dataset, tiny_settings(tiny_data_dir))
    yield index
    index.close()
