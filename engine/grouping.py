"""Chunk hits grouped into documents: the unit applications and judgements work with.

Rules (the searcher, the API and the evaluation harness all use these):

- A document's place is its first chunk's place in the final order: hits arrive best first
  (fused, or reranked head then fused tail), so that is its best chunk.
- Its score and rank are that chunk's score and the document's 1-based place.
- Its passages are its chunks in the order they came, at most ``passages`` of them.
- A hit without a chunk (deleted between search and fetch) belongs to no document and is
  dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from braid.engine.models import DocumentHit, Hit, ScoredPoint

DEFAULT_PASSAGES = 3


def group_documents(
    hits: Iterable[Hit], limit: int, passages: int = DEFAULT_PASSAGES
) -> list[DocumentHit]:
    """Group chunk hits (best first, chunks attached) into at most ``limit`` documents.

    Args:
        hits: chunk hits, best first, with ``chunk`` set (others are skipped).
        limit: documents to return; the hits of further documents are ignored.
        passages: chunks kept per document (at least 1).

    Returns:
        Documents best first, by the rules in the module docstring.
    """
    if passages < 1:
        raise ValueError("passages must be at least 1")
    documents: dict[str, DocumentHit] = {}
    for hit in hits:
        if hit.chunk is None:
            continue
        document = documents.get(hit.chunk.doc_id)
        if document is None:
            if len(documents) >= limit:
                continue
            document = documents[hit.chunk.doc_id] = DocumentHit(
                doc_id=hit.chunk.doc_id, score=hit.score, rank=len(documents) + 1
            )
        if len(document.passages) < passages:
            document.passages.append(hit)
    return list(documents.values())


def rank_documents(pairs: Iterable[tuple[str, float]], limit: int) -> list[tuple[str, float]]:
    """``group_documents`` for results that are not braid hits (a peer engine's): (doc id,
    score) pairs best first -> (doc id, its first pair's score), at most ``limit``; pairs
    with an empty doc id are dropped."""
    documents: dict[str, float] = {}
    for doc_id, score in pairs:
        if doc_id and doc_id not in documents and len(documents) < limit:
            documents[doc_id] = score
    return list(documents.items())


def best_per_document(
    ranking: Sequence[ScoredPoint], doc_of: Mapping[str, str]
) -> list[ScoredPoint]:
    """One retriever's list cut to each document's best chunk (for document-level fusion).

    The kept point carries the document id as its ``point_id`` so that two retrievers'
    lists meet on documents when fused; points whose document is unknown are dropped.
    """
    seen: set[str] = set()
    out: list[ScoredPoint] = []
    for point in ranking:
        doc_id = doc_of.get(point.point_id)
        if doc_id is None or doc_id in seen:
            continue
        seen.add(doc_id)
        out.append(ScoredPoint(point_id=doc_id, score=point.score))
    return out
