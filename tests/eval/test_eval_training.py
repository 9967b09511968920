"""Reranker training mechanics on the tiny dataset: mining, a few steps, resume, card, and the
command end to end (the gate's verdicts on runs with a certain outcome: test_eval_gate.py).

Real training takes many minutes on a CPU; here only the wiring is checked, in a few steps.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path

import pytest
from eval_tiny import DOCS, TRAIN, write_beir
from typer.testing import CliRunner

from braid.cli.app import app
from braid.eval.datasets import iter_corpus, load_dataset
from braid.eval.embedder_pairs import labelled_pairs
from braid.eval.embedder_pairs import split_dev as split_embedder_dev
from braid.eval.indexes import EvalIndex
from braid.eval.runs import DEFAULT_DOCS
from braid.eval.training import (
    Group,
    TrainConfig,
    find_unfinished,
    group_loss,
    load_groups,
    mine_labelled,
    mine_titles,
    save_groups,
    split_dev,
    train_cross_encoder,
)


def test_mining_excludes_judged_relevant(tiny_index: EvalIndex, tiny_dataset: Path) -> None:
    searcher = tiny_index.workspace.engine.searcher
    train = load_dataset(tiny_dataset, "train")
    corpus = {d.doc_id: d for d in iter_corpus(tiny_dataset)}
    groups = mine_labelled(searcher, train, corpus, negatives=3, depth=10)
    assert len(groups) == sum(len(j) for j in TRAIN.values())
    for group in groups:
        qid = next(q for q, t in train.queries.items() if t == group.query)
        relevant = {f"{corpus[d].title}\n{corpus[d].text}" for d in TRAIN[qid]}
        assert group.positive in relevant
        assert not set(group.negatives) & relevant and len(group.negatives) == 3
    titles = mine_titles(searcher, corpus, count=4, negatives=2, depth=10, seed=1)
    assert len(titles) == 4
    for group in titles:
        doc = next(d for d in corpus.values() if d.title == group.query)
        assert group.positive == doc.text and doc.text not in group.negatives


def test_mined_groups_carry_the_first_stages_scores(
    tiny_index: EvalIndex, tiny_dataset: Path
) -> None:
    searcher = tiny_index.workspace.engine.searcher
    train = load_dataset(tiny_dataset, "train")
    corpus = {d.doc_id: d for d in iter_corpus(tiny_dataset)}
    doc_of = {f"{d.title}\n{d.text}": d.doc_id for d in corpus.values()}
    body_of = {d.text: d.doc_id for d in corpus.values()}
    groups = mine_labelled(searcher, train, corpus, negatives=3, depth=10)
    groups += mine_titles(searcher, corpus, count=4, negatives=2, depth=10, seed=1)
    for group in groups:
        # The product's hybrid search for the group's query, read here: each document's best
        # hit, over the best of all; 0 for a document outside the top 10.
        hits = searcher.search(
            group.query, top_k=DEFAULT_DOCS, candidates=10, group_by="document", passages=1
        ).hits
        best = {hit.doc_id: hit.score for hit in hits}
        names = doc_of if group.source == "labelled" else body_of
        docs = [names[group.positive], *(names[n] for n in group.negatives)]
        top = max(best.values())
        assert group.teacher == pytest.approx([best.get(d, 0.0) / top for d in docs])
        assert max(group.teacher) <= 1.0 and len(group.teacher) == 1 + len(group.negatives)
    assert any(1.0 in g.teacher for g in groups)


def test_groups_saved_before_distillation_load_without_scores(tmp_path: Path) -> None:
    path = tmp_path / "groups.jsonl"
    save_groups(path, [Group("q", "p", ("n1", "n2"), "title", (1.0, 0.5, 0.0))])
    path.write_text(
        path.read_text()
        + json.dumps({"query": "q2", "positive": "p2", "negatives": ["n"], "source": "labelled"})
        + "\n"
    )
    assert load_groups(path) == [
        Group("q", "p", ("n1", "n2"), "title", (1.0, 0.5, 0.0)),
        Group("q2", "p2", ("n",), "labelled", ()),
    ]


def test_group_loss_by_hand() -> None:
    torch = pytest.importorskip("torch")
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0]])
    teacher = [[1.0, 0.9, 0.0], [0.2, 1.0, 0.5]]

    # Cross-entropy with the positive (column 0) as the target, in plain Python.
    def log_softmax(row: list[float]) -> list[float]:
        top = max(row)
        norm = top + math.log(sum(math.exp(v - top) for v in row))
        return [v - norm for v in row]

    rows = logits.tolist()
    ce = -sum(log_softmax(r)[0] for r in rows) / 2
    assert float(group_loss(logits, None)) == pytest.approx(ce, abs=1e-6)
    assert float(group_loss(logits, teacher, distill=0.0)) == pytest.approx(ce, abs=1e-6)
    # KL(p || q) with p = softmax(teacher / 0.1), q = softmax(logits), averaged over groups.
    kl = 0.0
    for r, t in zip(rows, teacher, strict=True):
        logp = log_softmax([v / 0.1 for v in t])
        logq = log_softmax(r)
        kl += sum(math.exp(a) * (a - b) for a, b in zip(logp, logq, strict=True))
    kl /= 2
    mixed = group_loss(logits, teacher, distill=0.25, temperature=0.1)
    assert float(mixed) == pytest.approx(0.75 * ce + 0.25 * kl, abs=1e-6)
    assert kl > 0.2  # the teacher disagrees with the second group's logits: the term counts


def test_a_config_without_distillation_keeps_its_key() -> None:
    # Unfinished runs from before distillation existed must still be found and resumed.
    config = TrainConfig(base="b", dataset="d")
    before = {
        k: v
        for k, v in dataclasses.asdict(config).items()
        if k not in ("max_steps", "save_every", "distill", "distill_temperature")
    }
    expected = hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()[:12]
    assert config.key() == expected
    assert TrainConfig(base="b", dataset="d", distill=0.5).key() != expected


def test_dev_split_is_held_out(tiny_dataset: Path) -> None:
    train, dev = split_dev(load_dataset(tiny_dataset, "train"), 0.5, seed=13)
    assert set(train.queries).isdisjoint(dev.queries)
    assert set(train.queries) | set(dev.queries) == set(TRAIN)
    assert len(dev.queries) == round(0.5 * len(TRAIN))


def test_reranker_and_embedder_hold_out_the_same_queries(tiny_dataset: Path) -> None:
    # A reranker gated over a fine-tuned first stage must be judged on queries neither saw.
    labelled = load_dataset(tiny_dataset, "train")
    corpus = {d.doc_id: d for d in iter_corpus(tiny_dataset)}
    for seed, fraction in ((13, 0.5), (1, 0.3), (7, 0.5)):
        _, dev = split_dev(labelled, fraction, seed=seed)
        _, pair_dev = split_embedder_dev(labelled_pairs(labelled, corpus), fraction, seed)
        assert {p.group for p in pair_dev} == {f"q:{q}" for q in dev.queries}
    assert (
        split_dev(labelled, 0.5, seed=13)[1].queries != split_dev(labelled, 0.5, seed=1)[1].queries
    )


@pytest.fixture
def tiny_groups(tiny_index: EvalIndex, tiny_dataset: Path) -> list[Group]:
    """Labelled groups of the tiny train split, two mined negatives each."""
    searcher = tiny_index.workspace.engine.searcher
    corpus = {d.doc_id: d for d in iter_corpus(tiny_dataset)}
    return mine_labelled(searcher, load_dataset(tiny_dataset, "train"), corpus, 2, 10)


def tiny_config(**changes: object) -> TrainConfig:
    """A few steps of the bundled MiniLM on short pairs."""
    base = TrainConfig(
        base="all-MiniLM-L6-v2",
        dataset="tiny",
        negatives=2,
        batch_groups=2,
        epochs=1.0,
        max_length=32,
        self_supervised=0,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.slow  # two short trainings of a cross-encoder
def test_train_is_resumable(tiny_groups: list[Group], tmp_path: Path) -> None:
    groups = tiny_groups
    config = tiny_config(save_every=1)
    folder = tmp_path / "models" / "rerankers" / "tiny-v1"

    def crash(step: int, total: int, loss: float) -> None:
        if step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_cross_encoder(
            groups, config, folder, record={"config_key": config.key()}, on_step=crash
        )
    assert find_unfinished(tmp_path, config) == folder
    steps: list[int] = []
    state = train_cross_encoder(groups, config, folder, on_step=lambda s, t, loss: steps.append(s))
    assert steps[0] == 3 and state.step == state.total_steps == 3 == len(steps) + 2
    assert len(state.losses) == state.total_steps and state.complete
    assert (folder / "config.json").is_file() and not (folder / "checkpoint").exists()


@pytest.mark.slow  # a short training of a cross-encoder
def test_distillation_trains_and_needs_the_scores(tiny_groups: list[Group], tmp_path: Path) -> None:
    config = tiny_config(max_steps=2, distill=0.5)
    unscored = [dataclasses.replace(g, teacher=()) for g in tiny_groups]
    with pytest.raises(ValueError, match="re-mine"):
        train_cross_encoder(unscored, config, tmp_path / "unscored")
    assert not (tmp_path / "unscored").exists()
    state = train_cross_encoder(tiny_groups, config, tmp_path / "distilled")
    assert state.complete and state.step == 2
    assert all(math.isfinite(loss) and loss > 0 for loss in state.losses)


def test_train_command(tmp_path: Path) -> None:
    datasets = tmp_path / "datasets"
    write_beir(datasets / "tiny")
    result = CliRunner().invoke(
        app,
        [
            "train",
            "reranker",
            "--dataset",
            "tiny",
            "--datasets",
            str(datasets),
            "--data-dir",
            str(tmp_path / "data"),
            "--max-steps",
            "2",
            "--batch-groups",
            "2",
            "--negatives",
            "2",
            "--self-supervised",
            "4",
            "--max-length",
            "32",
            "--dev-fraction",
            "0.4",
            "--blend",
            "0.5",
            "--distill",
            "0.5",
            "--json",
        ],
        env={"BRAID_EMBEDDER__CPU_THREADS": "2"},
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(summary) == {"model", "resumed", "steps", "data", "gate", "profile"}
    assert set(summary["gate"]) == {
        "queries",
        "rerank_depth",
        "first_stage",
        "reranked",
        "delta",
        "p_randomisation",
        "required_p",
        "passed",
        "blend",
        "by_blend",
    }
    assert summary["gate"]["required_p"] == 0.05 and summary["gate"]["rerank_depth"] == 30
    # judged at the blend asked for, and reported at the others from the same scores
    assert summary["gate"]["blend"] == 0.5
    assert set(summary["gate"]["by_blend"]) == {"0.25", "0.5", "0.75", "1"}
    assert summary["gate"]["by_blend"]["0.5"] == pytest.approx(summary["gate"]["reranked"])
    assert not summary["resumed"]
    model = Path(summary["model"])
    assert model.name == "tiny-v1" and summary["steps"] == 2
    assert summary["data"]["title"] == 4 and summary["data"]["labelled"] >= 1
    record = json.loads((model / "training.json").read_text())
    assert list(record)[:6] == ["config", "config_key", "created", "device", "index", "data"]
    assert record["gate"] == summary["gate"] and record["data"] == summary["data"]
    assert (
        record["state"]["complete"] and record["gate"]["queries"] == summary["data"]["dev_queries"]
    )
    card = (model / "README.md").read_text()
    assert "hard negatives" in card and "gate on" in card
    assert record["config"]["distill"] == 0.5 and "0.5 of it distilled" in card
    # a profile naming the model exists exactly when the gate passed
    profile = tmp_path / "data" / "profiles" / "tiny-rerank.json"
    assert profile.is_file() == record["gate"]["passed"]
    assert record.get("profile") == ("tiny-rerank" if record["gate"]["passed"] else None)
    assert len(DOCS) == 16
