"""Which embedder backend ``embedder.backend = auto`` means, and where ONNX exports live."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from braid.engine import factory
from braid.engine.config import EmbedderSettings, Settings


def settings_with(tmp_path: Path, **embedder: object) -> Settings:
    return Settings(data_dir=tmp_path, embedder=EmbedderSettings.model_validate(embedder))


def test_auto_is_onnx_int8_on_a_cpu_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(factory, "_nvidia_present", lambda: False)
    assert factory.embedder_backend(settings_with(tmp_path, backend="auto")) == "onnx-int8"
    assert factory.embedder_backend(settings_with(tmp_path)) == "onnx-int8"  # the default
    # A GPU, named or found: torch (fp16 on CUDA).
    assert factory.embedder_backend(settings_with(tmp_path, device="cuda:0")) == "torch"
    monkeypatch.setattr(factory, "_nvidia_present", lambda: True)
    assert factory.embedder_backend(settings_with(tmp_path)) == "torch"
    assert factory.embedder_backend(settings_with(tmp_path, device="cpu")) == "onnx-int8"
    # An explicit choice is kept.
    for backend in ("torch", "onnx", "onnx-int8"):
        assert factory.embedder_backend(settings_with(tmp_path, backend=backend)) == backend


def test_auto_without_onnxruntime_is_torch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(factory, "_nvidia_present", lambda: False)
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "onnxruntime" else real(name, *a),
    )
    assert factory.embedder_backend(settings_with(tmp_path, device="cpu")) == "torch"


def test_onnx_cache_is_shared_per_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert factory.onnx_cache_dir(settings_with(tmp_path / "a")) == tmp_path / "xdg/braid/onnx"
    assert factory.onnx_cache_dir(settings_with(tmp_path / "b")) == tmp_path / "xdg/braid/onnx"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert factory.onnx_cache_dir(settings_with(tmp_path)) == Path.home() / ".cache/braid/onnx"
    chosen = settings_with(tmp_path, onnx_cache_dir=str(tmp_path / "mine"))
    assert factory.onnx_cache_dir(chosen) == tmp_path / "mine"
