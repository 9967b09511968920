"""Profiles: saved, loaded and applied to Settings, with validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from braid.engine.config import Settings
from braid.engine.profiles import (
    ProfileError,
    apply_profile,
    list_profiles,
    load_profile,
    save_profile,
)


def test_round_trip_and_apply(tmp_path: Path) -> None:
    profile = {
        "fusion": "convex",
        "weights": {"bm25": 0.55, "dense": 0.45},
        "rrf_k": None,
        "candidates": 150,
        "rerank_depth": 20,
        "reranker_model": "/models/ce-v1",
        "rerank_blend": 0.4,
        "tuned_on": {"dataset": "scifact", "split": "train"},
    }
    path = save_profile(tmp_path, "scifact-tuned", profile)
    assert path == tmp_path / "profiles" / "scifact-tuned.json"
    loaded = load_profile(tmp_path, "scifact-tuned")
    assert loaded["name"] == "scifact-tuned" and loaded["weights"] == profile["weights"]
    assert list_profiles(tmp_path) == ["scifact-tuned"]
    settings = apply_profile(Settings(data_dir=tmp_path), loaded)
    assert settings.fusion.method == "convex" and settings.fusion.candidates == 150
    assert settings.fusion.rrf_k == 60  # untouched when the profile has none
    assert settings.reranker.depth == 20 and settings.reranker.model == "/models/ce-v1"
    assert settings.reranker.blend == 0.4
    assert apply_profile(Settings(data_dir=tmp_path), {}).reranker.blend == 1.0  # the default


def test_rejects_bad_profiles(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="no profile"):
        load_profile(tmp_path, "missing")
    with pytest.raises(ProfileError, match="bad profile name"):
        load_profile(tmp_path, "../etc")
    with pytest.raises(ProfileError):
        save_profile(tmp_path, "bad", {"weights": {"bm25": -1.0}})
    with pytest.raises(ProfileError):
        apply_profile(Settings(data_dir=tmp_path), {"fusion": "borda"})
    with pytest.raises(ProfileError, match="blend"):
        apply_profile(Settings(data_dir=tmp_path), {"rerank_blend": 1.5})
