"""The tiny BEIR dataset of the eval tests: documents, queries, qrels and settings."""

from __future__ import annotations

import json
from pathlib import Path

from braid.engine.config import ChunkingSettings, EmbedderSettings, Settings

# 16 documents on distinct topics; a few are long enough to be cut into several chunks with
# 32-token chunks, so aggregation by document is exercised.
DOCS: dict[str, tuple[str, str]] = {
    "d1": (
        "Reciprocal rank fusion",
        "Reciprocal rank fusion combines rankings by summing one over k plus rank for each list.",
    ),
    "d2": (
        "BM25 ranking function",
        "BM25 scores documents by term frequency saturation and inverse document frequency with length normalisation.",
    ),
    "d3": (
        "Dense retrieval",
        "Dense retrieval embeds queries and passages with a bi-encoder and searches by cosine similarity.",
    ),
    "d4": (
        "Cross-encoder reranking",
        "A cross-encoder reads the query and the passage together and outputs a relevance score used to rerank candidates.",
    ),
    "d5": (
        "Photosynthesis",
        "Plants convert light energy, water and carbon dioxide into glucose and oxygen in their chloroplasts. "
        * 3,
    ),
    "d6": (
        "Volcano eruptions",
        "Magma rises through the crust and erupts as lava, ash and volcanic gases from a volcano.",
    ),
    "d7": (
        "Coffee brewing",
        "Espresso forces hot water through finely ground coffee beans under high pressure. " * 3,
    ),
    "d8": (
        "Tidal forces",
        "The moon's gravity pulls the oceans and causes two high tides and two low tides each day.",
    ),
    "d9": (
        "Honey bees",
        "Honey bees collect nectar from flowers, communicate with a waggle dance and store honey in wax combs.",
    ),
    "d10": (
        "Jet engines",
        "A turbofan jet engine compresses air, burns fuel in a combustor and drives a turbine that turns the fan.",
    ),
    "d11": (
        "Sourdough bread",
        "Sourdough bread rises with a starter of wild yeast and lactic acid bacteria instead of baker's yeast.",
    ),
    "d12": (
        "Black holes",
        "A black hole is a region of spacetime where gravity is so strong that nothing, not even light, escapes.",
    ),
    "d13": (
        "Vaccines",
        "Vaccines train the immune system to recognise a pathogen by exposing it to an antigen.",
    ),
    "d14": (
        "Glaciers",
        "Glaciers form where snow accumulates faster than it melts and slowly flows downhill under its own weight.",
    ),
    "d15": (
        "Chess openings",
        "The Sicilian Defence is a chess opening in which black answers e4 with the c5 pawn move.",
    ),
    "d16": (
        "Solar panels",
        "Photovoltaic solar panels convert sunlight directly into electricity using semiconductor cells.",
    ),
}
QUERIES: dict[str, str] = {
    "q1": "how does reciprocal rank fusion combine rankings",
    "q2": "term frequency and inverse document frequency scoring",
    "q3": "plants turning light into glucose",
    "q4": "how do bees communicate",
    "q5": "espresso coffee under pressure",
    "q6": "what is a black hole",
    "q7": "how are tides caused by the moon",
    "q8": "making bread with wild yeast",
    "q9": "unjudged query about nothing in particular",
}
TRAIN = {
    "q1": {"d1": 1},
    "q2": {"d2": 1},
    "q3": {"d5": 2, "d16": 1},
    "q4": {"d9": 1},
    "q5": {"d7": 1},
}
TEST = {"q6": {"d12": 1}, "q7": {"d8": 1}, "q8": {"d11": 1, "d9": 0}}


def write_beir(folder: Path, docs: dict[str, tuple[str, str]] = DOCS) -> Path:
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    with (folder / "corpus.jsonl").open("w") as handle:
        for doc_id, (title, text) in docs.items():
            handle.write(
                json.dumps({"_id": doc_id, "title": title, "text": text, "metadata": {}}) + "\n"
            )
    with (folder / "queries.jsonl").open("w") as handle:
        for qid, text in QUERIES.items():
            handle.write(json.dumps({"_id": qid, "text": text, "metadata": {"label": "x"}}) + "\n")
    for split, qrels in (("train", TRAIN), ("test", TEST)):
        with (folder / "qrels" / f"{split}.tsv").open("w") as handle:
            handle.write("query-id\tcorpus-id\tscore\n")
            for qid, judged in qrels.items():
                for doc_id, rel in judged.items():
                    handle.write(f"{qid}\t{doc_id}\t{rel}\n")
    return folder


def tiny_settings(data_dir: Path) -> Settings:
    return Settings(
        data_dir=data_dir,
        embedder=EmbedderSettings(device="cpu", cpu_threads=2),
        chunking=ChunkingSettings(max_tokens=32, overlap_tokens=0),
    )
