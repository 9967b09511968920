"""Published and locally measured reference numbers, from ``shared/data/README.md``.

Each anchor names the braid mode it should be read against. "published" rows come from the
cited papers and leaderboards; "measured here" rows are plain scripts run on this machine to
calibrate (same corpus, other code), so a gap to them is ours to explain.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Anchor:
    dataset: str
    system: str
    mode: str  # the braid mode it compares with
    ndcg10: float | None
    recall100: float | None
    source: str
    published: bool = True

    def as_dict(self) -> dict[str, object]:
        return {
            "dataset": self.dataset,
            "system": self.system,
            "mode": self.mode,
            "ndcg@10": self.ndcg10,
            "recall@100": self.recall100,
            "source": self.source,
            "published": self.published,
        }


_HERE = "measured on this machine (shared/data/README.md)"
ANCHORS: tuple[Anchor, ...] = (
    Anchor("scifact", "BM25 flat (Anserini/Pyserini)", "bm25", 0.6789, 0.9253, "Pyserini 2CR BEIR"),
    Anchor("scifact", "BM25 multifield (Anserini)", "bm25", 0.6647, 0.9076, "Pyserini 2CR BEIR"),
    Anchor("scifact", "bm25s (k1=1.5, b=0.75)", "bm25", 0.687, None, "bm25-benchmarks README"),
    Anchor("scifact", "all-MiniLM-L6-v2 dense", "dense", 0.6451, 0.925, "MTEB results"),
    Anchor("scifact", "bge-small-en-v1.5 dense", "dense", 0.7127, 0.945, "MTEB results"),
    Anchor(
        "scifact",
        "BM25 + ms-marco-MiniLM-L-6 CE (top-100)",
        "bm25+rerank",
        0.688,
        None,
        "BEIR paper, arXiv 2104.08663",
    ),
    Anchor(
        "scifact", "RRF(BM25 flat, bge-base-en-v1.5)", "hybrid", 0.7440, None, "castorini/quackir"
    ),
    Anchor(
        "scifact",
        "Qdrant hybrid, RRF k=2",
        "hybrid",
        0.7175,
        None,
        'qdrant.tech "How to Tune Hybrid Search"',
    ),
    Anchor("scifact", "Tantivy BM25 en_stem, title+text", "bm25", 0.6868, None, _HERE, False),
    Anchor("scifact", "MiniLM-L6 dense (exact)", "dense", 0.6451, None, _HERE, False),
    Anchor("scifact", "RRF k=60, equal weights", "hybrid", 0.7147, None, _HERE, False),
    Anchor("scifact", "RRF tuned on train (k=10)", "hybrid", 0.7169, None, _HERE, False),
    Anchor(
        "scifact", "convex min-max, tuned (alpha_bm25 0.55)", "hybrid", 0.7256, None, _HERE, False
    ),
    Anchor("cranfield", "bm25s title+text", "bm25", 0.3633, None, "shared/data/README.md"),
    Anchor("cranfield", "Tantivy BM25 en_stem, title+text", "bm25", 0.3677, None, _HERE, False),
    Anchor("cranfield", "MiniLM-L6 dense (exact)", "dense", 0.3817, None, _HERE, False),
    Anchor("cranfield", "RRF k=60, equal weights", "hybrid", 0.4159, None, _HERE, False),
    Anchor("cranfield", "RRF tuned on SciFact train (k=10)", "hybrid", 0.4187, None, _HERE, False),
    Anchor("cranfield", "convex tuned on SciFact train", "hybrid", 0.4151, None, _HERE, False),
)

# The goals for SciFact test nDCG@10.
GOALS: dict[str, dict[str, float]] = {
    "scifact": {"bm25": 0.679, "hybrid": 0.70, "hybrid+rerank": 0.75},
}


def anchors_for(dataset: str) -> list[Anchor]:
    return [a for a in ANCHORS if a.dataset == dataset.lower()]


def headline_anchor(dataset: str, mode: str) -> Anchor | None:
    """The first (most standard) anchor for ``mode`` on ``dataset``, published ones first."""
    found = [a for a in anchors_for(dataset) if a.mode == mode]
    found.sort(key=lambda a: not a.published)
    return found[0] if found else None
