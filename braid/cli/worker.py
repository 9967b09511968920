"""``braid worker``: the one writer of a data dir served by reader API processes."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from braid.cli.common import (
    DataDirOption,
    JsonOption,
    emit_json,
    exit_on_error,
    load_settings,
)


def worker(
    data_dir: DataDirOption = None,
    poll_s: Annotated[
        float,
        typer.Option(
            "--poll-s", min=0.05, max=60.0, help="how often the queue is read for new jobs"
        ),
    ] = 0.5,
    as_json: JsonOption = False,
) -> None:
    """Run the ingestion worker in the foreground: the data dir's one writer.

    It owns the data dir (its lock, the stores' writers) and runs, in submission order, the
    jobs that reader servers (BRAID_API__ROLE=reader, with a Qdrant server) queue in
    <data_dir>/jobs.sqlite. It logs a line per finished job. SIGTERM or Ctrl-C stops it
    cleanly: a running upsert is queued again, the stores are closed; a second signal
    stops it at once.
    """
    import json
    import logging
    import signal
    import threading

    from braid.ingestion.jobs import Job, run_worker

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    log = logging.getLogger("braid.worker")
    settings = load_settings(data_dir)
    stop = threading.Event()

    def on_signal(signum: int, _: object) -> None:
        log.info("%s: finishing up (send it again to stop at once)", signal.Signals(signum).name)
        stop.set()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)

    def on_finished(job: Job) -> None:
        outcome = json.dumps(job.result) if job.state == "done" else job.error
        log.info("job %s %s (%d items) %s: %s", job.id, job.kind, job.items, job.state, outcome)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    with exit_on_error():
        status = run_worker(
            settings,
            stop,
            poll_s=poll_s,
            on_started=lambda: log.info("ready (pid %d)", os.getpid()),
            on_finished=on_finished,
        )
    log.info("stopped: %d jobs done, %d failed", status.jobs_done, status.jobs_failed)
    if as_json:
        emit_json(
            {
                "jobs_done": status.jobs_done,
                "jobs_failed": status.jobs_failed,
                "last_error": status.last_error,
            }
        )
