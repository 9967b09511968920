"""Send documents to a running ``braid serve`` instead of opening its stores.

The stores are single-process: while a server owns the data dir, ``braid ingest`` posts
the documents to its ``/v1/documents`` endpoint in batches and follows the jobs, so the one
process that owns the stores writes them. Read errors are reported locally with their line.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import httpx

from braid.engine.errors import BackendUnavailableError
from braid.ingestion.documents import InputError, SkippedFile
from braid.ingestion.payload import DocumentPayload
from braid.ingestion.pipeline import IngestReport, Progress
from braid.ingestion.readers import ReadItem, without_duplicates

POLL_SECONDS = 0.25
MAX_BUSY_RETRIES = 60


class RemoteIngest:
    """Posts batches to ``{api}/v1/documents`` and waits for their jobs.

    Args:
        api_url: the server's base URL.
        api_key: a write key, sent as ``Authorization: Bearer``.
        batch_size: documents per request (and per job).
        timeout: seconds for each HTTP request.
        client: send through this client (its base URL and headers) instead of one built
            from the arguments above; the caller keeps it and closes it.
    """

    def __init__(
        self,
        api_url: str,
        api_key: str | None = None,
        batch_size: int = 256,
        timeout: float = 60.0,
        *,
        client: httpx.Client | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._owns_client = client is None
        self._client = client or httpx.Client(
            base_url=api_url.rstrip("/"), headers=headers, timeout=timeout
        )
        self._batch_size = batch_size

    def run(
        self,
        records: Iterable[ReadItem],
        *,
        strict: bool = False,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> IngestReport:
        started = time.perf_counter()
        report = IngestReport()
        batch: list[DocumentPayload] = []
        try:
            for record in without_duplicates(records):
                if isinstance(record, SkippedFile):
                    report.skipped_files.append(str(record))
                    continue
                if isinstance(record, InputError):
                    report.errors.append(str(record))
                    if strict:
                        break
                    continue
                batch.append(DocumentPayload.from_document(record))
                if len(batch) >= self._batch_size:
                    self._send(batch, report, on_progress)
                    batch = []
            if batch:
                self._send(batch, report, on_progress)
        except httpx.HTTPError as exc:
            raise BackendUnavailableError(
                f"braid server at {self._client.base_url}: {exc}"
            ) from exc
        finally:
            if self._owns_client:
                self._client.close()
        report.seconds = time.perf_counter() - started
        return report

    def _send(
        self,
        batch: list[DocumentPayload],
        report: IngestReport,
        on_progress: Callable[[Progress], None] | None,
    ) -> None:
        body = {"documents": [document.to_json() for document in batch]}
        for _ in range(MAX_BUSY_RETRIES):
            response = self._client.post("/v1/documents", json=body)
            if response.status_code != 503:
                break
            # Queue full or not ready yet: the server says when to come back.
            time.sleep(float(response.headers.get("Retry-After", "5")))
        if response.status_code >= 400:
            raise BackendUnavailableError(
                f"the server refused a batch ({response.status_code}): {response.text[:500]}"
            )
        job_id = response.json()["job_id"]
        while True:
            job = self._client.get(f"/v1/jobs/{job_id}").json()
            if job["state"] in ("done", "failed"):
                break
            time.sleep(POLL_SECONDS)
        if job["state"] == "failed":
            report.errors.append(f"server job {job_id} failed: {job.get('error')}")
            return
        result = job.get("result") or {}
        report.documents += int(result.get("documents", 0))
        report.chunks += int(result.get("chunks", 0))
        report.skipped_unchanged += int(result.get("skipped_unchanged", 0))
        report.deleted += int(result.get("deleted", 0))
        report.errors.extend(str(e) for e in result.get("errors", []))
        if on_progress is not None:
            on_progress(
                Progress(
                    report.documents, report.chunks, report.skipped_unchanged, len(report.errors)
                )
            )
