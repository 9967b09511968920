"""Looking after a data dir: ``braid stats``, ``collections``, ``promote``, ``drop``.

None of them loads a model: the stores are opened alone, and the embedding model's identity
comes from the dense store's manifest. Model collections are Qdrant collections behind an
alias on a server (or local mode) and shard folders behind a pointer file on the embedded
Qdrant Edge (``ingestion.versions``); the commands and their output are the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from braid.cli.common import (
    DataDirOption,
    JsonOption,
    console,
    emit_json,
    load_settings,
    owned_workspace,
    print_fields,
    print_table,
)

if TYPE_CHECKING:
    from braid.engine.config import Settings


def _disk_usage(path: Path) -> int:
    # Blocks really used: Qdrant preallocates sparse files far larger than their content.
    if not path.exists():
        return 0
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file())


def _dense_files(settings: Settings) -> Path | None:
    """The serving dense shard's folder (Edge), ``None`` when the vectors live in Qdrant."""
    if settings.qdrant.mode != "edge":
        return None
    from braid.engine.dense.edge_versions import serving_path

    return serving_path(settings.data_dir)


def stats(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Counts per store and in the ledger, the embedding model, disk use."""
    with owned_workspace(load_settings(data_dir), "braid stats", models=False) as workspace:
        settings = workspace.settings
        dense_files = _dense_files(settings)  # the shard searches use, after any promote
        model = workspace.engine.dense.model  # from the store's manifest; None while empty
        dense_chunks = workspace.engine.dense.count()
        sparse_chunks = workspace.engine.sparse.count()
        ledger = workspace.ledger.totals()
        ledger_models = workspace.ledger.models()
    disk = _disk_usage(settings.data_dir)
    if as_json:
        emit_json(
            {
                "data_dir": str(settings.data_dir),
                "dense": {
                    "backend": settings.qdrant.mode,
                    "chunks": dense_chunks,
                    "bytes": _disk_usage(dense_files) if dense_files else 0,
                },
                "sparse": {
                    "backend": settings.sparse_label,
                    "chunks": sparse_chunks,
                    "bytes": _disk_usage(settings.sparse_files) if settings.sparse_files else 0,
                },
                "ledger": {
                    **ledger,
                    "models": [
                        {"id": m, "version": v, "documents": n} for m, v, n in ledger_models
                    ],
                },
                "embedding_model": None
                if model is None
                else {"id": model.model_id, "version": model.version, "dim": model.dim},
                "bytes": disk,
            }
        )
        return
    described = (
        "none yet" if model is None else f"{model.model_id} @ {model.version} (dim {model.dim})"
    )
    print_fields(
        f"braid stats: {settings.data_dir}",
        [
            ("ledger documents / chunks", f"{ledger['documents']:,} / {ledger['chunks']:,}"),
            (f"dense chunks ({settings.qdrant.mode})", f"{dense_chunks:,}"),
            (f"sparse chunks ({settings.sparse_label})", f"{sparse_chunks:,}"),
            ("pending documents", f"{ledger['pending_documents']:,}"),
            ("embedding model", described),
            ("disk", f"{disk / 1e6:,.1f} MB"),
        ],
    )


def collections(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """The collections built per embedding model version, and which one searches use."""
    from braid.ingestion.versions import collections as list_collections

    with owned_workspace(load_settings(data_dir), "braid collections", models=False) as workspace:
        found = list_collections(workspace)
    if as_json:
        emit_json({"collections": found})
        return
    print_table(
        "model collections",
        ("collection", "model", "version", "points", "serving"),
        [
            (
                c["collection"],
                c["model_id"],
                c["model_version"],
                f"{c['points']:,}",
                "yes" if c["serving"] else "",
            )
            for c in found
        ],
    )


def promote(
    collection: Annotated[
        str, typer.Argument(help="the collection to serve (see `braid collections`)")
    ],
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Switch searches to another model's collection, atomically (alias or Edge pointer)."""
    from braid.ingestion.versions import promote_collection

    with owned_workspace(load_settings(data_dir), "braid promote", models=False) as workspace:
        result = promote_collection(workspace, collection)
    if as_json:
        emit_json(result)
    else:
        console.print(
            f"serving {result['serving']}: set BRAID_EMBEDDER__MODEL={result['model_id']} "
            "for this data dir"
        )


def drop(
    names: Annotated[
        list[str], typer.Argument(help="collections to delete (never the one served)")
    ],
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete model collections that searches no longer use."""
    from braid.ingestion.versions import drop_collections

    with owned_workspace(load_settings(data_dir), "braid drop", models=False) as workspace:
        dropped = drop_collections(workspace, names)
    if as_json:
        emit_json({"dropped": dropped})
    else:
        # Unknown names are skipped (a re-run is not an error), but said.
        missing = [n for n in names if n not in dropped]
        note = f" (not found: {', '.join(missing)})" if missing else ""
        console.print(f"dropped {len(dropped)} collections{note}")
