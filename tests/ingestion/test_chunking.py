"""Token-aware chunking with the model's own tokenizer: limits, coverage, boundaries, overlap."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import pytest

from braid.engine.errors import ConfigError
from braid.engine.models import Chunk
from braid.ingestion.chunking import ChunkingPolicy, TokenChunker
from braid.ingestion.documents import SourceDocument

if TYPE_CHECKING:
    from braid.engine.embedder import SentenceTransformerEmbedder

PASSAGE_PREFIX = "passage: "  # E5's passage prefix: two tokens before every chunk
# A prefix long enough to crowd a long title (instruction-style models use such prefixes).
LONG_PREFIX = "Represent this scientific document for retrieval by a search engine: "
SCIFACT_SAMPLE = 400

# (passage prefix, policy): the model's whole window and small overlapping chunks.
CONFIGS = [
    pytest.param("", ChunkingPolicy(), id="full-window"),
    pytest.param(PASSAGE_PREFIX, ChunkingPolicy(max_tokens=64, overlap_tokens=8), id="64-prefix"),
    pytest.param(LONG_PREFIX, ChunkingPolicy(max_tokens=48, overlap_tokens=0), id="48-no-overlap"),
]


def _words(rng: random.Random, n: int) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rng.choice(letters) for _ in range(rng.randint(2, 12))) for _ in range(n)]


def adversarial_docs() -> list[SourceDocument]:
    rng = random.Random(20240611)
    words = _words(rng, 1500)
    texts = {
        "huge-word": "x" * 20_000,
        "huge-word-in-prose": "See " + "pneumonoultramicroscopic" * 400 + " for details.",
        "no-spaces": ",".join(words),
        "base64": "".join(rng.choice("ABCDEFGHabcdefgh0123456789+/") for _ in range(4000)),
        "cjk": "混合搜索引擎把词法检索和向量检索结合起来。" * 150,
        "kana": "検索エンジンはぶんしょをけんさくします" * 150,
        "emoji": " ".join(rng.choice(["🙂", "🔥🔥🔥", "word", "👍🏽", "🇫🇷"]) for _ in range(1500)),
        "newlines": "\n".join(words[:1000]) + "\n" * 3000 + " ".join(words[:300]) + "\n\n\n",
        "zero-width": "\u200b".join(words[:1000]),
        "control-chars": "\x00 ".join(words[:1000]),
        "combining-accents": " ".join(w + "\u0301" for w in words[:1000]),
        "whitespace-only": " \n\t \n",
    }
    docs = [
        SourceDocument(name, text, "Adversarial " + name, {"case": name})
        for name, text in texts.items()
    ]
    docs.append(SourceDocument("untitled", " ".join(words), "", {"case": "untitled"}))
    # A title far over half the window, with texts that cut in odd places.
    long_title = " ".join(words[:400])
    for name in ("no-spaces", "cjk", "huge-word", "whitespace-only"):
        docs.append(SourceDocument(name + "/long-title", texts[name][:3000], long_title))
    return docs


def model_tokens(embedder: SentenceTransformerEmbedder, prefix: str, text: str) -> int:
    """Tokens the model reads for ``text``: its tokenizer, special tokens, no truncation."""
    encoded = embedder.model.tokenizer(
        prefix + text, add_special_tokens=True, truncation=False, verbose=False
    )
    return len(encoded["input_ids"])


def check_chunks(doc: SourceDocument, chunks: list[Chunk]) -> None:
    """Offsets, text, indexes and carried fields; every non-space character is covered."""
    text = doc.text
    assert [c.chunk_index for c in chunks] == list(range(len(chunks)))
    covered = bytearray(len(text))
    for chunk in chunks:
        assert (chunk.doc_id, chunk.title, dict(chunk.metadata)) == (
            doc.doc_id,
            doc.title,
            dict(doc.metadata),
        )
        assert chunk.content_hash == doc.content_hash
        assert 0 <= chunk.start <= chunk.end <= len(text)
        assert chunk.text == text[chunk.start : chunk.end]
        covered[chunk.start : chunk.end] = b"\x01" * (chunk.end - chunk.start)
    uncovered = [i for i, ch in enumerate(text) if not covered[i] and not ch.isspace()]
    assert uncovered == [], f"{doc.doc_id}: characters in no chunk, first {text[uncovered[0]]!r}"
    assert chunks[0].start == 0
    assert chunks[-1].end == len(text)
    for before, after in zip(chunks, chunks[1:], strict=False):
        assert after.start > before.start and after.end > before.end, "chunks must advance"


@pytest.fixture(scope="module")
def scifact_sample(scifact_docs: list[SourceDocument]) -> list[SourceDocument]:
    """The longest SciFact documents (most chunks) plus a seeded random draw of the rest."""
    by_length = sorted(scifact_docs, key=lambda d: len(d.text), reverse=True)
    longest, rest = by_length[: SCIFACT_SAMPLE // 2], by_length[SCIFACT_SAMPLE // 2 :]
    return longest + random.Random(7).sample(rest, SCIFACT_SAMPLE // 2)


@pytest.mark.parametrize(("prefix", "policy"), CONFIGS)
def test_scifact_chunks_fit_the_model_and_cover_the_text(
    embedder: SentenceTransformerEmbedder,
    scifact_sample: list[SourceDocument],
    prefix: str,
    policy: ChunkingPolicy,
) -> None:
    chunker = TokenChunker(embedder.model.tokenizer, embedder.max_seq_length, prefix, policy)
    expected_limit = min(policy.max_tokens or embedder.max_seq_length, embedder.max_seq_length)
    assert chunker.limit == expected_limit
    longest = 0
    multi_chunk_docs = 0
    for doc in scifact_sample:
        chunks = chunker.chunk(doc)
        check_chunks(doc, chunks)
        multi_chunk_docs += len(chunks) > 1
        for chunk in chunks:
            tokens = model_tokens(embedder, prefix, chunker.embed_input(chunk))
            assert tokens <= chunker.limit, f"{chunk.chunk_id}: {tokens} tokens"
            longest = max(longest, tokens)
    # The sample really exercises the limit: many documents are cut, some chunks run full.
    assert multi_chunk_docs >= SCIFACT_SAMPLE // 4
    assert longest >= chunker.limit - 8


@pytest.mark.parametrize(("prefix", "policy"), CONFIGS)
def test_adversarial_texts_fit_the_model_and_are_covered(
    embedder: SentenceTransformerEmbedder, prefix: str, policy: ChunkingPolicy
) -> None:
    chunker = TokenChunker(embedder.model.tokenizer, embedder.max_seq_length, prefix, policy)
    for doc in adversarial_docs():
        chunks = chunker.chunk(doc)
        check_chunks(doc, chunks)
        for chunk in chunks:
            tokens = model_tokens(embedder, prefix, chunker.embed_input(chunk))
            assert tokens <= chunker.limit, f"{chunk.chunk_id} ({prefix!r}): {tokens} tokens"


def test_long_title_is_cut_for_embedding_only(embedder: SentenceTransformerEmbedder) -> None:
    chunker = TokenChunker(embedder.model.tokenizer, embedder.max_seq_length, PASSAGE_PREFIX)
    title = " ".join(f"term{i}" for i in range(600))
    doc = SourceDocument("t", "A short body about sourdough starters.", title)
    [chunk] = chunker.chunk(doc)
    assert chunk.title == title  # stored whole
    embedded = chunker.embed_input(chunk)
    assert embedded.endswith("\nA short body about sourdough starters.")
    assert title.startswith(embedded.split("\n")[0])
    # The cut title leaves the body at least half the window.
    assert model_tokens(embedder, PASSAGE_PREFIX, embedded.split("\n")[0]) <= chunker.limit // 2


@pytest.mark.parametrize("title_words", range(100, 131, 3))
def test_title_just_over_half_the_window_with_a_long_prefix(
    embedder: SentenceTransformerEmbedder, title_words: int
) -> None:
    # Regression: the title cut used a fixed margin and indexed past the title's tokens when
    # the prefix took more than two tokens.
    chunker = TokenChunker(embedder.model.tokenizer, embedder.max_seq_length, LONG_PREFIX)
    doc = SourceDocument("t", "Body text. " * 200, " ".join(["word"] * title_words))
    chunks = chunker.chunk(doc)
    check_chunks(doc, chunks)
    for chunk in chunks:
        assert model_tokens(embedder, LONG_PREFIX, chunker.embed_input(chunk)) <= chunker.limit


VOCABULARY = [
    "the",
    "search",
    "engine",
    "ranks",
    "every",
    "document",
    "by",
    "its",
    "score",
    "and",
    "returns",
    "the",
    "best",
    "ones",
    "to",
    "the",
    "user",
    "while",
    "a",
    "vector",
    "index",
    "finds",
    "neighbours",
    "of",
    "the",
    "query",
    "in",
    "a",
    "space",
    "learned",
    "from",
    "text",
    "pairs",
    "so",
    "that",
    "two",
    "passages",
    "which",
    "share",
    "no",
    "words",
    "can",
    "still",
    "match",
    "when",
    "they",
    "mean",
    "the",
    "same",
    "thing",
]


def _sentences(rng: random.Random, count: int) -> list[str]:
    """Sentences of common words (one token each), 6 to 14 words long."""
    return [
        " ".join(rng.choice(VOCABULARY) for _ in range(rng.randint(6, 14))).capitalize() + "."
        for _ in range(count)
    ]


def test_cut_prefers_a_paragraph_break_in_the_window(embedder: SentenceTransformerEmbedder) -> None:
    rng = random.Random(1)
    policy = ChunkingPolicy(max_tokens=128, overlap_tokens=0)
    chunker = TokenChunker(embedder.model.tokenizer, embedder.max_seq_length, "", policy)
    first = " ".join(_sentences(rng, 3))
    while chunker.count(first) < 85:  # past the window's middle, well before its end
        first += " " + _sentences(rng, 1)[0]
    assert chunker.count(first) < 120
    text = first + "\n\n" + " ".join(_sentences(rng, 40))
    chunks = chunker.chunk(SourceDocument("p", text))
    assert chunks[0].text == first
    assert text[chunks[0].end :].startswith("\n\n")


def test_cut_prefers_a_sentence_end_then_a_word_boundary(
    embedder: SentenceTransformerEmbedder,
) -> None:
    rng = random.Random(2)
    policy = ChunkingPolicy(max_tokens=64, overlap_tokens=0)
    chunker = TokenChunker(embedder.model.tokenizer, embedder.max_seq_length, "", policy)

    prose = " ".join(_sentences(rng, 60))
    chunks = chunker.chunk(SourceDocument("s", prose))
    assert len(chunks) > 5
    for chunk in chunks[:-1]:
        assert chunk.text.endswith("."), chunk.text[-30:]

    words = " ".join(rng.choice(VOCABULARY) for _ in range(600))  # no punctuation at all
    chunks = chunker.chunk(SourceDocument("w", words))
    assert len(chunks) > 5
    for chunk in chunks[:-1]:
        assert words[chunk.end] == " ", "cut inside a word"
        assert words[chunk.start - 1] == " " if chunk.start else True


def test_consecutive_chunks_overlap_by_about_the_configured_tokens(
    embedder: SentenceTransformerEmbedder, scifact_sample: list[SourceDocument]
) -> None:
    policy = ChunkingPolicy(max_tokens=64, overlap_tokens=16)
    chunker = TokenChunker(embedder.model.tokenizer, embedder.max_seq_length, "", policy)
    pairs = 0
    for doc in scifact_sample[:50]:
        chunks = chunker.chunk(doc)
        for before, after in zip(chunks, chunks[1:], strict=False):
            assert after.start < before.end, f"{doc.doc_id}: no overlap"
            shared = doc.text[after.start : before.end]
            # Begins on a word boundary, so a little under the configured overlap at most.
            assert 0 < chunker.count(shared) - 2 <= policy.overlap_tokens
            pairs += 1
    assert pairs > 50

    disjoint = TokenChunker(
        embedder.model.tokenizer,
        embedder.max_seq_length,
        "",
        ChunkingPolicy(max_tokens=64, overlap_tokens=0),
    )
    chunks = disjoint.chunk(scifact_sample[0])
    assert len(chunks) > 2
    for before, after in zip(chunks, chunks[1:], strict=False):
        assert after.start >= before.end


def test_overlap_must_stay_below_half_the_chunk(embedder: SentenceTransformerEmbedder) -> None:
    with pytest.raises(ConfigError, match="overlap"):
        TokenChunker(
            embedder.model.tokenizer,
            embedder.max_seq_length,
            "",
            ChunkingPolicy(max_tokens=64, overlap_tokens=32),
        )


def test_max_tokens_never_exceeds_the_model(embedder: SentenceTransformerEmbedder) -> None:
    chunker = TokenChunker(
        embedder.model.tokenizer, embedder.max_seq_length, "", ChunkingPolicy(max_tokens=10_000)
    )
    assert chunker.limit == embedder.max_seq_length
