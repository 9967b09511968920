"""Documents and jobs: upsert -> job -> searchable, replace, delete from both stores."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from api_helpers import assert_error, hit_ids, wait_job
from conftest import running_app
from starlette.testclient import TestClient

from braid.engine.config import Settings
from braid.engine.models import point_id_for
from braid.ingestion.pipeline import Progress
from braid.ingestion.readers import read_inputs
from braid.ingestion.remote import RemoteIngest

NEBULA = {
    "id": "crab-nebula",
    "title": "The Crab Nebula",
    "text": "The Crab Nebula is the remnant of a supernova seen in 1054; a pulsar spins at its heart.",
    "source": "science",
    "year": 2024,
    "tags": ["astronomy"],
}


@pytest.fixture(scope="module")
def client(
    settings_for: Callable[..., Settings], sample_docs: list[dict[str, object]]
) -> Iterator[TestClient]:
    with running_app(settings_for("documents", max_batch_documents=20)) as client:
        response = client.post("/v1/documents?wait=true", json={"documents": sample_docs})
        assert response.status_code == 200, response.text
        yield client


def stores(client: TestClient, doc_id: str, chunks: int = 1) -> tuple[int, int]:
    """How many of the document's chunks each store holds (read from the stores directly)."""
    engine = client.app.state.runtime.engine  # type: ignore[attr-defined]
    point_ids = [point_id_for(doc_id, i) for i in range(chunks)]
    return len(engine.dense.fetch(point_ids)), len(engine.sparse.fetch(point_ids))


def search_ids(client: TestClient, query: str, **body: Any) -> list[str]:
    return hit_ids(client.post("/v1/search", json={"query": query, **body}))


def test_upsert_job_then_searchable(client: TestClient) -> None:
    assert "crab-nebula" not in search_ids(client, "supernova pulsar", mode="bm25")
    response = client.post("/v1/documents", json={"documents": [NEBULA]})
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert (
        response.headers["location"] == accepted["status_url"] == f"/v1/jobs/{accepted['job_id']}"
    )
    assert accepted["job"]["state"] in ("queued", "running", "done")
    assert accepted["job"]["kind"] == "upsert" and accepted["job"]["items"] == 1
    job = wait_job(client, accepted["job_id"])
    assert job["state"] == "done", job
    assert job["result"]["documents"] == 1 and job["result"]["chunks"] == 1
    assert job["progress"]["documents"] == 1
    assert job["attempts"] == 1 and job["finished_at"] is not None
    for mode in ("bm25", "dense", "hybrid"):
        assert search_ids(client, "supernova pulsar", mode=mode, top_k=1) == ["crab-nebula"]
    assert stores(client, "crab-nebula") == (1, 1)


def test_get_document_chunks_and_ledger_state(client: TestClient) -> None:
    body = client.get("/v1/documents/rrf-fusion").json()
    assert body["doc_id"] == "rrf-fusion"
    assert body["state"] == "indexed"
    assert body["chunk_count"] == 1
    assert body["title"] == "Reciprocal rank fusion"
    assert body["metadata"]["year"] == 2021
    assert body["embedding_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    [chunk] = body["chunks"]
    assert chunk["chunk_id"] == "rrf-fusion#0"
    assert chunk["in_dense"] and chunk["in_sparse"]
    assert chunk["text"].startswith("Reciprocal rank fusion combines")
    assert_error(client.get("/v1/documents/no-such-doc"), 404, "document_not_found")


def test_unchanged_is_skipped_and_changed_is_replaced(client: TestClient) -> None:
    doc = {"id": "replace-me", "text": "The first version talks about glaciers and fjords."}
    first = client.post("/v1/documents?wait=true", json={"documents": [doc]}).json()["job"]
    assert first["result"]["documents"] == 1
    again = client.post("/v1/documents?wait=true", json={"documents": [doc]}).json()["job"]
    assert again["result"]["skipped_unchanged"] == 1 and again["result"]["documents"] == 0
    changed = {"id": "replace-me", "text": "The second version is about volcanoes and lava."}
    third = client.post("/v1/documents?wait=true", json={"documents": [changed]}).json()["job"]
    assert third["result"]["deleted"] == 1
    assert "replace-me" not in search_ids(client, "glaciers fjords", mode="bm25")
    assert search_ids(client, "volcanoes lava", mode="bm25") == ["replace-me"]


def test_delete_removes_from_both_stores(client: TestClient) -> None:
    doc = {
        "id": "to-delete",
        "text": "Narwhals are whales with a long spiral tusk.",
        "source": "zoo",
    }
    client.post("/v1/documents?wait=true", json={"documents": [doc]})
    assert stores(client, "to-delete") == (1, 1)
    assert search_ids(client, "narwhal tusk", mode="bm25") == ["to-delete"]
    response = client.delete("/v1/documents/to-delete")
    assert response.status_code == 202
    job = wait_job(client, response.json()["job_id"])
    assert job["kind"] == "delete"
    assert job["result"] == {"deleted": ["to-delete"], "not_found": []}
    assert stores(client, "to-delete") == (0, 0)
    for mode in ("bm25", "dense", "hybrid"):
        assert "to-delete" not in search_ids(client, "narwhal tusk", mode=mode)
    assert_error(client.get("/v1/documents/to-delete"), 404, "document_not_found")
    missing = client.delete("/v1/documents/to-delete?wait=true").json()["job"]
    assert missing["result"] == {"deleted": [], "not_found": ["to-delete"]}


def test_delete_by_filter(client: TestClient) -> None:
    docs = [
        {"id": f"tmp-{i}", "text": f"Temporary note number {i} about kites.", "batch": "tmp"}
        for i in range(3)
    ]
    client.post("/v1/documents?wait=true", json={"documents": docs})
    assert sorted(search_ids(client, "kites", mode="bm25")) == ["tmp-0", "tmp-1", "tmp-2"]
    response = client.post("/v1/documents/delete?wait=true", json={"filter": {"batch": "tmp"}})
    assert response.status_code == 200, response.text
    job = response.json()["job"]
    assert job["kind"] == "delete_filter" and job["state"] == "done"
    assert job["result"]["deleted"] == ["tmp-0", "tmp-1", "tmp-2"]
    assert search_ids(client, "kites", mode="bm25") == []
    assert all(stores(client, f"tmp-{i}") == (0, 0) for i in range(3))


def test_delete_by_filter_checks_the_filter(client: TestClient) -> None:
    bad = client.post("/v1/documents/delete", json={"filter": {"year": {"$gt": []}}})
    assert_error(bad, 422, "invalid_filter", "$.filter.year.$gt")
    assert_error(
        client.post("/v1/documents/delete", json={"filter": {}}), 422, "invalid_input", "$.filter"
    )


def test_delete_by_ids_in_the_body(client: TestClient) -> None:
    odd = {"id": "line\nbreak", "text": "Tardigrades survive in space."}
    client.post("/v1/documents?wait=true", json={"documents": [odd]})
    assert search_ids(client, "tardigrades", mode="bm25") == ["line\nbreak"]
    body = {"ids": ["line\nbreak", "never-there"]}
    job = client.post("/v1/documents/delete?wait=true", json=body).json()["job"]
    assert job["result"] == {"deleted": ["line\nbreak"], "not_found": ["never-there"]}
    assert search_ids(client, "tardigrades", mode="bm25") == []
    both = {"ids": ["a"], "filter": {"source": "docs"}}
    assert_error(client.post("/v1/documents/delete", json=both), 422, "invalid_input", "$")
    assert_error(client.post("/v1/documents/delete", json={}), 422, "invalid_input", "$")


def test_upsert_then_delete_run_in_order(client: TestClient) -> None:
    """A delete submitted right after an upsert of the same id runs after it."""
    doc = {"id": "ordered", "text": "Axolotls regrow their limbs."}
    upsert = client.post("/v1/documents", json={"documents": [doc]}).json()
    delete = client.delete("/v1/documents/ordered").json()
    assert wait_job(client, upsert["job_id"])["state"] == "done"
    assert wait_job(client, delete["job_id"])["result"]["deleted"] == ["ordered"]
    assert stores(client, "ordered") == (0, 0)


def test_doc_ids_with_slashes(client: TestClient) -> None:
    doc = {"id": "notes/2024/kelp.md", "text": "Kelp forests grow along cold rocky coasts."}
    client.post("/v1/documents?wait=true", json={"documents": [doc]})
    assert client.get("/v1/documents/notes/2024/kelp.md").json()["state"] == "indexed"
    job = client.delete("/v1/documents/notes/2024/kelp.md?wait=true").json()["job"]
    assert job["result"]["deleted"] == ["notes/2024/kelp.md"]


@pytest.mark.parametrize(
    ("documents", "code", "path"),
    [
        ([{"id": "a"}], "validation_error", "$.documents[0].text"),
        ([{"id": "a", "text": 5}], "validation_error", "$.documents[0].text"),
        ([{"text": "no id"}], "invalid_input", "$.documents[0]"),
        ([{"id": "a", "text": "   "}], "invalid_input", "$.documents[0]"),
        ([{"id": "a", "text": "ok", "bad key": 1}], "invalid_input", "$.documents[0]"),
        ([{"id": "a", "text": "ok", "nested": {"x": 1}}], "invalid_input", "$.documents[0]"),
        ([{"id": "a", "text": "ok", "tags": [1, 2]}], "invalid_input", "$.documents[0]"),
        ([{"id": True, "text": "ok"}], "validation_error", "$.documents[0].id"),
        ([{"id": "a" * 513, "text": "ok"}], "invalid_input", "$.documents[0]"),
        (
            [{"id": "a", "text": "x"}, {"id": "a", "text": "y"}],
            "invalid_input",
            "$.documents[1].id",
        ),
        ([], "validation_error", "$.documents"),
        ([{"id": str(i), "text": "t"} for i in range(21)], "limit_exceeded", "$.documents"),
    ],
)
def test_invalid_documents_are_refused_whole(
    client: TestClient, documents: list[dict[str, Any]], code: str, path: str
) -> None:
    before = client.get("/v1/stats").json()["queue"]["jobs"]
    response = client.post("/v1/documents", json={"documents": documents})
    assert_error(response, 422, code, path)
    assert client.get("/v1/stats").json()["queue"]["jobs"] == before  # nothing was queued


def test_text_size_limit(settings_for: Callable[..., Settings]) -> None:
    from braid.api.main import create_app

    # Limits are checked before the queue is needed: an app that never started will do.
    tiny = TestClient(create_app(settings_for("tiny-limits", max_document_chars=10)))
    response = tiny.post("/v1/documents", json={"documents": [{"id": "a", "text": "x" * 11}]})
    assert_error(response, 422, "limit_exceeded", "$.documents[0].text")


@pytest.mark.parametrize(
    ("extra", "path", "message"),
    [
        (
            {f"k{i}": i for i in range(4)},
            "$.documents[1]",
            "4 metadata fields, more than metadata.max_keys (3)",
        ),
        ({"note": "y" * 9}, "$.documents[1].note", "more than metadata.max_value_chars (8)"),
        ({"tags": ["ok", "z" * 9]}, "$.documents[1].tags", "a value of 9 characters"),
    ],
)
def test_metadata_limits(
    settings_for: Callable[..., Settings], extra: dict[str, Any], path: str, message: str
) -> None:
    from braid.api.main import create_app
    from braid.engine.config import MetadataSettings

    base = settings_for("metadata-limits")
    settings = base.model_copy(update={"metadata": MetadataSettings(max_keys=3, max_value_chars=8)})
    tiny = TestClient(create_app(settings))
    fine = {"id": "a", "text": "t", "k0": 1, "k1": 2, "note": "y" * 8}  # exactly at the limits
    response = tiny.post(
        "/v1/documents", json={"documents": [fine, {"id": "b", "text": "t", **extra}]}
    )
    assert_error(response, 422, "limit_exceeded", path)
    assert message in response.json()["error"]["message"]


def test_jobs_list_and_unknown_job(client: TestClient) -> None:
    jobs = client.get("/v1/jobs?limit=3").json()["jobs"]
    assert 1 <= len(jobs) <= 3
    done = client.get("/v1/jobs?state=done&limit=1000").json()["jobs"]
    assert all(j["state"] == "done" for j in done)
    assert_error(client.get("/v1/jobs/nope"), 404, "job_not_found")
    assert_error(client.get("/v1/jobs?state=lost"), 422, "validation_error", "query.state")


def test_remote_ingest_posts_the_shared_payload(client: TestClient, tmp_path: Path) -> None:
    """``braid ingest --api``: read locally, post in batches, follow the jobs."""
    rows = [
        {"id": "remote-1", "title": "Auroras", "text": "Auroras glow above the poles.", "n": 1},
        {"id": "remote-2", "text": "Geysers spout hot water.", "region": "iceland"},
        {"id": "remote-3", "text": "Dunes migrate with the wind.", "tags": ["sand", "wind"]},
    ]
    lines = [json.dumps(rows[0]), "{not json", json.dumps(rows[1]), json.dumps(rows[0])]
    path = tmp_path / "remote.jsonl"
    path.write_text("\n".join([*lines, json.dumps(rows[2])]) + "\n", encoding="utf-8")
    seen: list[Progress] = []
    report = RemoteIngest("unused", batch_size=2, client=client).run(
        read_inputs([str(path)]), on_progress=seen.append
    )
    assert (report.documents, report.chunks, report.skipped_unchanged) == (3, 3, 0)
    # Bad records are reported locally, with their line, and never sent.
    assert report.errors == [
        f"{path}:2: malformed JSON: Expecting property name enclosed in double quotes (column 2)",
        f"{path}:4: duplicate id 'remote-1' (first at {path}:1)",
    ]
    assert len(seen) == 2 and seen[-1] == Progress(3, 3, 0, 2)
    assert search_ids(client, "geysers hot water", mode="bm25", top_k=1) == ["remote-2"]
    for row in rows:
        body = client.get(f"/v1/documents/{row['id']}").json()
        metadata = {k: v for k, v in row.items() if k not in ("id", "title", "text")}
        assert body["metadata"] == metadata and body["title"] == row.get("title", "")
    again = RemoteIngest("unused", client=client).run(read_inputs([str(path)]))
    assert (again.documents, again.skipped_unchanged) == (0, 3)


def test_stats_agree_after_writes(client: TestClient) -> None:
    stats = client.get("/v1/stats").json()
    assert stats["consistent"] is True
    assert stats["dense"]["chunks"] == stats["sparse"]["chunks"] == stats["ledger"]["chunks"]
    assert stats["queue"]["depth"] == 0
    assert stats["worker"]["state"] == "idle"
    assert stats["worker"]["jobs_failed"] == 0
