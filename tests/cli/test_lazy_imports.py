"""Models only when needed: the commands that encode nothing never import torch.

Structural, not timed: each command runs through ``braid.cli.app.main`` in a fresh
interpreter, which then reports the heavy modules found in ``sys.modules``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import HEAVY_MODULES, cli_env, copy_data_dir

# Runs `braid ARGS`, then prints (on the last line of stdout) its exit code and which of the
# heavy modules it imported.
PROBE = """
import json, sys
from braid.cli.app import main
heavy = json.loads(sys.argv[2])
sys.argv = ["braid", *json.loads(sys.argv[1])]
try:
    main()
    code = 0
except SystemExit as exc:
    code = exc.code or 0
found = sorted(m for m in heavy if m in sys.modules)
print("\\n" + json.dumps({"code": code, "heavy": found}))
"""


def run_probe(*args: str, env: dict[str, str] | None = None) -> tuple[dict[str, Any], str]:
    """``braid ARGS`` in a fresh interpreter: its report and its stdout before it."""
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(list(args)), json.dumps(HEAVY_MODULES)],
        env=cli_env(**(env or {})),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    output, _, last = proc.stdout.rstrip("\n").rpartition("\n")
    return json.loads(last), output


def test_help_imports_no_model_library() -> None:
    report, output = run_probe("--help")
    assert report == {"code": 0, "heavy": []}
    assert "ingest" in output and "search" in output and "bench" in output


@pytest.mark.parametrize("group", ["eval", "train", "bench"])
def test_group_help_imports_no_model_library(group: str) -> None:
    report, _ = run_probe(group, "--help")
    assert report == {"code": 0, "heavy": []}


def test_admin_commands_import_no_model_library(
    sample_data: tuple[Path, Any], tmp_path: Path
) -> None:
    data = copy_data_dir(sample_data[0], tmp_path / "data")
    report, output = run_probe("stats", "--json", "--data-dir", str(data))
    assert report == {"code": 0, "heavy": []}
    stats = json.loads(output)
    # The model identity comes from the store's manifest, without loading the model.
    assert stats["embedding_model"]["id"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert stats["dense"]["chunks"] == 12

    report, output = run_probe("delete", "sourdough", "--json", "--data-dir", str(data))
    assert report == {"code": 0, "heavy": []}
    assert json.loads(output) == {"deleted": ["sourdough"], "not_found": []}

    report, output = run_probe("optimize", "--json", "--data-dir", str(data))
    assert report == {"code": 0, "heavy": []}
    assert json.loads(output) == {"dense_chunks": 11, "sparse_chunks": 11}


def test_model_collection_commands_import_no_model_library(local_mode_data: Path) -> None:
    env = {"BRAID_QDRANT__MODE": "local"}
    report, output = run_probe("collections", "--json", "--data-dir", str(local_mode_data), env=env)
    assert report == {"code": 0, "heavy": []}
    [only] = json.loads(output)["collections"]
    assert (only["points"], only["serving"]) == (12, True)
    report, _ = run_probe(
        "promote", only["collection"], "--data-dir", str(local_mode_data), env=env
    )
    assert report == {"code": 0, "heavy": []}
    report, output = run_probe(
        "drop", "no-such", "--json", "--data-dir", str(local_mode_data), env=env
    )
    assert report == {"code": 0, "heavy": []}
    assert json.loads(output) == {"dropped": []}
