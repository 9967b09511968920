"""Train a cross-encoder reranker on a dataset's train split, with hard negatives from our index.

Data (``build_groups``), one group = a query, one positive passage, ``negatives`` hard negatives:

- labelled: each judged-relevant (query, document) of the train split; negatives are the top
  BM25 and dense documents for the query from braid's own searcher, alternating by rank, never a
  document judged relevant for that query;
- self-supervised (``notes/reranker-training.md``): a corpus document's title as the query and
  its own abstract (without the title) as the positive; negatives are the abstracts of the top
  hybrid hits for the title, the document itself excluded. Far more signal than ~800 labels.

A slice of the train queries (``dev_fraction``, drawn with ``seed`` by the rule the embedder's
dev split uses, so both hold out the same queries) is held out before mining: the gate compares
first-stage hybrid with hybrid + the new reranker on it, and the model is only recommended (a
profile naming it is written) if it is better there, by a margin the paired randomisation test
does not put down to chance (``--gate-p``, default 0.05).

Loss: listwise softmax cross-entropy over each group (the positive against its own hard
negatives), which is what sentence-transformers' ``MultipleNegativesRankingLoss`` computes without
in-batch negatives; binary cross-entropy learned nothing at this data size (see the notes).
With ``distill`` above 0 the loss is ``(1 - distill) * that + distill * KL(teacher || model)``
over the same group: the teacher is the first stage itself, each passage's fused hybrid score
for the query (over the query's top one, 0 outside its top ``mining_depth``) through a softmax
at ``distill_temperature``. A cross-encoder taught only by ~800 labels ranks below the fused
first stage it reranks (README); distillation asks it to keep what that stage knows. The KL
term is the one ColBERTv2 distils a cross-encoder into a retriever with, in the other direction.
The loop is plain torch on the CrossEncoder's underlying model, so it needs neither ``datasets``
nor ``accelerate``; it checkpoints every ``save_every`` steps (model, optimizer, scheduler, step,
data order) and resumes an unfinished run of the same configuration.

Output: ``<data-dir>/models/rerankers/<dataset>-v<N>/``: a CrossEncoder folder (loadable by
``CrossEncoderReranker``), ``training.json`` (config, data counts, loss curve, gate) and a
``README.md`` training card.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from itertools import zip_longest
from pathlib import Path
from typing import TYPE_CHECKING, Any

from braid.engine.searcher import HybridSearcher
from braid.eval.datasets import CorpusDoc, Dataset
from braid.eval.runs import RunParams, search_once

if TYPE_CHECKING:
    import torch

MODELS_DIR = Path("models") / "rerankers"
CHECKPOINT = "checkpoint"
STATE_FILE = "training.json"


@dataclass(frozen=True)
class TrainConfig:
    base: str
    dataset: str
    split: str = "train"
    negatives: int = 4
    mining_depth: int = 20
    self_supervised: int = 2000  # title -> abstract groups; 0 to turn off
    dev_fraction: float = 0.1
    epochs: float = 1.0
    batch_groups: int = 4
    lr: float = 5e-5
    warmup: float = 0.1
    max_length: int = 256
    seed: int = 13
    max_steps: int | None = None  # stop early (tests, smoke runs)
    save_every: int = 50
    gate_rerank_depth: int = 30
    head_lr_scale: float = 20.0  # learning-rate multiplier of the classifier head and pooler
    distill: float = 0.0  # share of the loss that follows the first stage's scores (module doc)
    distill_temperature: float = 0.1

    def key(self) -> str:
        """Hash of what decides the result (not max_steps/save_every), to match unfinished runs."""
        skipped = {"max_steps", "save_every"}
        if self.distill == 0:  # keeps the keys of runs from before distillation existed
            skipped |= {"distill", "distill_temperature"}
        decisive = {k: v for k, v in asdict(self).items() if k not in skipped}
        return hashlib.sha256(json.dumps(decisive, sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Group:
    query: str
    positive: str
    negatives: tuple[str, ...]
    source: str  # "labelled" | "title"
    # The first stage's fused score of the positive, then of each negative, for this query,
    # over the query's top fused score (0 outside its top mining_depth): distillation's
    # teacher. Empty in groups saved before distillation existed.
    teacher: tuple[float, ...] = ()


@dataclass
class TrainState:
    step: int = 0
    total_steps: int = 0
    losses: list[float] = field(default_factory=list)
    complete: bool = False
    seconds: float = 0.0


def passage(doc: CorpusDoc, with_title: bool = True) -> str:
    """As the searcher shows a chunk to the reranker: title, newline, text."""
    return f"{doc.title}\n{doc.text}" if with_title and doc.title else doc.text


def held_out_groups(groups: Iterable[str], fraction: float, seed: int) -> set[str]:
    """The groups a dev split of ``fraction`` holds out: ``round(fraction * n)`` of them,
    drawn with ``seed`` from their sorted order.

    With a positive fraction and at least two groups, dev gets at least one group and train
    keeps at least one. The embedder (``eval.embedder_pairs``) and the reranker share this
    rule, so for the same dataset, seed and fraction they hold out the same queries: a
    reranker gated over a fine-tuned first stage is judged on queries neither model saw.
    """
    ordered = sorted(set(groups))
    random.Random(seed).shuffle(ordered)
    n_dev = round(fraction * len(ordered))
    if fraction > 0 and len(ordered) >= 2:
        n_dev = min(max(1, n_dev), len(ordered) - 1)
    return set(ordered[:n_dev])


def query_group(query_id: str) -> str:
    """The dev-split group of a labelled query (the embedder's labelled pairs use the same)."""
    return f"q:{query_id}"


def split_dev(train: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """(train minus dev, dev): the judged queries ``held_out_groups`` draws with ``seed``.

    Only queries with a relevant judgement are drawn, as only those give the embedder pairs;
    the others stay in train (they train nothing either way). The embedder also drops a query
    whose relevant documents are all missing from the corpus; a dataset with such queries can
    draw different dev queries in the two commands.
    """
    judged = [q for q in train.queries if any(r > 0 for r in train.qrels.get(q, {}).values())]
    dev_groups = held_out_groups(map(query_group, judged), fraction, seed)
    dev_ids = [q for q in train.queries if query_group(q) in dev_groups]
    keep = [q for q in train.queries if query_group(q) not in dev_groups]

    def subset(ids: Sequence[str], split: str) -> Dataset:
        return replace(
            train,
            split=split,
            queries={q: train.queries[q] for q in ids},
            qrels={q: train.qrels.get(q, {}) for q in ids},
        )

    return subset(keep, f"{train.split}-minus-dev"), subset(dev_ids, f"{train.split}-dev")


def _scored_docs(searcher: HybridSearcher, query: str, mode: str, depth: int) -> dict[str, float]:
    """Each document's best hit score, in rank order (a dict keeps it)."""
    response = search_once(searcher, query, RunParams(mode=mode, depth=depth, candidates=depth))
    best: dict[str, float] = {}
    for hit in response.hits:
        if hit.doc_id:
            best.setdefault(hit.doc_id, hit.score)
    return best


def _ranked_docs(searcher: HybridSearcher, query: str, mode: str, depth: int) -> list[str]:
    return list(_scored_docs(searcher, query, mode, depth))


def _teacher(fused: dict[str, float], docs: Iterable[str]) -> tuple[float, ...]:
    """``docs``' fused scores over the query's top one; 0 for a document outside the list."""
    top = max(fused.values(), default=0.0)
    if top <= 0:
        return tuple(0.0 for _ in docs)
    return tuple(max(fused.get(d, 0.0), 0.0) / top for d in docs)


def mine_labelled(
    searcher: HybridSearcher,
    train: Dataset,
    corpus: dict[str, CorpusDoc],
    negatives: int,
    depth: int,
) -> list[Group]:
    groups: list[Group] = []
    for qid, text in train.queries.items():
        relevant = {d for d, rel in train.qrels[qid].items() if rel > 0}
        bm25 = _ranked_docs(searcher, text, "bm25", depth)
        dense = _ranked_docs(searcher, text, "dense", depth)
        fused = _scored_docs(searcher, text, "hybrid", depth)
        interleaved: list[str] = []
        for pair in zip_longest(bm25, dense):
            for doc in pair:
                if doc and doc not in relevant and doc not in interleaved and doc in corpus:
                    interleaved.append(doc)
        chosen = interleaved[:negatives]
        if len(chosen) < negatives:
            continue
        hard = tuple(passage(corpus[d]) for d in chosen)
        groups.extend(
            Group(text, passage(corpus[d]), hard, "labelled", _teacher(fused, [d, *chosen]))
            for d in sorted(relevant)
            if d in corpus
        )
    return groups


def mine_titles(
    searcher: HybridSearcher,
    corpus: dict[str, CorpusDoc],
    count: int,
    negatives: int,
    depth: int,
    seed: int,
) -> list[Group]:
    eligible = [d for d in corpus.values() if d.title.strip() and len(d.text) > 50]
    rng = random.Random(seed)
    chosen = rng.sample(eligible, min(count, len(eligible)))
    groups: list[Group] = []
    for doc in chosen:
        fused = _scored_docs(searcher, doc.title, "hybrid", depth)
        ranked = [d for d in fused if d != doc.doc_id and d in corpus][:negatives]
        if len(ranked) == negatives:
            hard = tuple(passage(corpus[d], with_title=False) for d in ranked)
            teacher = _teacher(fused, [doc.doc_id, *ranked])
            groups.append(Group(doc.title, passage(doc, with_title=False), hard, "title", teacher))
    return groups


def next_version_dir(data_dir: Path, dataset: str) -> Path:
    root = data_dir / MODELS_DIR
    versions = (
        [
            int(p.name.rsplit("-v", 1)[1])
            for p in root.glob(f"{dataset}-v*")
            if p.name.rsplit("-v", 1)[1].isdigit()
        ]
        if root.is_dir()
        else []
    )
    return root / f"{dataset}-v{max(versions, default=0) + 1}"


def find_unfinished(data_dir: Path, config: TrainConfig) -> Path | None:
    """The latest version folder of the same configuration that holds a checkpoint."""
    root = data_dir / MODELS_DIR
    if not root.is_dir():
        return None
    for folder in sorted(
        root.glob(f"{config.dataset}-v*"), key=lambda p: p.stat().st_mtime, reverse=True
    ):
        state_path = folder / STATE_FILE
        if not state_path.is_file() or not (folder / CHECKPOINT).is_dir():
            continue
        saved = json.loads(state_path.read_text())
        if saved.get("config_key") == config.key() and not saved.get("state", {}).get("complete"):
            return folder
    return None


def _write_json(path: Path, payload: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=1, default=str) + "\n")
    tmp.replace(path)


def train_cross_encoder(
    groups: Sequence[Group],
    config: TrainConfig,
    folder: Path,
    *,
    device: str = "cpu",
    on_step: Callable[[int, int, float], None] | None = None,
    record: dict[str, Any] | None = None,
) -> TrainState:
    """Fine-tune ``config.base`` on ``groups`` into ``folder`` (resuming its checkpoint if any)."""
    import torch
    from sentence_transformers import CrossEncoder
    from transformers import get_linear_schedule_with_warmup

    from braid.engine.model_files import resolve_model_path

    if config.distill > 0 and any(len(g.teacher) != 1 + config.negatives for g in groups):
        raise ValueError("distillation needs the first stage's scores in every group: re-mine")
    folder.mkdir(parents=True, exist_ok=True)
    checkpoint = folder / CHECKPOINT
    resuming = (checkpoint / "trainer.pt").is_file()
    source = str(checkpoint) if resuming else resolve_model_path(config.base)
    model = CrossEncoder(source, num_labels=1, max_length=config.max_length, device=device)
    network = model.model
    tokenizer = model.tokenizer
    steps_per_epoch = math.ceil(len(groups) / config.batch_groups)
    total = max(1, math.ceil(steps_per_epoch * config.epochs))
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    # The classification head starts random and the bi-encoder's CLS/pooler path was never
    # trained for scoring (it used mean pooling): give the head a larger learning rate.
    head = [p for n, p in network.named_parameters() if n.startswith(("classifier", "bert.pooler"))]
    head_ids = {id(p) for p in head}
    body = [p for p in network.parameters() if id(p) not in head_ids]
    optimizer = torch.optim.AdamW(
        [
            {"params": body, "lr": config.lr},
            {"params": head, "lr": config.lr * config.head_lr_scale},
        ],
        weight_decay=0.01,
    )
    scheduler = get_linear_schedule_with_warmup(  # type: ignore[no-untyped-call]
        optimizer, int(total * config.warmup), total
    )
    state = TrainState(total_steps=total)
    if resuming:
        saved = torch.load(checkpoint / "trainer.pt", weights_only=False)
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        state = TrainState(**saved["state"])
        state.total_steps = total

    def order(epoch: int) -> list[int]:
        indices = list(range(len(groups)))
        random.Random(config.seed + epoch).shuffle(indices)
        return indices

    def save_checkpoint() -> None:
        tmp = folder / f"{CHECKPOINT}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(str(tmp))
        torch.save(
            {
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "state": asdict(state),
            },
            tmp / "trainer.pt",
        )
        shutil.rmtree(checkpoint, ignore_errors=True)
        tmp.rename(checkpoint)
        _write_json(folder / STATE_FILE, {**(record or {}), "state": asdict(state)})

    network.train()
    started = time.perf_counter() - state.seconds
    while state.step < total:
        epoch, offset = divmod(state.step, steps_per_epoch)
        idx = order(epoch)[offset * config.batch_groups : (offset + 1) * config.batch_groups]
        batch = [groups[i] for i in idx]
        width = 1 + config.negatives
        queries = [g.query for g in batch for _ in range(width)]
        passages = [p for g in batch for p in (g.positive, *g.negatives)]
        features = tokenizer(
            queries,
            passages,
            padding=True,
            truncation="longest_first",
            max_length=config.max_length,
            return_tensors="pt",
        ).to(network.device)
        logits = network(**features).logits.view(len(batch), width)
        teacher = [g.teacher for g in batch] if config.distill > 0 else None
        loss = group_loss(logits, teacher, config.distill, config.distill_temperature)
        loss.backward()  # type: ignore[no-untyped-call]  # torch leaves it unannotated
        torch.nn.utils.clip_grad_norm_(network.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        state.step += 1
        state.losses.append(round(float(loss.item()), 5))
        state.seconds = time.perf_counter() - started
        if state.step % config.save_every == 0 and state.step < total:
            save_checkpoint()
        if on_step is not None:
            on_step(state.step, total, state.losses[-1])
    network.eval()
    model.save_pretrained(str(folder))
    state.complete = True
    shutil.rmtree(checkpoint, ignore_errors=True)
    return state


def group_loss(
    logits: torch.Tensor,
    teacher: Sequence[Sequence[float]] | None,
    distill: float = 0.0,
    temperature: float = 0.1,
) -> torch.Tensor:
    """The training loss of a batch of groups, ``logits`` one row per group, positive first.

    Listwise softmax cross-entropy with the positive as the target, mixed when ``distill`` is
    above 0 with ``KL(softmax(teacher / temperature) || softmax(logits))``, averaged over the
    groups: ``(1 - distill) * cross_entropy + distill * kl``.
    """
    import torch

    target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    loss = torch.nn.functional.cross_entropy(logits, target)
    if distill <= 0 or teacher is None:
        return loss
    soft = torch.softmax(torch.tensor(teacher, device=logits.device) / temperature, dim=1)
    kl = torch.nn.functional.kl_div(torch.log_softmax(logits, dim=1), soft, reduction="batchmean")
    return (1.0 - distill) * loss + distill * kl


def write_card(folder: Path, record: dict[str, Any]) -> Path:
    """``README.md``: what the model is, what it was trained on, how, and whether it passed."""
    cfg = record["config"]
    state = record["state"]
    gate = record.get("gate") or {}
    losses = state.get("losses") or []
    head = sum(losses[:20]) / max(1, len(losses[:20]))
    tail = sum(losses[-20:]) / max(1, len(losses[-20:]))
    lines = [
        f"# braid reranker {folder.name}",
        "",
        f"- created: {record['created']}",
        f"- base: `{cfg['base']}`; loss: listwise softmax cross-entropy (1 positive vs "
        f"{cfg['negatives']} hard negatives per group)"
        + (
            f", {cfg['distill']:g} of it distilled from the first stage's fused scores "
            f"(temperature {cfg['distill_temperature']:g})"
            if cfg.get("distill")
            else ""
        ),
        f"- data: {record['data']['labelled']} labelled groups from `{cfg['dataset']}` "
        f"`{cfg['split']}` (minus {record['data']['dev_queries']} dev queries), "
        f"{record['data']['title']} self-supervised title -> abstract groups; negatives mined "
        f"from braid's own BM25 and dense retrieval (top {cfg['mining_depth']}), judged-relevant "
        "documents excluded",
        f"- steps: {state['step']} of {state['total_steps']} ({cfg['epochs']} epochs, "
        f"{cfg['batch_groups']} groups per step, lr {cfg['lr']}, head lr x"
        f"{cfg.get('head_lr_scale', 1.0):g}, max_length {cfg['max_length']}), "
        f"{state['seconds'] / 60:.1f} minutes on {record.get('device', 'cpu')}",
        f"- loss: {head:.4f} (first 20 steps) -> {tail:.4f} (last 20); chance level "
        f"{math.log(1 + cfg['negatives']):.4f}",
    ]
    if gate:
        verdict = "PASSED: recommended" if gate["passed"] else "FAILED: not recommended"
        lines += [
            f"- gate on {gate['queries']} held-out dev queries (nDCG@10): first stage "
            f"{gate['first_stage']:.4f}, reranked top {gate['rerank_depth']} "
            f"{gate['reranked']:.4f} (p = {gate['p_randomisation']:.4f}): {verdict}",
        ]
    path = folder / "README.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def save_groups(path: Path, groups: Sequence[Group]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for g in groups:
            handle.write(json.dumps(asdict(g), ensure_ascii=False) + "\n")


def load_groups(path: Path) -> list[Group]:
    with path.open(encoding="utf-8") as handle:
        return [
            Group(
                o["query"],
                o["positive"],
                tuple(o["negatives"]),
                o["source"],
                tuple(o.get("teacher", ())),
            )
            for o in map(json.loads, handle)
        ]


def created_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
