"""``braid train embedder`` on a tiny BEIR collection with the real bundled MiniLM.

Pairs, the dev split and the false-negative guard are checked exactly; training runs only a
few steps (the wiring, not the quality: the gate's verdicts come from hand-made scores).
"""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from eval_tiny import tiny_settings
from typer.testing import CliRunner

from braid.cli.app import app
from braid.engine.errors import InvalidRequestError
from braid.engine.model_files import resolve_model_path, weights_version
from braid.engine.models import DEFAULT_MODEL, Chunk
from braid.eval.datasets import DatasetError, iter_corpus, load_dataset
from braid.eval.embedder_fit import EmbedderTrainConfig, build_loss, fit, last_checkpoint
from braid.eval.embedder_gate import gate_pairs, gate_verdict
from braid.eval.embedder_pairs import (
    Source,
    TrainPair,
    guard_keeps,
    labelled_pairs,
    mine_negatives,
    read_pairs_file,
    self_supervised_pairs,
    split_dev,
)
from braid.eval.embedder_training import CARD_FILE, train_embedder
from braid.eval.indexes import EvalIndex, open_index

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample.jsonl"
ESPRESSO = (
    "Espresso forces hot water through finely ground coffee under high pressure. "
    "The crema on top forms from emulsified coffee oils. A single shot takes about thirty seconds."
)
DOCS: dict[str, tuple[str, str]] = {
    "espresso": ("Espresso brewing", ESPRESSO),
    # a near-duplicate of the positive of q1, never judged: the guard must refuse it
    "espresso-copy": ("Espresso brewing", ESPRESSO.replace("high pressure", "great pressure")),
    "bees": (
        "Honey bees",
        "Honey bees collect nectar from flowers. They tell each other where food is with a "
        "waggle dance. The colony stores honey in wax combs.",
    ),
    "volcano": (
        "Volcanoes",
        "Magma rises through the crust of the earth. It erupts as lava, ash and volcanic gases.",
    ),
    "glacier": (
        "Glaciers",
        "Glaciers form where snow piles up faster than it melts. The ice flows slowly downhill "
        "under its own weight. Meltwater carves deep valleys below it.",
    ),
    "chess": (
        "Chess openings",
        "The Sicilian Defence answers e4 with the c5 pawn move. It leads to sharp games.",
    ),
    "solar": (
        "Solar panels",
        "Photovoltaic panels turn sunlight directly into electricity with semiconductor cells.",
    ),
    "tides": (
        "Tidal forces",
        "The gravity of the moon pulls on the oceans and raises two high tides every day.",
    ),
}
QUERIES = {
    "q1": "how is espresso made",
    "q2": "how do bees tell each other where food is",
    "q3": "what comes out of a volcano",
    "q4": "how do glaciers move",
    "q5": "the sicilian defence in chess",
}
# q4 also judges "tides" non-relevant (0): not a training pair
TRAIN = {
    "q1": {"espresso": 1},
    "q2": {"bees": 1},
    "q3": {"volcano": 1},
    "q4": {"glacier": 2, "tides": 0},
    "q5": {"chess": 1},
}
LABELLED_PAIRS = 5  # judged relevant, counted by hand from TRAIN


def write_collection(folder: Path) -> Path:
    (folder / "qrels").mkdir(parents=True)
    with (folder / "corpus.jsonl").open("w") as handle:
        for doc_id, (title, text) in DOCS.items():
            handle.write(json.dumps({"_id": doc_id, "title": title, "text": text}) + "\n")
    with (folder / "queries.jsonl").open("w") as handle:
        for qid, text in QUERIES.items():
            handle.write(json.dumps({"_id": qid, "text": text}) + "\n")
    with (folder / "qrels" / "train.tsv").open("w") as handle:
        handle.write("query-id\tcorpus-id\tscore\n")
        for qid, judged in TRAIN.items():
            handle.writelines(f"{qid}\t{d}\t{rel}\n" for d, rel in judged.items())
    return folder


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_collection(tmp_path_factory.mktemp("embedder") / "small")


@pytest.fixture(scope="module")
def small_index(collection: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EvalIndex]:
    index = open_index(collection, tiny_settings(tmp_path_factory.mktemp("embedder-index")))
    yield index
    index.close()


def small_config(**changes: object) -> EmbedderTrainConfig:
    values: dict[str, object] = {
        "base": DEFAULT_MODEL,
        "batch_size": 4,
        "max_length": 64,
        "max_steps": 2,
        "dev_fraction": 0.4,
    }
    return EmbedderTrainConfig(**(values | changes))  # type: ignore[arg-type]


def test_labelled_pairs_are_the_judged_relevant_documents(collection: Path) -> None:
    corpus = {d.doc_id: d for d in iter_corpus(collection)}
    pairs = labelled_pairs(load_dataset(collection, "train"), corpus)
    assert len(pairs) == LABELLED_PAIRS
    glacier = next(p for p in pairs if p.group == "q:q4")
    assert glacier.positive == f"Glaciers\n{DOCS['glacier'][1]}"
    assert glacier.exclude == ("glacier",)  # "tides" is judged 0: it may be mined
    assert {p.form for p in pairs} == {"document"}


def test_self_supervised_pairs_of_a_hand_made_passage() -> None:
    s1, s2, s3 = (
        "Glaciers form from deep snow.",
        "They flow downhill under their own weight.",
        "Meltwater carves deep valleys below them.",
    )
    chunks = [
        Chunk("g", 0, f"{s1} {s2} {s3}", title="Glaciers"),
        Chunk("g", 1, "Two sentences only. Nothing more to say here.", title="Glaciers"),
        Chunk("h", 0, "Yes. No. Maybe so.", title=""),  # sentences too short for a query
    ]
    pairs = self_supervised_pairs(chunks, seed=7, max_pairs=100)
    rests = {s1: f"{s2} {s3}", s2: f"{s1} {s3}", s3: f"{s1} {s2}"}
    # in (document, chunk, kind) order: g#0's cloze pair, then its title pair; nothing else
    assert [p.source for p in pairs] == ["cloze", "title"]
    assert (pairs[0].query, pairs[0].positive) in rests.items()
    assert (pairs[1].query, pairs[1].positive) == ("Glaciers", f"{s1} {s2} {s3}")
    assert {(p.group, p.form, p.exclude) for p in pairs} == {("doc:g", "body", ("g",))}
    # the seed picks the sentence: over a few seeds each sentence is chosen at least once
    picked = {self_supervised_pairs(chunks, seed=s, max_pairs=9)[0].query for s in range(20)}
    assert picked == {s1, s2, s3}
    # the cap keeps the same pairs whatever order the store yields the chunks in
    capped = self_supervised_pairs(chunks, seed=7, max_pairs=1)
    assert capped == self_supervised_pairs(chunks[::-1], seed=7, max_pairs=1)
    assert len(capped) == 1 and capped[0] in pairs


def test_pairs_file_reports_malformed_lines(tmp_path: Path) -> None:
    good = tmp_path / "pairs.jsonl"
    good.write_text(
        '{"query": "q a", "positive": "p a"}\n\n'
        '{"query": "q b", "positive": "p b", "negative": "n b"}\n'
        '{"query": "q c", "positive": "p c", "negative": ["n c1", "n c2"]}\n'
    )
    assert [(p.query, p.positive, p.negatives) for p in read_pairs_file(good)] == [
        ("q a", "p a", ()),
        ("q b", "p b", ("n b",)),
        ("q c", "p c", ("n c1", "n c2")),
    ]
    for line in ('{"query": "q"}', "{not json", '{"query": "q", "positive": "p", "negative": 3}'):
        bad = tmp_path / "bad.jsonl"
        bad.write_text('{"query": "q a", "positive": "p a"}\n' + line + "\n")
        with pytest.raises(DatasetError, match=rf"^{re.escape(str(bad))}:2: "):
            read_pairs_file(bad)


def test_dev_split_is_disjoint_and_seeded() -> None:
    pairs = [
        TrainPair(f"query {i}", f"passage {i}.{j}", "labelled", f"q:{i}", "document")
        for i in range(10)
        for j in range(2)
    ]
    train, dev = split_dev(pairs, 0.3, seed=1)
    assert split_dev(pairs, 0.3, seed=1) == (train, dev)
    train_groups, dev_groups = {p.group for p in train}, {p.group for p in dev}
    assert len(dev_groups) == 3 and train_groups.isdisjoint(dev_groups)
    assert len(train) + len(dev) == 20 and len(dev) == 6  # both pairs of a group move together
    assert {p.group for p in split_dev(pairs, 0.3, seed=2)[1]} != dev_groups
    # a tiny fraction still holds one group out; a large one still leaves one to train on
    assert len({p.group for p in split_dev(pairs, 0.01, seed=1)[1]}) == 1
    assert len({p.group for p in split_dev(pairs, 0.99, seed=1)[0]}) == 1


def test_guard_refuses_scores_too_close_to_the_positive() -> None:
    # 0.95 x 0.8 = 0.76: 0.79 and 0.77 are too close, 0.9 is above, 0.75 passes
    assert guard_keeps(0.8, [0.79, 0.77, 0.75, 0.9], 0.95) == [False, False, True, False]


def test_mining_guard_drops_a_near_duplicate(small_index: EvalIndex, collection: Path) -> None:
    engine = small_index.workspace.engine
    corpus = {d.doc_id: d for d in iter_corpus(collection)}
    q1 = [p for p in labelled_pairs(load_dataset(collection, "train"), corpus) if p.group == "q:q1"]
    copy = f"Espresso brewing\n{DOCS['espresso-copy'][1]}"
    unguarded, loose = mine_negatives(
        q1, engine.searcher, engine.embedder, count=1, margin=10.0, corpus=corpus
    )
    assert unguarded[0].negatives == (copy,) and loose.guarded == 0  # the copy ranks first
    guarded, stats = mine_negatives(
        q1, engine.searcher, engine.embedder, count=1, margin=0.95, corpus=corpus
    )
    assert stats.guarded >= 1 and stats.mined == 1
    (negative,) = guarded[0].negatives
    assert negative != copy and negative != q1[0].positive
    assert negative in {f"{t}\n{x}" for t, x in DOCS.values()}


def test_mining_takes_the_dense_confusion_first_and_needs_no_guard(
    small_index: EvalIndex, collection: Path
) -> None:
    # For q2 ("how do bees tell each other where food is", positive "bees") this index
    # ranks, dense: bees, tides, chess, solar, ...; BM25: bees, glacier. Dense and BM25
    # alternate from the dense side, so the negatives are tides, then glacier, then chess.
    engine = small_index.workspace.engine
    corpus = {d.doc_id: d for d in iter_corpus(collection)}
    q2 = [p for p in labelled_pairs(load_dataset(collection, "train"), corpus) if p.group == "q:q2"]
    text = {doc_id: f"{title}\n{body}" for doc_id, (title, body) in DOCS.items()}
    for count, expected in ((1, ["tides"]), (3, ["tides", "glacier", "chess"])):
        mined, stats = mine_negatives(
            q2, engine.searcher, engine.embedder, count=count, margin=None, corpus=corpus
        )
        assert mined[0].negatives == tuple(text[d] for d in expected)
        assert (stats.mined, stats.guarded, stats.short) == (count, 0, 0)


def test_losses_are_sentence_transformers_own() -> None:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import losses

    model = SentenceTransformer(resolve_model_path(DEFAULT_MODEL), device="cpu")
    plain = build_loss(model, small_config())
    assert type(plain) is losses.MultipleNegativesRankingLoss
    cached = build_loss(model, small_config(loss="cached-mnrl", mini_batch=8))
    assert isinstance(cached, losses.CachedMultipleNegativesRankingLoss)
    assert cached.mini_batch_size == 8
    wrapped = build_loss(model, small_config(matryoshka=(128, 384)))
    assert isinstance(wrapped, losses.MatryoshkaLoss)
    assert wrapped.matryoshka_dims == (384, 128)
    assert isinstance(wrapped.loss, losses.MultipleNegativesRankingLoss)
    with pytest.raises(InvalidRequestError, match="1..384"):
        build_loss(model, small_config(matryoshka=(512,)))
    # Weights stay with their dimension when the loss sorts the dimensions.
    weighted = build_loss(model, small_config(matryoshka=(128, 384), matryoshka_weights=(2, 1)))
    assert isinstance(weighted, losses.MatryoshkaLoss)
    assert (weighted.matryoshka_dims, weighted.matryoshka_weights) == ((384, 128), (1, 2))
    for bad in [(1.0,), (1.0, 0.0)]:
        with pytest.raises(InvalidRequestError, match="one positive weight per"):
            build_loss(model, small_config(matryoshka=(128, 384), matryoshka_weights=bad))


def test_matryoshka_weights_option_is_checked_before_anything_loads() -> None:
    from typer.testing import CliRunner

    from braid.cli.app import app

    for weights, expected in [("1,x", "numbers"), ("1", "one positive weight"), ("1,-1", "one")]:
        result = CliRunner().invoke(
            app,
            ["train", "embedder", "--matryoshka", "384,128", "--matryoshka-weights", weights],
        )
        assert result.exit_code == 2, result.output
        assert expected in result.output


def _pairs() -> list[TrainPair]:
    return [
        TrainPair(f"{title}?", f"{title}\n{text}", "labelled", f"q:{d}", "document", ("x " + d,))
        for d, (title, text) in DOCS.items()
    ]


def test_matryoshka_training_runs(tmp_path: Path) -> None:
    outcome = fit(_pairs(), small_config(matryoshka=(384, 128)), tmp_path / "m")
    assert outcome.steps == outcome.total_steps == 2 and len(outcome.losses) == 2
    assert not outcome.interrupted and not (tmp_path / "m" / "checkpoints").exists()


def test_ctrl_c_checkpoints_and_resume_continues(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    config = small_config(max_steps=3, batch_size=2, save_every=100)

    def press_ctrl_c(step: int, total: int) -> None:
        if step == 1:
            os.kill(os.getpid(), signal.SIGINT)

    stopped = fit(_pairs(), config, folder, on_step=press_ctrl_c)
    assert stopped.interrupted and stopped.steps == 1 and stopped.total_steps == 3
    checkpoint = last_checkpoint(folder / "checkpoints")
    assert checkpoint is not None and checkpoint.name == "checkpoint-1"
    assert (folder / "model.safetensors").is_file()  # the model so far is saved too
    steps: list[int] = []
    resumed = fit(_pairs(), config, folder, resume=True, on_step=lambda s, t: steps.append(s))
    assert resumed.resumed_at == 1 and steps == [2, 3] and resumed.steps == 3
    assert not resumed.interrupted and not (folder / "checkpoints").exists()


def test_gate_verdicts() -> None:
    base = {
        "ndcg@10": {f"q{i}": 0.5 for i in range(12)},
        "mrr@10": {f"q{i}": 0.5 for i in range(12)},
    }
    better = {m: dict.fromkeys(scores, 0.9) for m, scores in base.items()}
    promoted = gate_verdict(base, better, corpus=30, alpha=0.05)
    assert promoted.verdict == "promote" and promoted.delta["ndcg@10"] == pytest.approx(0.4)
    # 12 equal gains: two-sided sign-flip p is about 2 / 4096
    assert promoted.p["ndcg@10"] < 0.01
    kept = gate_verdict(better, base, corpus=30, alpha=0.05)
    assert kept.verdict == "keep the deployed model" and "does not improve" in kept.reason
    one = {m: {"q0": 0.9, **{q: v for q, v in s.items() if q != "q0"}} for m, s in base.items()}
    unsure = gate_verdict(base, one, corpus=30, alpha=0.05)
    assert unsure.verdict == "keep the deployed model" and "not significant" in unsure.reason
    # the same clear gain on self-supervised dev pairs is reported, never promoted
    learned = gate_verdict(base, better, corpus=30, alpha=0.05, judged=False)
    assert learned.verdict == "keep the deployed model" and "no judged queries" in learned.reason
    assert learned.delta == promoted.delta and learned.as_dict()["judged"] is False


def test_the_gate_judges_on_judged_pairs_when_there_are_any() -> None:
    def pair(source: Source, group: str) -> TrainPair:
        return TrainPair(f"query {group}", f"passage {group}", source, group, "document")

    judged = [pair("labelled", "q:1"), pair("jsonl", "j:2")]
    unjudged = [pair("title", "d:3"), pair("cloze", "d:4")]
    assert gate_pairs(unjudged + judged) == (judged, True)
    assert gate_pairs(unjudged) == (unjudged, False)


def test_train_embedder_writes_a_loadable_model_with_its_card(
    collection: Path, tmp_path: Path
) -> None:
    from sentence_transformers import SentenceTransformer

    settings = tiny_settings(tmp_path / "data")
    record = train_embedder(
        small_config(),
        settings,
        dataset_folder=collection,
        labelled=load_dataset(collection, "train"),
    )
    out = record.out
    assert out.parent == tmp_path / "data" / "models"
    assert out.name.startswith("all-MiniLM-L6-v2-ft-")
    tuned = SentenceTransformer(str(out), device="cpu")
    assert tuned.encode(["espresso", "bees"]).shape == (2, 384)
    assert tuned.max_seq_length == 256  # the base's limit, not the training length (64)
    base_path = resolve_model_path(DEFAULT_MODEL)
    base = SentenceTransformer(base_path, device="cpu").state_dict()
    assert any(not (t == base[name]).all() for name, t in tuned.state_dict().items())
    card = json.loads((out / CARD_FILE).read_text())
    assert card["status"] == "complete" and card["steps"] == 2
    assert card["base"] == {
        "model_id": DEFAULT_MODEL,
        "version": weights_version(Path(base_path)),
        "dim": 384,
    }
    assert card["model"]["version"] != card["base"]["version"]
    assert card["data"]["sources"] == {
        "labelled": LABELLED_PAIRS,
        "jsonl": 0,
        "title": 0,
        "cloze": 0,
    }
    assert card["data"]["train_pairs"] + card["data"]["dev_pairs"] == LABELLED_PAIRS
    assert card["data"]["dev_pairs"] == 2  # round(0.4 x 5 queries), one pair each
    assert card["data"]["negatives_mined"] + card["data"]["pairs_short_of_negatives"] == 5
    assert card["loss"]["class"] == "MultipleNegativesRankingLoss"
    assert card["hyperparameters"]["batch_size"] == 4
    gate = card["gate"]
    assert gate["queries"] == card["data"]["dev_queries"] == 2
    assert gate["verdict"] in ("promote", "keep the deployed model") and gate["reason"]
    assert set(gate["base"]) == set(gate["fine_tuned"]) == {"ndcg@10", "mrr@10"}
    assert any(step.startswith(f"braid reindex --model {out}") for step in card["next_steps"])
    assert DEFAULT_MODEL in (out / "README.md").read_text()
    # a fresh run into a folder that holds one is refused
    with pytest.raises(InvalidRequestError, match="--resume"):
        train_embedder(small_config(), settings, dataset_folder=collection, out_dir=out)


def test_cli_self_supervised_on_the_data_dir(tmp_path: Path) -> None:
    runner = CliRunner(env={"BRAID_EMBEDDER__DEVICE": "cpu", "BRAID_EMBEDDER__CPU_THREADS": "2"})
    data = tmp_path / "data"
    ingested = runner.invoke(app, ["ingest", str(SAMPLE), "--data-dir", str(data), "--json"])
    assert ingested.exit_code == 0, ingested.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "q", "positive": "p"}\n{"query": "q"}\n')
    refused = runner.invoke(
        app, ["train", "embedder", "--pairs", str(bad), "--data-dir", str(data)]
    )
    assert refused.exit_code == 1 and f"{bad}:2" in refused.stderr.replace("\n", "")
    out = tmp_path / "model"
    args = ["train", "embedder", "--data-dir", str(data), "--out", str(out), "--json"]
    args += ["--max-steps", "2", "--batch-size", "4", "--max-length", "64", "--dev-fraction", "0.3"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)  # nothing else on stdout: the trainer's printer is off
    assert set(summary) == {
        "out",
        "status",
        "resumed",
        "pairs",
        "steps",
        "total_steps",
        "seconds",
        "gate",
        "next_steps",
    }
    assert summary["out"] == str(out) and summary["steps"] == 2
    sources = summary["pairs"]["sources"]
    assert sources["labelled"] == sources["jsonl"] == 0 and sources["title"] == 12  # 12 titled docs
    assert sources["cloze"] >= 1
    assert set(summary["gate"]) >= {"base", "fine_tuned", "delta", "p", "verdict", "reason"}
    # no labels: the gate measures the held-out self-supervised pairs and promotes nothing
    assert summary["gate"]["judged"] is False
    assert summary["gate"]["verdict"] == "keep the deployed model"
    assert (out / "braid-model-card.json").is_file() and (out / "modules.json").is_file()
