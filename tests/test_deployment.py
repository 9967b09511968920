"""What can be checked of docker-compose.yml and the Dockerfile without a Docker engine."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from pydantic import BaseModel

from braid.cli.app import app as braid_app
from braid.engine.config import Settings
from braid.ingestion.jobs import WORKER_ROLE

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def _setting_exists(variable: str) -> bool:
    """``BRAID_QDRANT__URL`` -> Settings.qdrant.url exists."""
    path = variable.removeprefix("BRAID_").lower().split("__")
    model: type[BaseModel] = Settings
    for i, part in enumerate(path):
        field = model.model_fields.get(part)
        if field is None:
            return False
        annotation = field.annotation
        if i < len(path) - 1:
            if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
                return False
            model = annotation
    return True


def test_every_braid_variable_is_a_real_setting(compose: dict[str, Any]) -> None:
    variables = set()
    for service in compose["services"].values():
        variables |= {k for k in (service.get("environment") or {}) if k.startswith("BRAID_")}
    variables |= set(compose["x-braid-env"])
    assert "BRAID_QDRANT__URL" in variables
    unknown = sorted(v for v in variables if not _setting_exists(v))
    assert unknown == []
    assert not _setting_exists("BRAID_QDRANT__NO_SUCH_FIELD")


def _settings_from(environment: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings a container with this environment builds (and nothing from ours)."""
    for key in [k for k in os.environ if k.startswith("BRAID_")]:
        monkeypatch.delenv(key)
    for key, value in environment.items():
        # Compose substitutes ${VAR:?...} / ${VAR:-default}; use the default or a sample.
        match = re.fullmatch(r"\$\{(\w+)(?::-(.*)|:\?.*)\}", str(value))
        monkeypatch.setenv(key, (match.group(2) or "sample-key") if match else str(value))
    return Settings()


def test_api_settings_load_from_the_compose_environment(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings_from(compose["x-braid-env"], monkeypatch)
    assert settings.qdrant.mode == "server"
    assert settings.qdrant.url == "http://qdrant:6333"
    assert settings.qdrant.api_key is not None
    assert str(settings.data_dir) == "/data"


def _data_volumes(service: dict[str, Any]) -> set[str]:
    return {v.split(":")[0] for v in service.get("volumes", []) if v.split(":")[1] == "/data"}


def test_one_worker_writes_and_the_api_reads(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    services = compose["services"]
    worker, api = services["worker"], services["api"]
    assert worker["command"] == ["braid", "worker"]
    assert worker["build"] == api["build"]  # one image
    assert worker["depends_on"]["qdrant"]["condition"] == "service_healthy"
    assert _data_volumes(worker) == _data_volumes(api) == {"braid-data"}
    assert "replicas" not in worker.get("deploy", {})  # the data dir admits one owner

    api_settings = _settings_from(api["environment"], monkeypatch)
    worker_settings = _settings_from(worker["environment"], monkeypatch)
    assert api_settings.api.role == "reader"
    assert worker_settings.api.role == "owner"
    for settings in (api_settings, worker_settings):
        assert settings.qdrant.mode == "server"
        assert settings.qdrant.url == "http://qdrant:6333"
        assert str(settings.data_dir) == "/data"
    assert api_settings.qdrant.collection == worker_settings.qdrant.collection

    # Several uvicorn workers are allowed for a reader only.
    assert api["command"][api["command"].index("--workers") + 1] == "${BRAID_API_WORKERS:-2}"
    # The worker serves no HTTP: it is healthy while it holds the data dir's lock.
    check = " ".join(worker["healthcheck"]["test"])
    assert "8000" not in check and WORKER_ROLE in check and "/data/braid.owner.json" in check


def _braid_commands() -> set[str]:
    """The subcommands of `braid`."""
    group = typer.main.get_command(braid_app)
    return set(getattr(group, "commands", {}))


def test_compose_and_dockerfile_commands_exist(compose: dict[str, Any]) -> None:
    commands = _braid_commands()
    assert {"serve", "worker", "ingest"} <= commands
    for name, service in compose["services"].items():
        command = service.get("command") or []
        if command[:1] == ["braid"]:
            assert command[1] in commands, f"{name}: no command braid {command[1]}"
    dockerfile = (ROOT / "Dockerfile").read_text()
    for found in re.findall(r'^CMD \["braid", "(\w+)"', dockerfile, flags=re.M):
        assert found in commands


def test_services_volumes_and_healthchecks_are_consistent(compose: dict[str, Any]) -> None:
    services = compose["services"]
    declared = set(compose["volumes"])
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name} mounts undeclared volume {source}"
        for dependency, condition in (service.get("depends_on") or {}).items():
            assert dependency in services
            if condition.get("condition") == "service_healthy":
                assert "healthcheck" in services[dependency], f"{dependency} has no healthcheck"
    assert services["api"]["depends_on"]["qdrant"]["condition"] == "service_healthy"
    assert services["worker"]["depends_on"]["qdrant"]["condition"] == "service_healthy"
    image = services["qdrant"]["image"]
    assert re.fullmatch(r"qdrant/qdrant:v\d+\.\d+\.\d+", image), "pin the Qdrant image"
    cluster = [n for n, s in services.items() if "cluster" in s.get("profiles", [])]
    assert len(cluster) == 3
    for name in cluster:
        assert services[name]["environment"]["QDRANT__CLUSTER__ENABLED"] == "true"


def test_dockerfile_copies_what_exists_and_runs_as_non_root() -> None:
    text = (ROOT / "Dockerfile").read_text()
    for source in re.findall(r"^COPY (?!--from)(\S+)", text, flags=re.M):
        assert (ROOT / source).exists(), f"COPY {source}: no such path"
    assert re.search(r"^USER braid$", text, flags=re.M)
    assert 'CMD ["braid", "serve"' in text
    assert "FROM python:${PYTHON_VERSION}-slim AS runtime" in text
