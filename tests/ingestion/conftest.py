"""Fixtures for the ingestion tests: the SciFact corpus and workspaces on temp data dirs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from ingest_helpers import SCIFACT_DIR, WorkspaceOpener

from braid.ingestion.documents import SourceDocument
from braid.ingestion.readers import read_beir


@pytest.fixture(scope="session")
def scifact_docs() -> list[SourceDocument]:
    """Every SciFact corpus document, as the BEIR reader yields them."""
    if not (SCIFACT_DIR / "corpus.jsonl").is_file():
        pytest.skip(f"the shared SciFact corpus is not at {SCIFACT_DIR}")
    records = list(read_beir(SCIFACT_DIR))
    docs = [r for r in records if isinstance(r, SourceDocument)]
    assert len(docs) == len(records), "SciFact should read without errors"
    return docs


@pytest.fixture
def open_ws() -> Iterator[WorkspaceOpener]:
    opener = WorkspaceOpener()
    yield opener
    opener.close_all()
