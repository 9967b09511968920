"""Documents as read from input, before chunking, and the errors reading can find."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from braid.engine.models import MetadataValue


@dataclass(frozen=True, slots=True)
class SourceDocument:
    """One document to index, with where it came from (for error messages)."""

    doc_id: str
    text: str
    title: str = ""
    metadata: Mapping[str, MetadataValue] = field(default_factory=dict)
    origin: str = ""

    @property
    def content_hash(self) -> str:
        """SHA-256 of everything that ends up in the index (text, title, metadata)."""
        canonical = json.dumps(
            {"text": self.text, "title": self.title, "metadata": dict(self.metadata)},
            sort_keys=True,
            ensure_ascii=False,
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class SkippedFile:
    """A file a folder holds that is not read (its type, or a link out of the folder)."""

    origin: str
    reason: str

    def __str__(self) -> str:
        return f"{self.origin}: {self.reason}"


@dataclass(frozen=True, slots=True)
class InputError:
    """A record that could not be read: where it is and why."""

    origin: str
    message: str

    def __str__(self) -> str:
        return f"{self.origin}: {self.message}"
