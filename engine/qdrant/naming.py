"""How a model version's collection is named, on a server and on Qdrant Edge alike.

Kept apart from ``aliases`` (which needs qdrant-client) so that the embedded store can name
its shards without importing the client.
"""

from __future__ import annotations

import re

from braid.engine.models import ModelInfo


def collection_for(alias: str, model: ModelInfo) -> str:
    """The collection that holds ``model``'s vectors behind ``alias``.

    ``<alias>__<model id as a lower-case slug>__<version>``, e.g.
    ``braid_chunks__sentence-transformers-all-minilm-l6-v2__53aa51172d14``.
    """
    slug = re.sub(r"[^a-z0-9]+", "-", model.model_id.lower()).strip("-")
    return f"{alias}__{slug}__{model.version}"
