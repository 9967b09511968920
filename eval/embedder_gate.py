"""The gate of ``braid train embedder``: base vs fine-tuned model on the held-out dev pairs.

Exact search, as sentence-transformers' ``InformationRetrievalEvaluator`` does it, but kept
per query: the dev pairs' positives and mined negatives plus distractors from the corpus (all
of it up to ``limit`` entries, else a seeded sample), top 10 by cosine for each model, nDCG@10
and MRR@10 per query (``eval.metrics``, trec_eval's definitions), and the paired randomisation
test (``eval.stats.compare``). "promote" needs a positive nDCG@10 gain significant at
``alpha`` on judged queries; otherwise "keep the deployed model", with the reason.

Only judged dev pairs (a dataset's labels, a ``--pairs`` file) can promote a model. The
self-supervised pairs (title -> body, inverse cloze) are the task the model was trained on, so
a gain on held-out ones shows it learned that task, not that searches improved: on Cranfield a
self-supervised model gained +0.040 nDCG@10 on them (p 0.0008) and lost 0.013 on the judged test
queries. Without judged dev pairs the gate still measures and reports them, and keeps the
deployed model.
"""

from __future__ import annotations

import heapq
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Literal

from braid.engine.protocols import Embedder
from braid.eval.embedder_pairs import TrainPair
from braid.eval.metrics import PRIMARY, RunScores, mean, per_query
from braid.eval.stats import compare

GATE_METRICS: tuple[str, ...] = (PRIMARY, "mrr@10")
JUDGED_SOURCES = frozenset({"labelled", "jsonl"})
Verdict = Literal["promote", "keep the deployed model"]
KEEP: Verdict = "keep the deployed model"


@dataclass(frozen=True, order=True)
class Distractor:
    """A corpus passage for the gate: its sampling key, its document, its text."""

    key: str
    doc_id: str
    text: str


@dataclass(frozen=True)
class GateSet:
    """Queries, the corpus searched exactly, and which entries are relevant to which query."""

    queries: dict[str, str]
    corpus: dict[str, str]
    qrels: dict[str, dict[str, int]]


def gate_pairs(dev: Sequence[TrainPair]) -> tuple[list[TrainPair], bool]:
    """The dev pairs the gate judges on, and whether they are judged (labelled or from a
    pairs file): the judged ones when there are any, else all (self-supervised) of them."""
    judged = [pair for pair in dev if pair.source in JUDGED_SOURCES]
    return (judged, True) if judged else (list(dev), False)


def gate_set(
    dev: Sequence[TrainPair], distractors: Iterable[Distractor], *, limit: int, seed: int
) -> GateSet:
    """The dev pairs' positives and negatives, plus ``distractors`` (a seeded sample of
    ``limit`` when there are more) except those of documents the dev pairs exclude: those
    are there as the positives. Entries are shared by text."""
    excluded = {doc for pair in dev for doc in pair.exclude}
    pool = (d for d in distractors if d.doc_id not in excluded)
    sample = heapq.nsmallest(limit, pool, key=lambda d: (zlib.crc32(f"{seed}:{d.key}".encode()), d))
    ids: dict[str, str] = {}

    def entry(text: str) -> str:
        return ids.setdefault(text, f"e{len(ids)}")

    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    by_text: dict[str, str] = {}
    for pair in dev:
        qid = by_text.setdefault(pair.query, f"q{len(by_text)}")
        queries[qid] = pair.query
        qrels.setdefault(qid, {})[entry(pair.positive)] = 1
        for negative in pair.negatives:
            entry(negative)
    for distractor in sorted(sample):
        entry(distractor.text)
    return GateSet(queries, {i: t for t, i in ids.items()}, qrels)


def exact_run(embedder: Embedder, gate: GateSet, k: int = 10) -> RunScores:
    """Top ``k`` entries per query by cosine over the whole gate corpus."""
    import numpy as np

    ids = list(gate.corpus)
    vectors = embedder.encode_passages([gate.corpus[i] for i in ids])
    run: dict[str, dict[str, float]] = {}
    qids = list(gate.queries)
    for start in range(0, len(qids), 256):
        block = qids[start : start + 256]
        scores = embedder.encode_queries([gate.queries[q] for q in block]) @ vectors.T
        for qid, row in zip(block, scores, strict=True):
            top = np.argsort(-row, kind="stable")[:k]
            run[qid] = {ids[j]: float(row[j]) for j in top}
    return run


@dataclass(frozen=True)
class EmbedderGate:
    queries: int
    corpus: int
    base: dict[str, float]
    fine_tuned: dict[str, float]
    delta: dict[str, float]
    p: dict[str, float]
    alpha: float
    verdict: Verdict
    reason: str
    judged: bool = True  # the dev queries were judged (labels, a pairs file), not self-supervised

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def gate_verdict(
    base: Mapping[str, Mapping[str, float]],
    tuned: Mapping[str, Mapping[str, float]],
    *,
    corpus: int,
    alpha: float,
    judged: bool = True,
) -> EmbedderGate:
    """The decision from per-query scores (metric -> query -> value) of both models;
    ``judged`` False (self-supervised dev pairs) never promotes (see the module docstring)."""
    tests = {m: compare("fine-tuned", "base", m, tuned[m], base[m]) for m in GATE_METRICS}
    main = tests[PRIMARY]
    queries = len(base[PRIMARY])
    verdict: Verdict = KEEP
    if queries == 0:
        reason = "no dev queries to judge on"
    elif main.delta <= 0:
        reason = f"nDCG@10 does not improve on dev ({main.delta:+.4f})"
    elif main.p_randomisation >= alpha:
        reason = (
            f"the nDCG@10 gain (+{main.delta:.4f}) is not significant: "
            f"p = {main.p_randomisation:.4f} >= {alpha}"
        )
    elif not judged:
        reason = (
            f"no judged queries: +{main.delta:.4f} nDCG@10 (p = {main.p_randomisation:.4f}) on "
            "held-out self-supervised pairs shows the model learned its training task, not that "
            "searches improve; judge it with braid eval compare on judged queries, or train "
            "with --pairs of judged (query, passage) pairs"
        )
    else:
        verdict = "promote"
        reason = f"nDCG@10 +{main.delta:.4f} on dev, p = {main.p_randomisation:.4f} < {alpha}"
    return EmbedderGate(
        queries=queries,
        corpus=corpus,
        base={m: mean(base[m]) for m in GATE_METRICS},
        fine_tuned={m: mean(tuned[m]) for m in GATE_METRICS},
        delta={m: t.delta for m, t in tests.items()},
        p={m: t.p_randomisation for m, t in tests.items()},
        alpha=alpha,
        verdict=verdict,
        reason=reason,
        judged=judged,
    )


def gate_models(
    base: Embedder, tuned: Embedder, gate: GateSet, *, alpha: float, judged: bool = True
) -> EmbedderGate:
    """Both models over the same gate set, per-query nDCG@10 / MRR@10, the verdict."""
    scores = [per_query(exact_run(e, gate), gate.qrels, GATE_METRICS) for e in (base, tuned)]
    return gate_verdict(scores[0], scores[1], corpus=len(gate.corpus), alpha=alpha, judged=judged)
