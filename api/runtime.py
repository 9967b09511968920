"""What one server process holds: the stores, the searcher and the jobs (queue and worker).

A server has one of two roles (``settings.api.role``):

* ``owner`` (the default): it owns the data dir. It takes the data dir's lock, opens the
  stores for writing and runs the ingestion worker in a thread.
* ``reader``: a separate ``braid worker`` owns the data dir and runs the jobs. The server
  takes no lock: it opens Tantivy without a writer (following the worker's commits), the
  ledger read-only and Qdrant as a server shared by every process; writes are queued in
  the shared job queue for the worker. Any number of readers may serve one data dir.

Start-up is in two steps. ``preflight()`` runs inside the lifespan and fails an owner's
start at once when another process owns the data dir. ``start_loading()`` then loads the
models, opens the stores, warms them with a real query and (owner) starts the ingestion
worker in a background thread, so that ``/healthz`` answers while ``/readyz`` says 503
until all of it is done.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

from braid.api.batching import QueryBatchingEmbedder
from braid.api.metrics import Metrics
from braid.engine.config import Settings
from braid.engine.errors import BackendUnavailableError, BraidError
from braid.engine.factory import Engine, build_engine, embedder_backend, gpu_present
from braid.engine.locking import DataDirLock
from braid.engine.searcher import HybridSearcher
from braid.ingestion.jobs import IngestWorker, Job, JobService
from braid.ingestion.ledger import LEDGER_FILE, Ledger
from braid.ingestion.service import Workspace, open_workspace

SERVER_ROLE = "braid serve"
Status = Literal["loading", "ready", "stopping", "stopped", "failed"]
# A reader retries opening the stores while Qdrant cannot be reached (or, on a fresh server,
# while the worker and other readers race to create the collection): waits of 1, 2, 4, 8 s.
READER_OPEN_ATTEMPTS = 5
_log = logging.getLogger("braid.api")


def open_reader_engine(settings: Settings) -> Engine:
    """The engine of a reader: Qdrant shared with the worker, Tantivy without a writer."""
    return build_engine(settings, read_only=True)


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


def _serving(settings: Settings) -> Settings:
    """The settings a server runs with: what ``auto`` means when searches come concurrently.

    * ``embedder.spin_wait`` auto is off: onnxruntime's spinning intra-op threads took the
      cores the request threads needed (`braid bench api`, 8 clients, 2 cores: about 105
      against 130 searches/s).
    * ``embedder.cpu_threads`` auto is 1 on onnxruntime: each of the ``api.search_threads``
      (one per CPU) encodes its own query on one core; intra-op threads on top only wait
      on each other (measured in the README: 8 clients, 2 cores). torch keeps its threads.

    An explicit setting stands.
    """
    embedder = settings.embedder
    update: dict[str, object] = {}
    if embedder.spin_wait is None:
        update["spin_wait"] = False
    if embedder.cpu_threads is None and embedder_backend(settings) != "torch":
        update["cpu_threads"] = 1
    if not update:
        return settings
    return settings.model_copy(update={"embedder": embedder.model_copy(update=update)})


def micro_batching(settings: Settings) -> bool:
    """Whether a server embeds concurrent queries together (``api.micro_batch``).

    Auto: only where the query encoder runs on a GPU, where a batch of queries costs about
    what one does. On the CPU a batch costs what its queries cost apart, plus the padding
    of the shorter ones and a hand-off to the batching thread: measured slower (README).
    """
    if settings.api.micro_batch is not None:
        return settings.api.micro_batch
    return embedder_backend(settings) == "torch" and gpu_present(settings)


class Runtime:
    """The server's state, shared by every request through ``app.state.runtime``.

    Args:
        settings: the process's settings; ``api.role`` says owner or reader.
        micro_batch: embed concurrent queries together (default: ``micro_batching``).
        open_engine: how a reader opens its engine (default ``open_reader_engine``); tests
            pass one that shares an in-process Qdrant with a writer.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        micro_batch: bool | None = None,
        open_engine: Callable[[Settings], Engine] = open_reader_engine,
    ) -> None:
        self.settings = _serving(settings)
        # torch's threads (a torch embedder or reranker) as configured: _serving's one
        # thread is for the query encoder on onnxruntime.
        self._torch_threads = settings.embedder.cpu_threads or available_cpus()
        self.metrics = Metrics()
        self.micro_batch = micro_batching(self.settings) if micro_batch is None else micro_batch
        self.reader = settings.api.role == "reader"
        self.status: Status = "loading"
        self.error: BaseException | None = None
        self.workspace: Workspace | None = None  # an owner's (a reader has none)
        self.searcher: HybridSearcher | None = None
        # The jobs; an owner's service runs the worker, a reader's `braid worker` does.
        self.jobs: JobService | None = None
        self._open_engine = open_engine
        self._engine: Engine | None = None
        self._ledger: Ledger | None = None
        self._batcher: QueryBatchingEmbedder | None = None
        self._loader: threading.Thread | None = None
        self._ready = threading.Event()
        self._settled = threading.Event()  # loading ended, ready or failed
        self._stopping = threading.Event()  # close() was called
        # Searches run here, at most one per CPU at once: more threads than cores only
        # trade the GIL back and forth (measured in-process: 230 searches/s on two
        # threads, 173 on eight).
        self.search_pool = ThreadPoolExecutor(
            max_workers=self.settings.api.search_threads or available_cpus(),
            thread_name_prefix="braid-search",
        )

    # -- life cycle ----------------------------------------------------------------------

    def preflight(self) -> None:
        """Fail fast when an owner finds the data dir taken; open the job queue.

        A reader takes no lock, not even for a moment: the worker owns the data dir.

        Raises:
            IndexLockedError: another process (``braid ingest``, another server) owns it.
        """
        if not self.reader:
            probe = DataDirLock(self.settings.data_dir, role=SERVER_ROLE)
            probe.acquire()
            probe.release()
        self._open_jobs()

    def _open_jobs(self) -> JobService:
        if self.jobs is None:
            jobs = self.jobs = JobService.open(self.settings)
            self.metrics.track_queue_depth(lambda: float(jobs.queue.depth()))
        return self.jobs

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
        # torch is imported here, in the loading thread, not when the app module is imported.
        from braid.engine.devices import set_cpu_threads

        try:
            set_cpu_threads(self._torch_threads)
            engine = self._open_as_reader() if self.reader else self._open_as_owner()
            self.searcher = self._build_searcher(engine)
            # Cursors are refused once the index changed: the ledger counts every write.
            self.searcher.index_version = self.ledger.index_version
            self._warm(self.searcher)
            jobs = self._open_jobs()  # already open unless preflight was skipped
            if self.workspace is not None:
                jobs.start_worker(self.workspace.pipeline, on_finished=self._job_finished)
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
            _log.info("ready (%s): %s", self.settings.api.role, self.settings.data_dir)

    def _open_as_owner(self) -> Engine:
        workspace = open_workspace(
            self.settings, role=SERVER_ROLE, api_url=public_url(self.settings)
        )
        self.workspace = workspace
        self._engine, self._ledger = workspace.engine, workspace.ledger
        return workspace.engine

    def _open_as_reader(self) -> Engine:
        # build_engine(read_only=True) follows the worker's Tantivy commits.
        engine = self._open_reader_engine()
        self._engine = engine
        self._ledger = Ledger(self.settings.data_dir / LEDGER_FILE, read_only=True)
        return engine

    def _open_reader_engine(self) -> Engine:
        attempt = 1
        while True:
            try:
                return self._open_engine(self.settings)
            except BackendUnavailableError as exc:
                if attempt >= READER_OPEN_ATTEMPTS:
                    raise
                wait_s = 2.0 ** (attempt - 1)
                _log.warning("cannot open the stores (%s); retrying in %.0f s", exc, wait_s)
                if self._stopping.wait(wait_s):
                    raise
                attempt += 1

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
        """Stop the worker (a running upsert is queued again), close the stores, unlock.

        A reader has no worker and no lock: it closes its stores and the queue.
        """
        if self.status == "stopped":
            return
        self._stopping.set()
        if self.status in ("loading", "ready"):
            self.status = "stopping"
        self.metrics.ready.set(0)
        self._ready.clear()
        if self._loader is not None:
            self._loader.join()
        self.search_pool.shutdown(wait=True)
        if self.jobs is not None:
            self.jobs.stop_worker()
        # A searcher of our own (over the micro-batcher) has its own thread pool to close.
        if self.searcher is not None and self._batcher is not None:
            self.searcher.close()
        if self._batcher is not None:
            self._batcher.close()
        if self.workspace is not None:
            self.workspace.close()  # the engine, the ledger and the lock
        else:
            if self._engine is not None:
                self._engine.close()
            if self._ledger is not None:
                self._ledger.close()
        if self.jobs is not None:
            self.jobs.close()
        self.status = "stopped"

    # -- what requests use ---------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self.status == "ready"

    @property
    def worker(self) -> IngestWorker | None:
        """An owner's in-process worker; ``None`` on a reader (and before it started)."""
        return self.jobs.worker if self.jobs is not None else None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("the engine is not open")
        return self._engine

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            raise RuntimeError("the ledger is not open")
        return self._ledger
