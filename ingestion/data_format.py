"""The data dir's format version: a data dir written by a newer braid is refused, not misread.

``braid-format.json`` (``{"format": N, "written_by": "braid X.Y.Z"}``) is written when a data
dir is first opened for writing. A data dir from before the marker existed (it has a ledger
but no marker) is format 1, which is what this braid writes, and gets the marker.
"""

from __future__ import annotations

import json
import os
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from braid.engine.errors import ConfigError

FORMAT_FILE = "braid-format.json"
DATA_FORMAT = 1  # raise when a data dir written by this braid could not be read by an older one


def _braid_version() -> str:
    try:
        return version("braid")
    except PackageNotFoundError:
        return "unknown"


def check_data_format(data_dir: Path) -> None:
    """Refuse a data dir of an unknown format; mark one that has no marker yet.

    Called by the data dir's owner, with its lock held.

    Raises:
        ConfigError: the data dir was written by a newer braid, or its marker is unreadable.
    """
    path = data_dir / FORMAT_FILE
    if not path.exists():
        temporary = path.with_suffix(".tmp")
        temporary.write_text(
            json.dumps({"format": DATA_FORMAT, "written_by": f"braid {_braid_version()}"})
        )
        os.replace(temporary, path)  # atomic: a reader never sees half a marker
        return
    try:
        found = json.loads(path.read_text())
        data_format = int(found["format"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path} is not a braid format marker: {exc}") from exc
    if data_format > DATA_FORMAT:
        raise ConfigError(
            f"{data_dir} was written by a newer braid ({found.get('written_by', 'unknown')}, "
            f"data format {data_format}); this braid {_braid_version()} reads format "
            f"{DATA_FORMAT}: upgrade braid to open it"
        )
