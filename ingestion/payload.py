"""One document as JSON, in one shape: what the REST API accepts, what ``braid ingest --api``
sends and what the job queue stores.

The shape is the CLI's JSONL record: ``id`` (or ``_id``), ``text``, optional ``title``, and
every other key is metadata. ``DocumentPayload.to_record`` reads it with the readers' own
rules (``record_to_document``), so a document is validated the same way whether it comes from
a file, a request or the queue.

Jobs queued before this shape was shared stored ``{"id", "text", "title", "metadata": {...}}``.
``record_to_document`` flattens a nested ``metadata`` object one level (BEIR corpora nest
theirs), so such a row decodes to the same document and still runs: no rewrite is needed.
"""

from __future__ import annotations

from typing import cast

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StrictInt, StrictStr

from braid.engine.errors import InvalidDocumentError
from braid.ingestion.documents import SourceDocument
from braid.ingestion.readers import Record, record_to_document

# Keys of the record itself; a metadata key of these names would be read back as the field.
RESERVED_KEYS = frozenset({"id", "_id", "text", "title"})


class DocumentPayload(BaseModel):
    """One document in the JSONL record shape: every key but ``id``/``_id``, ``text`` and
    ``title`` is metadata (checked by ``to_record``, not here)."""

    model_config = ConfigDict(extra="allow")

    id: StrictStr | StrictInt | None = Field(
        default=None, description="document id (or `_id`), at most 512 characters"
    )
    text: StrictStr = Field(description="the body")
    title: StrictStr | None = None

    @classmethod
    def from_document(cls, doc: SourceDocument) -> DocumentPayload:
        """The payload of a document that was already read (its metadata validated).

        Raises:
            InvalidDocumentError: a metadata key is one of the record's own keys.
        """
        clash = sorted(RESERVED_KEYS.intersection(doc.metadata))
        if clash:
            raise InvalidDocumentError(
                f"document {doc.doc_id!r}: metadata key {clash[0]!r} is reserved"
            )
        fields: dict[str, object] = {"id": doc.doc_id, "text": doc.text}
        if doc.title:
            fields["title"] = doc.title
        return cls.model_validate({**fields, **doc.metadata})

    def to_json(self) -> dict[str, JsonValue]:
        """The wire and storage form: the keys that were given, metadata at the top level."""
        return cast(dict[str, JsonValue], self.model_dump(mode="json", exclude_unset=True))

    def to_record(self, origin: str) -> Record:
        """The document, or an ``InputError`` saying why it is not one (readers' rules)."""
        return record_to_document(self.to_json(), origin)
