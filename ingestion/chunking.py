"""Token-aware chunking with the embedder's own tokenizer.

Every chunk fits the model's ``max_seq_length`` together with the passage prefix, the
title and the special tokens, so the model never truncates what we index. Cuts prefer a
paragraph break, then a sentence end, then a word boundary; chunks overlap by a number of
tokens and together cover the whole text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tokenizers import Tokenizer

from braid.engine.errors import ConfigError
from braid.engine.models import Chunk
from braid.ingestion.documents import SourceDocument

if TYPE_CHECKING:
    # Only a type here: transformers costs half a second to import.
    from transformers import PreTrainedTokenizerBase

_PARAGRAPH = re.compile(r"\n\s*\n")
_SENTENCE = re.compile(r"[.!?;:][\"')\]]*\s")
MIN_BODY_TOKENS = 16
_RECOUNT_MARGIN = 8


def embed_text(title: str, text: str) -> str:
    """What the embedder reads of a chunk (the passage prefix is added by the embedder)."""
    return f"{title}\n{text}" if title else text


@dataclass(frozen=True, slots=True)
class ChunkingPolicy:
    """``max_tokens`` per chunk (capped by the model), ``overlap_tokens`` between chunks."""

    max_tokens: int | None = None
    overlap_tokens: int = 32


class TokenChunker:
    """Cuts documents into chunks that the embedding model reads whole."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        max_seq_length: int,
        passage_prefix: str = "",
        policy: ChunkingPolicy | None = None,
    ) -> None:
        policy = policy or ChunkingPolicy()
        # The Rust tokenizer directly: a tenth of the per-call overhead of the Python wrapper.
        # A private copy, so its truncation and padding stay off whatever the model sets.
        backend = tokenizer.backend_tokenizer
        self._fast = Tokenizer.from_str(backend.to_str())
        self._fast.no_truncation()
        self._fast.no_padding()
        self._limit = min(policy.max_tokens or max_seq_length, max_seq_length)
        self._prefix = passage_prefix
        if not 0 <= policy.overlap_tokens < self._limit // 2:
            raise ConfigError("chunk overlap must be below half the chunk size")
        self._overlap = policy.overlap_tokens

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def fingerprint(self) -> str:
        """What decides where chunks are cut: documents chunked otherwise must be re-chunked."""
        return f"v1:max={self._limit}:overlap={self._overlap}:prefix={self._prefix!r}"

    def count(self, text: str) -> int:
        """Tokens the model sees for ``text`` with the passage prefix, special tokens included."""
        return len(self._fast.encode(self._prefix + text, add_special_tokens=True).ids)

    def chunk(self, doc: SourceDocument) -> list[Chunk]:
        """Chunks of ``doc``, each within the model's limit, covering the whole text."""
        title = self._fit_title(doc.title)
        overhead = self.count(embed_text(title, ""))  # prefix, title, separator, specials
        budget = self._limit - overhead
        text = doc.text
        offsets = self._token_offsets(text)
        spans = self._spans(text, offsets, budget, title) if offsets else [(0, len(text))]
        content_hash = doc.content_hash
        chunks: list[Chunk] = []
        for index, (start, end) in enumerate(spans):
            chunks.append(
                Chunk(
                    doc_id=doc.doc_id,
                    chunk_index=index,
                    text=text[start:end],
                    title=doc.title,
                    metadata=doc.metadata,
                    content_hash=content_hash,
                    start=start,
                    end=end,
                )
            )
        return chunks

    def embed_input(self, chunk: Chunk) -> str:
        """The text to embed for ``chunk``: its (possibly shortened) title and its text."""
        return embed_text(self._fit_title(chunk.title), chunk.text)

    def _fit_title(self, title: str) -> str:
        # A title may take at most half the window; a longer one is cut for embedding only
        # (the stored title stays whole) so that the body keeps room.
        if not title or self.count(title) <= self._limit // 2:
            return title
        offsets = self._token_offsets(title)
        # Room left in half the window once the prefix and special tokens are counted (a
        # long passage prefix leaves fewer title tokens than a fixed margin would).
        keep = min(len(offsets), max(1, self._limit // 2 - self.count("")))
        return title[: offsets[keep - 1][1]]

    def _token_offsets(self, text: str) -> list[tuple[int, int]]:
        return list(self._fast.encode(text, add_special_tokens=False).offsets)

    def _spans(
        self, text: str, offsets: Sequence[tuple[int, int]], budget: int, title: str
    ) -> list[tuple[int, int]]:
        if budget < MIN_BODY_TOKENS:
            raise ConfigError(f"chunk budget of {budget} tokens leaves no room for text")
        spans: list[tuple[int, int]] = []
        first = 0  # index of the first token of the current chunk
        n = len(offsets)
        while first < n:
            last = self._cut(text, offsets, first, min(n, first + budget))
            start = offsets[first][0] if first else 0
            end = _end_of(text, offsets, last)
            # Tokenizing a slice can differ from slicing the tokens (word pieces at a cut
            # inside a word): near the limit, check the real count and step back until it fits.
            near_limit = last - first > budget - _RECOUNT_MARGIN
            while (
                near_limit
                and last - first > 1
                and self.count(embed_text(title, text[start:end])) > self._limit
            ):
                last -= 1
                end = _end_of(text, offsets, last)
            spans.append((start, end))
            if last >= n:
                break
            first = max(first + 1, self._overlap_start(offsets, first, last))
        return spans

    def _cut(self, text: str, offsets: Sequence[tuple[int, int]], first: int, hard_end: int) -> int:
        """Token index to stop before: the best boundary in the second half of the window."""
        if hard_end >= len(offsets):
            return len(offsets)
        lowest = first + max(1, (hard_end - first) // 2)
        window_start = offsets[lowest][0]
        window_end = offsets[hard_end][0]
        for pattern in (_PARAGRAPH, _SENTENCE):
            best = None
            for match in pattern.finditer(text, window_start, window_end):
                best = match.end()
            if best is not None:
                return self._token_at(offsets, best, lowest, hard_end)
        # A word boundary: a token that starts after whitespace.
        for index in range(hard_end, lowest, -1):
            if offsets[index][0] > offsets[index - 1][1]:
                return index
        return hard_end

    @staticmethod
    def _token_at(offsets: Sequence[tuple[int, int]], char: int, lowest: int, hard_end: int) -> int:
        for index in range(lowest, hard_end + 1):
            if offsets[index][0] >= char:
                return index
        return hard_end

    def _overlap_start(self, offsets: Sequence[tuple[int, int]], first: int, last: int) -> int:
        if not self._overlap:
            return last
        start = max(first + 1, last - self._overlap)
        # Begin the overlap on a word boundary.
        while start < last and start > 0 and offsets[start][0] == offsets[start - 1][1]:
            start += 1
        return start


def _end_of(text: str, offsets: Sequence[tuple[int, int]], last: int) -> int:
    """Character offset that ends a chunk whose last token is ``last - 1``.

    The chunk runs through any characters the tokenizer drops (control characters,
    combining accents) before the next token, but not through whitespace: otherwise a cut
    without overlap would leave those characters in no chunk.
    """
    if last >= len(offsets):
        return len(text)
    end = offsets[last - 1][1]
    return end + len(text[end : offsets[last][0]].rstrip())
