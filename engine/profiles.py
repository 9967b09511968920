"""Named search profiles: tuned fusion and reranking parameters, saved as JSON.

A profile is ``<data-dir>/profiles/<name>.json`` written by ``braid eval sweep``::

    {"name": "scifact-tuned", "fusion": "rrf", "weights": {"bm25": 0.6, "dense": 0.4},
     "rrf_k": 10, "candidates": 100, "rerank_depth": 30, "reranker_model": null,
     "rerank_blend": null,
     "tuned_on": {"dataset": "scifact", "split": "train", "metric": "ndcg@10", ...}}

``load_profile`` reads one, ``apply_profile`` returns ``Settings`` with the profile's values in
``fusion`` and ``reranker``: ``braid search --profile``, the API (``BRAID_PROFILE``) and
``braid eval run --profile`` use the same pair, through ``Settings.profile`` and
``with_profile``.
A ``reranker_model`` of ``null`` leaves the configured reranker as it is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from braid.engine.config import Settings
from braid.engine.errors import ConfigError

PROFILES_DIR = "profiles"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class ProfileError(ConfigError):
    """A profile is missing, has a bad name, or holds values the settings reject."""


def profile_path(data_dir: Path, name: str) -> Path:
    if not _NAME.match(name):
        raise ProfileError(f"bad profile name {name!r}: letters, digits, '.', '_', '-' only")
    return data_dir / PROFILES_DIR / f"{name}.json"


def list_profiles(data_dir: Path) -> list[str]:
    folder = data_dir / PROFILES_DIR
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


def save_profile(data_dir: Path, name: str, profile: Mapping[str, Any]) -> Path:
    """Write the profile (validated against ``Settings`` first); returns its path."""
    apply_profile(Settings(data_dir=data_dir), profile)
    path = profile_path(data_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"name": name, **{k: v for k, v in profile.items() if k != "name"}}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(body, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)
    return path


def load_profile(data_dir: Path, name: str) -> dict[str, Any]:
    """The profile ``name`` of ``data_dir``.

    Raises:
        ProfileError: no such profile, or it is not a JSON object.
    """
    path = profile_path(data_dir, name)
    try:
        loaded = json.loads(path.read_text())
    except FileNotFoundError as exc:
        known = ", ".join(list_profiles(data_dir)) or "none"
        raise ProfileError(f"no profile {name!r} in {path.parent} (known: {known})") from exc
    except (OSError, ValueError) as exc:
        raise ProfileError(f"cannot read profile {path}: {exc}") from exc
    if not isinstance(loaded, dict):
        raise ProfileError(f"profile {path} is not a JSON object")
    return loaded


def apply_profile(settings: Settings, profile: Mapping[str, Any]) -> Settings:
    """``settings`` with the profile's fusion and reranking values (validated).

    Raises:
        ProfileError: a value is out of range or of the wrong type.
    """
    fusion = settings.fusion.model_dump()
    reranker = settings.reranker.model_dump()
    if profile.get("fusion") is not None:
        fusion["method"] = profile["fusion"]
    for key in ("weights", "rrf_k", "candidates"):
        if profile.get(key) is not None:
            fusion[key] = profile[key]
    if profile.get("rerank_depth") is not None:
        reranker["depth"] = profile["rerank_depth"]
    if profile.get("rerank_blend") is not None:
        reranker["blend"] = profile["rerank_blend"]
    if profile.get("reranker_model"):
        reranker["model"] = profile["reranker_model"]
        reranker["enabled"] = True
    try:
        return settings.model_copy(
            update={
                "fusion": type(settings.fusion).model_validate(fusion),
                "reranker": type(settings.reranker).model_validate(reranker),
            }
        )
    except ValueError as exc:  # pydantic's ValidationError
        raise ProfileError(f"profile values rejected: {exc}") from exc


def with_profile(settings: Settings) -> Settings:
    """``settings`` with ``settings.profile`` applied (unchanged when none is named).

    Raises:
        ProfileError: the named profile is missing or invalid.
    """
    if not settings.profile:
        return settings
    return apply_profile(settings, load_profile(settings.data_dir, settings.profile))
