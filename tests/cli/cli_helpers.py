"""Helpers shared by the CLI tests (a plain module: tests/cli has no __init__)."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from braid.cli.app import app

TESTS_DIR = Path(__file__).resolve().parents[1]
SAMPLE_PATH = TESTS_DIR / "data" / "sample.jsonl"
TORCH_THREADS = 2
# What ``braid --help`` and the commands that open no model must never import.
HEAVY_MODULES = ("torch", "sentence_transformers", "transformers")


def sample_ids() -> set[str]:
    with SAMPLE_PATH.open(encoding="utf-8") as handle:
        return {str(json.loads(line)["id"]) for line in handle if line.strip()}


# What every test process pins (tests/conftest.py): the torch encoder, the test ONNX cache.
PINNED = ("BRAID_EMBEDDER__BACKEND", "BRAID_EMBEDDER__ONNX_CACHE_DIR")


def _pinned() -> dict[str, str]:
    return {k: os.environ[k] for k in PINNED if k in os.environ}


def cli_env(**extra: str) -> dict[str, str]:
    """Environment for a ``braid`` subprocess: CPU, two threads, no stray BRAID_ settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRAID_")}
    env |= {
        "BRAID_EMBEDDER__DEVICE": "cpu",
        "BRAID_EMBEDDER__CPU_THREADS": str(TORCH_THREADS),
        "TOKENIZERS_PARALLELISM": "false",
        **_pinned(),
    }
    return env | extra


def make_runner(**extra: str) -> CliRunner:
    """A CliRunner whose commands see no BRAID_ setting of this process, only ``extra``."""
    env: Mapping[str, str | None] = {k: None for k in os.environ if k.startswith("BRAID_")} | {
        "BRAID_EMBEDDER__DEVICE": "cpu",
        "BRAID_EMBEDDER__CPU_THREADS": str(TORCH_THREADS),
        **_pinned(),
        **extra,
    }
    return CliRunner(env=env)


def braid(runner: CliRunner, *args: str, stdin: bytes | None = None) -> Result:
    """``braid ARGS`` in this process, through the root app."""
    return runner.invoke(app, list(args), input=stdin, catch_exceptions=False)


def braid_json(runner: CliRunner, *args: str, code: int = 0) -> Any:
    """``braid ARGS --json``: its exit code checked, its stdout parsed."""
    result = braid(runner, *args, "--json")
    assert result.exit_code == code, result.stderr
    return json.loads(result.stdout)


def copy_data_dir(source: Path, target: Path) -> Path:
    """A copy of a data dir that no process holds open (stores, ledger and all)."""
    shutil.copytree(source, target)
    return target


def python_command() -> list[str]:
    """``braid`` run by this interpreter, whether or not its console script is installed."""
    return [sys.executable, "-m", "braid.cli"]


# `braid ingest --json`: the README's CLI contract.
INGEST_KEYS = {
    "documents",
    "chunks",
    "skipped_unchanged",
    "deleted",
    "errors",
    "skipped_files",
    "seconds",
}
