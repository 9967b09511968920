"""``braid serve``: the REST API (and the search page at ``/``) under uvicorn."""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from braid.cli.common import DataDirOption, ExitCode, console, exit_on_error, fail, load_settings

if TYPE_CHECKING:
    from braid.engine.config import Settings

KEEP_ALIVE_S = 30


def serve(
    host: Annotated[
        str | None,
        typer.Option(help="address to listen on (default 127.0.0.1, env BRAID_API__HOST)"),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(min=1, max=65535, help="port (default 8000, env BRAID_API__PORT)"),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="uvicorn worker processes: more than 1 only with api.role=reader (see above)",
        ),
    ] = 1,
    data_dir: DataDirOption = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
) -> None:
    """Serve the REST API (and the search page at /) with uvicorn.

    By default (api.role=owner) the server owns the data dir: it holds its lock, writes the stores and runs the ingestion worker, so one worker process serves a data dir and --workers above 1 is refused.

    With a Qdrant server (BRAID_QDRANT__MODE=server, BRAID_QDRANT__URL=...) the server can be a reader (BRAID_API__ROLE=reader): it opens the stores read-only, takes no lock and queues writes for one separate `braid worker` on the same data dir. Readers may run --workers N, and any number of them may share the data dir.

    API keys come from BRAID_API__KEYS (read and write) and BRAID_API__READ_KEYS (read only), as JSON lists. Without read keys, searches are open.
    """
    import uvicorn

    from braid.engine.locking import DataDirLock

    settings = load_settings(data_dir)
    api = settings.api.model_copy(
        update={"host": host or settings.api.host, "port": port or settings.api.port}
    )
    settings = settings.model_copy(update={"api": api})
    reader = settings.api.role == "reader"
    if workers > 1 and not reader:
        raise fail(
            "--workers > 1 needs api.role=reader (BRAID_API__ROLE=reader, with "
            "qdrant.mode=server) and a separate `braid worker`: an owner holds the data dir's "
            "lock and runs the ingestion worker, so one process serves it",
            ExitCode.USAGE,
        )
    busy = listen_problem(settings.api.host, settings.api.port)
    if busy is not None:
        # Before uvicorn, which would load the app, fail to bind and exit 3 (not ours).
        raise fail(busy, ExitCode.FAILED)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    role = "reader" if reader else "owner"
    console.print(
        f"braid serve ({role}, {workers} worker{'s' if workers > 1 else ''}): "
        f"http://{settings.api.host}:{settings.api.port}/ "
        f"(data dir {settings.data_dir}, docs at /docs)"
    )
    if workers > 1:
        _serve_workers(settings, workers, log_level)
        return
    from braid.api.main import create_app
    from braid.api.runtime import SERVER_ROLE

    with exit_on_error():
        if not reader:
            # Say who owns the data dir before uvicorn starts (the lifespan checks again).
            # A reader takes no lock, not even for a moment: the worker owns the data dir.
            probe = DataDirLock(settings.data_dir, role=SERVER_ROLE)
            probe.acquire()
            probe.release()
        app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.api.host,
        port=settings.api.port,
        log_level=log_level,
        # Requests past the body limit are refused by the app; keep-alive helps clients.
        timeout_keep_alive=KEEP_ALIVE_S,
    )
    server = uvicorn.Server(config)
    with _uvicorn_exit():
        server.run()
    if not server.started:
        # The lifespan refused to start (the data dir is owned by another process, ...).
        raise typer.Exit(ExitCode.FAILED)


def _serve_workers(settings: Settings, workers: int, log_level: str) -> None:
    """Readers in ``workers`` processes: each builds its own app from the environment."""
    import uvicorn

    from braid.api.runtime import available_cpus

    # The worker processes read their settings from the environment (api.main.app_from_env):
    # pass on what the command line chose, and split the CPUs between their models.
    os.environ["BRAID_DATA_DIR"] = str(settings.data_dir)
    os.environ["BRAID_API__HOST"] = settings.api.host
    os.environ["BRAID_API__PORT"] = str(settings.api.port)
    if settings.embedder.cpu_threads is None:
        threads = max(1, available_cpus() // workers)
        os.environ["BRAID_EMBEDDER__CPU_THREADS"] = str(threads)
    with _uvicorn_exit():
        uvicorn.run(
            "braid.api.main:app_from_env",
            factory=True,
            workers=workers,
            host=settings.api.host,
            port=settings.api.port,
            log_level=log_level,
            timeout_keep_alive=KEEP_ALIVE_S,
        )


def listen_problem(host: str, port: int) -> str | None:
    """Why the server could not listen on ``host:port`` (``None``: it can), found by
    binding a socket there as uvicorn will, with SO_REUSEADDR (a port in TIME_WAIT is free)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is in use: stop what listens there or pick --port"
            return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    return None


@contextmanager
def _uvicorn_exit() -> Iterator[None]:
    """Uvicorn's own failure exits (3 when it cannot bind or start) as the CLI's code 1:
    the port may still be taken between the check above and uvicorn's bind."""
    try:
        yield
    except SystemExit as exc:
        if exc.code not in (None, 0):
            raise typer.Exit(ExitCode.FAILED) from exc
        raise
