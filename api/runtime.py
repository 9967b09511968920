"""What one server process holds: the workspace, the searcher, the job queue and the worker.

Start-up is in two steps. ``preflight()`` runs inside the lifespan and fails the start at
once when another process owns the data dir. ``start_loading()`` then loads the models,
opens the stores, warms them with a real query and starts the ingestion worker in a
background thread, so that ``/healthz`` answers while ``/readyz`` says 503 until all of it is
done.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Literal

from api.batching import QueryBatchingEmbedder
from api.metrics import Metrics
from engine.config import Settings
from engine.devices import set_cpu_threads
from engine.errors import BraidError
from engine.factory import Engine
from engine.locking import DataDirLock
from engine.searcher import HybridSearcher
from ingestion.ledger import Ledger
from ingestion.service import Workspace, open_workspace
from ingestion.worker import JOBS_FILE, IngestWorker, Job, JobQueue

SERVER_ROLE = "braid serve"
Status = Literal["loading", "ready", "stopping", "stopped", "failed"]
_log = logging.getLogger("braid.api")


def available_cpus() -> int:
    """CPUs this process may run on (a container's share, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def public_url(settings: Settings) -> str:
    """The URL other processes on this machine use to reach this server."""
    host = settings.api.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.api.port}"


class Runtime:
    """The server's state, shared by every request through ``app.state.runtime``."""

    def __init__(self, settings: Settings, *, micro_batch: bool = True) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.micro_batch = micro_batch
        self.status: Status = "loading"
        self.error: BaseException | None = None
        self.workspace: Workspace | None = None
        self.searcher: HybridSearcher | None = None
        self.worker: IngestWorker | None = None
        self.queue: JobQueue | None = None
        self._batcher: QueryBatchingEmbedder | None = None
        self._loader: threading.Thread | None = None
        self._ready = threading.Event()
        self._settled = threading.Event()  # loading ended, ready or failed

    # -- life cycle ----------------------------------------------------------------------

    def preflight(self) -> None:
        """Fail fast when the data dir is taken; open the job queue.

        Raises:
            IndexLockedError: another process (``braid ingest``, another server) owns it.
        """
        probe = DataDirLock(self.settings.data_dir, role=SERVER_ROLE)
        probe.acquire()
        probe.release()
        self.queue = JobQueue(
            self.settings.data_dir / JOBS_FILE, max_unfinished=self.settings.api.max_queue_jobs
        )
        self.metrics.track_queue_depth(lambda: float(self.queue.depth()) if self.queue else 0.0)

    def start_loading(self) -> None:
        self._loader = threading.Thread(target=self._load, name="braid-api-loader", daemon=True)
        self._loader.start()

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait until loading has ended; ``True`` when the service is ready."""
        self._settled.wait(timeout)
        return self.ready

    def _load(self) -> None:
        try:
            self._load_everything()
        finally:
            self._settled.set()

    def _load_everything(self) -> None:
        try:
            set_cpu_threads(self.settings.embedder.cpu_threads or available_cpus())
            workspace = open_workspace(
                self.settings, role=SERVER_ROLE, api_url=public_url(self.settings)
            )
            self.workspace = workspace
            self.searcher = self._build_searcher(workspace.engine)
            self._warm(self.searcher)
            if self.queue is None:  # preflight was skipped
                self.queue = JobQueue(
                    self.settings.data_dir / JOBS_FILE,
                    max_unfinished=self.settings.api.max_queue_jobs,
                )
            self.worker = IngestWorker(
                self.queue, workspace.pipeline, on_finished=self._job_finished
            )
            self.worker.start()
        except BaseException as exc:  # reported by /readyz; the process keeps serving 503s
            self.error = exc
            self.status = "failed"
            self.metrics.ready.set(0)
            if isinstance(exc, BraidError):
                _log.error("braid serve cannot start: %s", exc)
            else:
                _log.exception("braid serve cannot start")
            return
        if self.status == "loading":
            self.status = "ready"
            self.metrics.ready.set(1)
            self._ready.set()
            _log.info("ready: %s", self.settings.data_dir)

    def _build_searcher(self, engine: Engine) -> HybridSearcher:
        if not self.micro_batch:
            return engine.searcher
        self._batcher = QueryBatchingEmbedder(
            engine.embedder, on_batch=self.metrics.query_batch.observe
        )
        base = engine.searcher
        return HybridSearcher(
            self._batcher, engine.dense, engine.sparse, base.reranker, base.defaults
        )

    @staticmethod
    def _warm(searcher: HybridSearcher) -> None:
        # One real query through every stage: the first encode pays for lazy initialisation.
        searcher.search("warm up the models", top_k=1, mode="hybrid", rerank=False)
        if searcher.reranker is not None:
            searcher.reranker.score("warm up", ["the reranker"])

    def _job_finished(self, job: Job) -> None:
        self.metrics.jobs_finished.labels(kind=job.kind, state=job.state).inc()

    def close(self) -> None:
        """Stop the worker (a running upsert is queued again), close the stores, unlock."""
        if self.status == "stopped":
            return
        if self.status in ("loading", "ready"):
            self.status = "stopping"
        self.metrics.ready.set(0)
        self._ready.clear()
        if self._loader is not None:
            self._loader.join()
        if self.worker is not None:
            self.worker.stop()
        # A searcher of our own (over the micro-batcher) has its own thread pool to close.
        if self.searcher is not None and self._batcher is not None:
            self.searcher.close()
        if self._batcher is not None:
            self._batcher.close()
        if self.workspace is not None:
            self.workspace.close()
        if self.queue is not None:
            self.queue.close()
        self.status = "stopped"

    # -- what requests use ---------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self.status == "ready"

    @property
    def engine(self) -> Engine:
        if self.workspace is None:
            raise RuntimeError("the engine is not open")
        return self.workspace.engine

    @property
    def ledger(self) -> Ledger:
        if self.workspace is None:
            raise RuntimeError("the ledger is not open")
        return self.workspace.ledger
