"""The engine's error hierarchy.

Backend exceptions (Qdrant, Tantivy, torch) are converted at the adapter boundary with
``raise ... from exc`` and never leave ``engine/``; callers catch these classes only.
"""


class BraidError(Exception):
    """Base class of every error the engine raises on purpose."""


class ConfigError(BraidError):
    """Settings are inconsistent or name something that cannot be loaded."""


class InvalidFilterError(BraidError):
    """A metadata filter is malformed; ``path`` points at the offending part."""

    def __init__(self, message: str, path: str = "$") -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.reason = message


class InvalidDocumentError(BraidError):
    """A document cannot be indexed as given (missing id or text, bad metadata key, ...)."""


class DocumentNotFoundError(BraidError):
    """The requested document id is not in the index."""


class ModelMismatchError(BraidError):
    """A store was built with another embedding model (id, version or dimension)."""


class IndexLockedError(BraidError):
    """Another process holds the store's writer lock."""


class BackendUnavailableError(BraidError):
    """A backend (Qdrant server, index files) cannot be reached or opened."""


class MissingDependencyError(BraidError):
    """An optional dependency is not installed; the message names the extra to install."""


class InvalidRequestError(BraidError):
    """A search parameter is out of range (top_k, mode, weights, ...).

    ``path`` names the offending request field when it is known (``$.offset``).
    """

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class ModelsNotLoadedError(BraidError):
    """The engine was opened without models (``models=False``) and was asked to encode."""
