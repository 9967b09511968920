"""``braid serve``: registered on the root command through the ``braid.commands`` entry point."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from engine.config import Settings

console = Console(stderr=True)

SERVE_HELP = """Serve the REST API (and the search page at /) with uvicorn.

In embedded mode (qdrant.mode=edge, the default) one process owns the stores, so one worker serves a data dir. More workers are only possible with qdrant.mode=server (BRAID_QDRANT__MODE=server, BRAID_QDRANT__URL=...), and they also need read-only replicas of the Tantivy index, which braid does not have yet: --workers above 1 is refused for now.

API keys come from BRAID_API__KEYS (read and write) and BRAID_API__READ_KEYS (read only), as JSON lists. Without read keys, searches are open.
"""


def register(app: typer.Typer) -> None:
    """Add the API's commands to the root ``braid`` command."""
    app.command(name="serve", help=SERVE_HELP)(serve)


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
            help="worker processes: 1 in embedded mode (see above)",
        ),
    ] = 1,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir", help="data directory (default ./braid-data, env BRAID_DATA_DIR)"
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
) -> None:
    import uvicorn

    from engine.errors import BraidError
    from engine.locking import DataDirLock

    try:
        settings = Settings() if data_dir is None else Settings(data_dir=data_dir)
    except ValueError as exc:
        console.print(f"[bold red]error:[/] invalid settings: {exc}")
        raise typer.Exit(2) from exc
    api = settings.api.model_copy(
        update={"host": host or settings.api.host, "port": port or settings.api.port}
    )
    settings = settings.model_copy(update={"api": api})
    if workers > 1:
        if settings.qdrant.mode != "server":
            console.print(
                "[bold red]error:[/] --workers > 1 needs qdrant.mode=server: in embedded mode "
                "one process owns the stores"
            )
            raise typer.Exit(2)
        console.print(
            "[bold red]error:[/] --workers > 1 is not supported yet: the Tantivy index and the "
            "ingestion queue belong to one process (run one worker; scale with replicas)"
        )
        raise typer.Exit(2)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from api.main import create_app
    from api.runtime import SERVER_ROLE

    try:
        # Say who owns the data dir before uvicorn starts (the lifespan checks again).
        probe = DataDirLock(settings.data_dir, role=SERVER_ROLE)
        probe.acquire()
        probe.release()
        app = create_app(settings)
    except BraidError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(1) from exc
    console.print(
        f"braid serve: http://{settings.api.host}:{settings.api.port}/ "
        f"(data dir {settings.data_dir}, docs at /docs)"
    )
    config = uvicorn.Config(
        app,
        host=settings.api.host,
        port=settings.api.port,
        log_level=log_level,
        # Requests past the body limit are refused by the app; keep-alive helps clients.
        timeout_keep_alive=30,
    )
    server = uvicorn.Server(config)
    server.run()
    if not server.started:
        # The lifespan refused to start (the data dir is owned by another process, ...).
        raise typer.Exit(1)
