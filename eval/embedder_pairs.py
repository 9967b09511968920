"""Training pairs of ``braid train embedder``: where they come from, the dev split, hard negatives.

A pair is (query, positive passage, hard negatives). Sources:

- ``labelled``: each judged-relevant (query, document) of a dataset split; the positive is the
  document as the index embeds it, ``title\\ntext``;
- ``jsonl``: a file of ``{"query", "positive", "negative"?}`` lines (``negative``: a string or a
  list of strings);
- ``title`` and ``cloze``, self-supervised from the chunks already indexed: a document's title
  -> its first chunk's body, and inverse cloze (Lee et al. 2019, ICT): one sentence of a chunk
  -> the rest of the chunk with that sentence removed.

The dev split is drawn by group, seeded: a labelled query, a JSONL query text, or (for the
self-supervised pairs) a whole document, so that no dev positive was seen in training from
another of its document's pairs.

Hard negatives come from braid's own index: the top dense and BM25 documents for the query,
alternating by rank with the dense one first (what the model being trained confuses the
query with is what it learns most from), never one judged relevant (or the pair's own
document). An optional false-negative guard (``margin``) also skips any candidate the base
model already scores at ``margin`` times the positive's score or more: such a "negative" may
be an unjudged positive or a near-duplicate. It is off by default: with MiniLM as its own
judge it refused 64% of SciFact's candidates, the informative ones with them (dense nDCG@10
on SciFact test 0.680 with it at 0.95, 0.723 without; the README has the runs).
"""

from __future__ import annotations

import heapq
import json
import re
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from itertools import zip_longest
from pathlib import Path
from typing import Literal

from braid.engine.models import Chunk, Hit
from braid.engine.protocols import Embedder
from braid.engine.searcher import HybridSearcher
from braid.eval.datasets import CorpusDoc, Dataset, DatasetError, _jsonl
from braid.eval.runs import RunParams, search_once
from braid.eval.training import held_out_groups, passage, query_group

Source = Literal["labelled", "jsonl", "title", "cloze"]
SOURCES: tuple[Source, ...] = ("labelled", "jsonl", "title", "cloze")
# How a passage is written, so that negatives look like their pair's positive:
# "document": a corpus document's title\ntext; "passage": a chunk's title\ntext; "body": the
# chunk's text alone (the title is the query of a title pair).
Form = Literal["document", "passage", "body"]

# ICT needs a passage to remove a sentence from: with fewer than three sentences the "rest"
# is a single sentence, nearly a paraphrase task.
MIN_CLOZE_SENTENCES = 3
MIN_SENTENCE_WORDS = 4
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class TrainPair:
    """One training example; ``group`` decides its side of the dev split."""

    query: str
    positive: str
    source: Source
    group: str
    form: Form
    negatives: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()  # doc ids never mined as negatives (judged relevant, own doc)


def labelled_pairs(dataset: Dataset, corpus: Mapping[str, CorpusDoc]) -> list[TrainPair]:
    """A pair per judged-relevant (query, document) of ``dataset`` whose document exists."""
    pairs: list[TrainPair] = []
    for qid, text in dataset.queries.items():
        relevant = tuple(sorted(d for d, rel in dataset.qrels[qid].items() if rel > 0))
        pairs.extend(
            TrainPair(
                text, passage(corpus[d]), "labelled", query_group(qid), "document", (), relevant
            )
            for d in relevant
            if d in corpus
        )
    return pairs


def _text_field(obj: Mapping[str, object], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value.strip():
        raise DatasetError(f"{where}: '{key}' must be a non-empty string")
    return value


def read_pairs_file(path: Path) -> list[TrainPair]:
    """Pairs from JSONL lines ``{"query", "positive", "negative"?}``.

    Raises:
        DatasetError: the file is missing, or a line is malformed (named as ``file:line``).
    """
    if not path.is_file():
        raise DatasetError(f"missing {path}")
    pairs: list[TrainPair] = []
    for number, obj in _jsonl(path):
        where = f"{path}:{number}"
        query = _text_field(obj, "query", where)
        positive = _text_field(obj, "positive", where)
        raw = obj.get("negative")
        given = [raw] if isinstance(raw, str) else raw if raw is not None else []
        if not isinstance(given, list) or not all(isinstance(n, str) and n.strip() for n in given):
            raise DatasetError(f"{where}: 'negative' must be a string or a list of strings")
        pairs.append(TrainPair(query, positive, "jsonl", f"text:{query}", "passage", tuple(given)))
    if not pairs:
        raise DatasetError(f"{path}: no pairs")
    return pairs


def sentences(text: str) -> list[str]:
    """``text`` cut after ``.``, ``!`` or ``?`` followed by white space."""
    return [s for s in _SENTENCE_END.split(text.strip()) if s]


def _key(seed: int, *parts: object) -> int:
    # Stable across processes (unlike hash()): the same seed picks the same pairs everywhere.
    return zlib.crc32(":".join(map(str, (seed, *parts))).encode())


def _chunk_pairs(chunk: Chunk, seed: int) -> Iterable[tuple[int, tuple[str, int, str], TrainPair]]:
    group = f"doc:{chunk.doc_id}"
    order = (chunk.doc_id, chunk.chunk_index)
    body = chunk.text.strip()
    if chunk.title.strip() and chunk.chunk_index == 0 and body:
        pair = TrainPair(chunk.title, body, "title", group, "body", (), (chunk.doc_id,))
        yield _key(seed, chunk.chunk_id, "title"), (*order, "title"), pair
    parts = sentences(body)
    if len(parts) < MIN_CLOZE_SENTENCES:
        return
    pick = _key(seed, chunk.chunk_id, "cloze") % len(parts)
    if len(parts[pick].split()) < MIN_SENTENCE_WORDS:
        return
    rest = " ".join(parts[:pick] + parts[pick + 1 :])
    pair = TrainPair(parts[pick], rest, "cloze", group, "body", (), (chunk.doc_id,))
    yield _key(seed, chunk.chunk_id, "cloze"), (*order, "cloze"), pair


def self_supervised_pairs(chunks: Iterable[Chunk], *, seed: int, max_pairs: int) -> list[TrainPair]:
    """Title -> body and sentence -> rest pairs from stored chunks, at most ``max_pairs``.

    Which sentence a chunk gives and which pairs survive the cap depend only on ``seed`` and
    the chunk ids, not on the order the store yields chunks in; the result is in (document,
    chunk, kind) order. Memory stays at ``max_pairs`` pairs whatever the corpus size.
    """
    candidates = (entry for chunk in chunks for entry in _chunk_pairs(chunk, seed))
    kept = heapq.nsmallest(max_pairs, candidates, key=lambda entry: (entry[0], entry[1]))
    return [pair for _, _, pair in sorted(kept, key=lambda entry: entry[1])]


def split_dev(
    pairs: Sequence[TrainPair], fraction: float, seed: int
) -> tuple[list[TrainPair], list[TrainPair]]:
    """(train, dev): ``round(fraction * groups)`` groups, drawn with ``seed``, go to dev.

    With a positive fraction and at least two groups, dev gets at least one group and train
    keeps at least one.
    """
    dev_groups = held_out_groups((p.group for p in pairs), fraction, seed)
    return (
        [p for p in pairs if p.group not in dev_groups],
        [p for p in pairs if p.group in dev_groups],
    )


@dataclass
class MiningStats:
    """What mining did: negatives kept, candidates the guard refused, pairs left short."""

    mined: int = 0
    guarded: int = 0
    short: int = 0  # pairs that got fewer negatives than asked for

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def guard_keeps(positive_score: float, scores: Sequence[float], margin: float) -> list[bool]:
    """Which candidates pass the false-negative guard: a score below ``margin`` x the
    positive's (an equal or higher one is too close to, or above, the positive)."""
    return [score < margin * positive_score for score in scores]


def _ranked_hits(searcher: HybridSearcher, query: str, mode: str, depth: int) -> list[Hit]:
    params = RunParams(mode=mode, depth=depth, docs=depth, candidates=depth)
    return [h for h in search_once(searcher, query, params).hits if h.doc_id]


def _hit_text(hit: Hit, form: Form, corpus: Mapping[str, CorpusDoc]) -> str:
    chunk = hit.chunk
    if chunk is None:
        return ""
    if form == "document" and hit.doc_id in corpus:
        return passage(corpus[hit.doc_id])
    if form == "body":
        return chunk.text
    return f"{chunk.title}\n{chunk.text}" if chunk.title else chunk.text


def _guarded(
    pair: TrainPair,
    candidates: Sequence[str],
    wanted: int,
    margin: float,
    embedder: Embedder,
    stats: MiningStats,
) -> list[str]:
    """The first ``wanted`` candidates the false-negative guard lets through."""
    query_vec = embedder.encode_queries([pair.query])[0]
    positive_score = float(embedder.encode_passages([pair.positive])[0] @ query_vec)
    kept: list[str] = []
    # Encode a few candidates at a time: most pairs need one or two, not the whole list.
    step = max(2, 2 * wanted)
    for start in range(0, len(candidates), step):
        batch = candidates[start : start + step]
        scores = [float(s) for s in embedder.encode_passages(batch) @ query_vec]
        for text, ok in zip(batch, guard_keeps(positive_score, scores, margin), strict=True):
            if not ok:
                stats.guarded += 1
            elif len(kept) < wanted:
                kept.append(text)
        if len(kept) == wanted:
            break
    return kept


def mine_pair(
    pair: TrainPair,
    searcher: HybridSearcher,
    embedder: Embedder,
    *,
    count: int,
    margin: float | None,
    depth: int,
    corpus: Mapping[str, CorpusDoc],
    stats: MiningStats,
) -> TrainPair:
    """``pair`` with up to ``count`` negatives in all (given ones first), mined, and guarded
    when ``margin`` is set."""
    wanted = count - len(pair.negatives)
    if wanted <= 0:
        return replace(pair, negatives=pair.negatives[:count])
    bm25 = _ranked_hits(searcher, pair.query, "bm25", depth)
    dense = _ranked_hits(searcher, pair.query, "dense", depth)
    seen = {pair.positive.strip(), pair.query.strip(), *(n.strip() for n in pair.negatives)}
    candidates: list[str] = []
    for hits in zip_longest(dense, bm25):
        for hit in hits:
            if hit is None or hit.doc_id in pair.exclude:
                continue
            text = _hit_text(hit, pair.form, corpus)
            if text.strip() and text.strip() not in seen:
                seen.add(text.strip())
                candidates.append(text)
    # No guard: the top candidates, with nothing to encode.
    kept = (
        candidates[:wanted]
        if margin is None
        else _guarded(pair, candidates, wanted, margin, embedder, stats)
    )
    stats.mined += len(kept)
    stats.short += len(kept) < wanted
    return replace(pair, negatives=pair.negatives + tuple(kept))


def mine_negatives(
    pairs: Sequence[TrainPair],
    searcher: HybridSearcher,
    embedder: Embedder,
    *,
    count: int,
    margin: float | None,
    depth: int = 20,
    corpus: Mapping[str, CorpusDoc] | None = None,
    on_pair: Callable[[int, int], None] | None = None,
) -> tuple[list[TrainPair], MiningStats]:
    """Every pair with its negatives (see ``mine_pair``), and what mining did."""
    stats = MiningStats()
    mined: list[TrainPair] = []
    for number, pair in enumerate(pairs, start=1):
        mined.append(
            mine_pair(
                pair,
                searcher,
                embedder,
                count=count,
                margin=margin,
                depth=depth,
                corpus=corpus or {},
                stats=stats,
            )
        )
        if on_pair is not None:
            on_pair(number, len(pairs))
    return mined, stats


def save_pairs(path: Path, pairs: Iterable[TrainPair]) -> None:
    """Pairs as JSONL (a resumed run trains on exactly the same data)."""
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for pair in pairs:
            handle.write(json.dumps(asdict(pair), ensure_ascii=False) + "\n")
    tmp.replace(path)


def load_pairs(path: Path) -> list[TrainPair]:
    with path.open(encoding="utf-8") as handle:
        return [
            TrainPair(
                o["query"],
                o["positive"],
                o["source"],
                o["group"],
                o["form"],
                tuple(o["negatives"]),
                tuple(o["exclude"]),
            )
            for o in map(json.loads, handle)
        ]


def count_by_source(pairs: Iterable[TrainPair]) -> dict[str, int]:
    counts: dict[str, int] = dict.fromkeys(SOURCES, 0)
    for pair in pairs:
        counts[pair.source] += 1
    return counts
