"""The model lock: the same weights under another name open the index; other weights do not;
a model name that is no folder fails at once, offline."""

from __future__ import annotations

import pytest

from braid.engine.dense.manifest import check_model, manifest
from braid.engine.errors import ConfigError, ModelMismatchError
from braid.engine.models import DEFAULT_MODEL, ModelInfo

BUILT = ModelInfo(model_id=DEFAULT_MODEL, version="53aa51172d14", dim=384)


def test_the_same_weights_by_folder_path_open_the_index() -> None:
    folder = ModelInfo(model_id="/opt/models/all-MiniLM-L6-v2", version="53aa51172d14", dim=384)
    check_model(manifest(BUILT), folder, "the index")  # no error


@pytest.mark.parametrize(
    "opened",
    [
        ModelInfo(model_id=DEFAULT_MODEL, version="ffffffffffff", dim=384),  # other weights
        ModelInfo(model_id="/opt/models/tuned", version="0123456789ab", dim=384),
        ModelInfo(model_id=DEFAULT_MODEL, version="53aa51172d14", dim=256),  # truncated
        ModelInfo(model_id="other", version="None", dim=384),  # no version to compare
    ],
)
def test_other_weights_are_refused_naming_both(opened: ModelInfo) -> None:
    stored = manifest(BUILT) | ({"model_version": "None"} if opened.version == "None" else {})
    with pytest.raises(ModelMismatchError, match="was built with .* but is opened with"):
        check_model(stored, opened, "the index")


def test_an_unknown_model_name_fails_offline_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from braid.engine.embedder import SentenceTransformerEmbedder

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(ConfigError, match="not in the local Hugging Face cache"):
        SentenceTransformerEmbedder("nobody/no-such-model", device="cpu")
