"""Models load only when needed: the settings, the stores and an engine opened without models
never import torch (checked in a fresh interpreter, where nothing else has imported it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

_PROBE = """
import json, sys
import braid.engine.config, braid.engine.errors, braid.engine.filters, braid.engine.locking
import braid.engine.models, braid.engine.profiles, braid.engine.fusion, braid.engine.factory
import braid.engine.dense.edge, braid.engine.dense.qdrant, braid.engine.sparse.qdrant_sparse
from braid.engine.config import Settings
from braid.engine.errors import ModelsNotLoadedError
from braid.engine.factory import build_engine, open_stores

settings = Settings(data_dir=sys.argv[1], sparse={"backend": sys.argv[2]})
stores = open_stores(settings)
out = {"model": stores.dense.model, "counts": [stores.dense.count(), stores.sparse.count()]}
stores.close()
engine = build_engine(settings, models=False)
try:
    engine.embedder.info
except ModelsNotLoadedError as exc:
    out["refused"] = str(exc)
engine.close()
out["loaded"] = sorted(m for m in sys.modules if m.split(".")[0] in {"torch", "sentence_transformers", "transformers"})
print(json.dumps(out))
"""


def _probe(data_dir: Path, backend: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRAID_")}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(data_dir), backend],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_stores_and_an_engine_without_models_import_no_torch(tmp_path: Path) -> None:
    for backend in ("tantivy", "qdrant"):
        seen = _probe(tmp_path / backend, backend)
        assert seen["loaded"] == []
        assert seen["model"] is None  # a new data dir: nothing recorded, nothing created
        assert seen["counts"] == [0, 0]
        assert "models=False" in str(seen["refused"])
        assert not (tmp_path / backend / "dense" / "braid-model.json").exists()
