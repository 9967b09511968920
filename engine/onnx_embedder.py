"""``OnnxEmbedder``: a sentence-transformers bi-encoder run on onnxruntime's CPU provider.

The model's transformer is exported once with torch's ONNX exporter (sentence-transformers'
own ONNX backend goes through optimum-onnx, which pins transformers 4: see
``engine.onnx_reranker``, exported the same way) and cached in the data dir, per model version:
``<data_dir>/onnx-cache/<model>-<version>.onnx``, and ``...-int8.onnx`` for the dynamically
quantised copy (onnxruntime ``quantize_dynamic``, int8 weights). Files are written to a
private temporary folder and moved in place with ``os.replace``, so a crash or two processes
exporting at once never leave half a file; later loads reuse them and import no torch.

Everything around the graph is the sentence-transformers model's own, read from its folder:
the fast tokenizer (``tokenizer.json``), ``max_seq_length`` and ``do_lower_case``
(``sentence_bert_config.json``), the pooling (``modules.json`` and the Pooling module's
config: mean, cls, max or mean_sqrt_len_tokens), then L2 normalisation, and the configured
query/passage prefixes. Linear ``Dense`` modules after the pooling (identity activation: what
``braid train pca`` adds) run in numpy; a model with any other module (a Dense head with an
activation, ...) is refused with a ``ConfigError``: use ``embedder.backend = "torch"`` for it.

``info`` is the torch embedder's for the same model: the same ``model_id``, ``version`` (the
hash of the weight file) and ``dim``. The dense store's model lock compares those and not the
backend, so an index built with ``embedder.backend = "torch"`` is searched with an ONNX query
encoder, and the other way round, without re-indexing; the vectors agree to a cosine of
about 0.9999 (fp32) and 0.99 (int8), which ``tests/engine/test_onnx_embedder.py`` checks.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from braid.engine.errors import ConfigError, MissingDependencyError
from braid.engine.model_files import model_id_for, resolve_model_path, weights_version
from braid.engine.models import DEFAULT_MODEL, ModelInfo
from braid.engine.protocols import Vectors

if TYPE_CHECKING:
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerBase

ONNX_CACHE_DIR = "onnx-cache"
OPSET = 17
POOLING_MODES = ("mean", "cls", "max", "mean_sqrt_len_tokens")
OUTPUT = "last_hidden_state"
SPIN_WAIT_ENTRY = "session.intra_op.allow_spinning"  # onnxruntime's session config key
# Legacy sentence-transformers pooling flags -> the mode names of its current ``Pooling``.
_LEGACY_POOLING = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
_EXPORT_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True, eq=False)
class LinearProjection:
    """A sentence-transformers ``Dense`` module with the identity activation: ``x W^T + b``.

    ``braid train pca`` writes one (the principal axes, no bias); it runs in numpy after the
    pooling, as the module runs in torch.
    """

    weight: npt.NDArray[np.float32]  # (out_features, in_features)
    bias: npt.NDArray[np.float32] | None

    @property
    def out_features(self) -> int:
        return int(self.weight.shape[0])

    def __call__(self, vectors: Vectors) -> Vectors:
        out = vectors @ self.weight.T
        if self.bias is not None:
            out = out + self.bias
        return np.asarray(out, dtype=np.float32)


@dataclass(frozen=True, slots=True)
class ModelLayout:
    """What the ONNX backend reads from a sentence-transformers folder.

    Attributes:
        transformer_dir: the Transformer module's folder (weights, config, tokenizer).
        pooling: one of ``POOLING_MODES``.
        max_seq_length: the model's token limit (sentence-transformers' rule).
        do_lower_case: lower-case the input before tokenising.
        projections: linear ``Dense`` modules after the pooling, in order.
    """

    transformer_dir: Path
    pooling: str
    max_seq_length: int
    do_lower_case: bool
    projections: tuple[LinearProjection, ...] = ()


def read_layout(folder: Path) -> ModelLayout:
    """Read the module stack of the sentence-transformers model in ``folder``.

    A folder without ``modules.json`` is a plain Hugging Face model, which
    sentence-transformers wraps as Transformer + mean pooling; so is it here.

    Raises:
        ConfigError: the stack has a module this backend does not reproduce, or a pooling
            mode other than ``POOLING_MODES``.
    """
    modules_file = folder / "modules.json"
    transformer_dir = folder
    pooling = "mean"
    projections: list[LinearProjection] = []
    if modules_file.is_file():
        modules = json.loads(modules_file.read_text())
        kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
        # Transformer, Pooling, linear Dense modules, Normalize: in that order.
        order = {"Pooling": 1, "Dense": 2, "Normalize": 3}
        ranks = [order.get(k, 0) for k in kinds[1:]]
        if kinds[:1] != ["Transformer"] or 0 in ranks or ranks != sorted(ranks):
            raise ConfigError(
                f"the ONNX embedder runs Transformer + Pooling (+ linear Dense) (+ Normalize) "
                f"models; {folder} has {kinds}: use embedder.backend=torch"
            )
        transformer_dir = folder / str(modules[0].get("path", ""))
        pools = [m for m, k in zip(modules, kinds, strict=True) if k == "Pooling"]
        if len(pools) > 1:
            raise ConfigError(f"{folder} has {len(pools)} pooling modules; expected one")
        if pools:
            pooling = _pooling_mode(folder / str(pools[0].get("path", "")) / "config.json")
        projections = [
            _linear_projection(folder / str(m.get("path", "")))
            for m, k in zip(modules, kinds, strict=True)
            if k == "Dense"
        ]
    sbert = _read_json(transformer_dir / "sentence_bert_config.json")
    return ModelLayout(
        transformer_dir=transformer_dir,
        pooling=pooling,
        max_seq_length=_model_limit(transformer_dir, sbert.get("max_seq_length")),
        do_lower_case=bool(sbert.get("do_lower_case", False)),
        projections=tuple(projections),
    )


IDENTITY_ACTIVATIONS = ("torch.nn.modules.linear.Identity", "torch.nn.Identity")


def _linear_projection(module_dir: Path) -> LinearProjection:
    """A ``Dense`` module's weights, when its activation is the identity (else refused)."""
    config = _read_json(module_dir / "config.json")
    activation = config.get("activation_function")
    weights_file = module_dir / "model.safetensors"
    if activation not in IDENTITY_ACTIVATIONS or not weights_file.is_file():
        raise ConfigError(
            f"the ONNX embedder runs Dense modules with the identity activation saved as "
            f"model.safetensors; {module_dir} has {activation or 'no config'}: use "
            "embedder.backend=torch"
        )
    from safetensors.numpy import load_file

    tensors = load_file(str(weights_file))
    weight = np.asarray(tensors["linear.weight"], dtype=np.float32)
    bias = tensors.get("linear.bias")
    expected = (config.get("out_features"), config.get("in_features"))
    if weight.ndim != 2 or tuple(weight.shape) != expected:
        raise ConfigError(f"{module_dir}: weight of shape {weight.shape}, config says {expected}")
    return LinearProjection(weight, None if bias is None else np.asarray(bias, np.float32))


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    loaded = json.loads(path.read_text())
    return loaded if isinstance(loaded, dict) else {}


def _pooling_mode(config_file: Path) -> str:
    config = _read_json(config_file)
    mode: object = config.get("pooling_mode")
    if mode is None:
        mode = [name for key, name in _LEGACY_POOLING.items() if config.get(key)]
    modes = [mode] if isinstance(mode, str) else list(mode) if isinstance(mode, list) else []
    if len(modes) != 1 or modes[0] not in POOLING_MODES:
        raise ConfigError(
            f"the ONNX embedder supports one pooling mode of {POOLING_MODES}; "
            f"{config_file} asks for {modes or 'none'}: use embedder.backend=torch"
        )
    return str(modes[0])


def _model_limit(transformer_dir: Path, declared: object) -> int:
    """sentence-transformers' limit: the declared ``max_seq_length``, else the tokenizer's
    ``model_max_length`` capped at the model's ``max_position_embeddings``."""
    if isinstance(declared, int) and declared > 0:
        return declared
    limit = _read_json(transformer_dir / "tokenizer_config.json").get("model_max_length")
    positions = _read_json(transformer_dir / "config.json").get("max_position_embeddings")
    candidates = [v for v in (limit, positions) if isinstance(v, int) and v > 0]
    return min(candidates) if candidates else 512


def cache_file(cache_dir: Path, info: ModelInfo, *, quantized: bool) -> Path:
    """``<cache_dir>/<model>-<version>[-int8].onnx``: one file per model version and kind."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", info.model_id.rstrip("/\\").split("/")[-1]) or "model"
    return cache_dir / f"{slug}-{info.version}{'-int8' if quantized else ''}.onnx"


def export_embedder_onnx(transformer_dir: Path, target: Path, *, quantized: bool) -> Path:
    """Export (once) the transformer in ``transformer_dir`` to ``target`` and return it.

    The graph maps the tokenizer's tensors to ``last_hidden_state`` with batch and sequence
    axes dynamic; pooling and normalisation run in numpy after it. ``quantized`` makes the
    fp32 file first (``target`` without ``-int8``), then quantises it. Needs torch.

    Raises:
        ConfigError: the model cannot be exported, or the cache folder cannot be written.
    """
    if target.is_file():
        return target
    with _EXPORT_LOCK:
        if target.is_file():  # another thread exported it while this one waited
            return target
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if quantized:
                fp32 = target.with_name(target.name.removesuffix("-int8.onnx") + ".onnx")
                if not fp32.is_file():
                    _atomic_write(fp32, lambda tmp: _export_fp32(transformer_dir, tmp))
                _atomic_write(target, lambda tmp: _quantize(fp32, tmp))
            else:
                _atomic_write(target, lambda tmp: _export_fp32(transformer_dir, tmp))
        except OSError as exc:
            raise ConfigError(f"cannot write the ONNX export {target}: {exc}") from exc
    return target


def _atomic_write(target: Path, write: Callable[[Path], None]) -> None:
    """``write(tmp)`` into a private folder beside ``target``, then move the file in place.

    A folder rather than a temporary name: the exporters may write side files (external
    data past 2 GB), which a lone ``os.replace`` would leave behind; those are refused.
    """
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.stem}-", dir=target.parent))
    try:
        tmp = scratch / target.name
        write(tmp)
        extra = sorted(p.name for p in scratch.iterdir() if p != tmp)
        if extra:
            raise ConfigError(
                f"the ONNX export of {target.name} needs external data files {extra}: models "
                "over 2 GB are not supported by the ONNX embedder; use embedder.backend=torch"
            )
        os.replace(tmp, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _export_fp32(transformer_dir: Path, out: Path) -> None:
    import inspect

    import torch
    from transformers import AutoModel, AutoTokenizer

    from braid.engine.devices import quiet_model_loading

    quiet_model_loading()
    try:
        # Eager attention traces to plain MatMul/Softmax ops, whatever the version's sdpa path.
        model = AutoModel.from_pretrained(transformer_dir, attn_implementation="eager").eval()
        tokenizer = AutoTokenizer.from_pretrained(transformer_dir)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load {transformer_dir} for the ONNX export: {exc}") from exc
    # Two texts of different lengths, so the traced graph sees real padding.
    sample = tokenizer(["a query", "a longer passage to embed"], padding=True, return_tensors="pt")
    # Positional inputs follow forward()'s order, not the tokenizer's.
    names = [n for n in inspect.signature(model.forward).parameters if n in sample]

    class LastHidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            hidden: torch.Tensor = self.model(**dict(zip(names, tensors, strict=True)))[0]
            return hidden

    axes = {name: {0: "batch", 1: "sequence"} for name in [*names, OUTPUT]}
    # The tracer warns about shape checks it turns into constants (the attention mask is as
    # long as the input, in every call) and about its own deprecation; tests check the graph
    # against torch on batches of other sizes and lengths.
    try:
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                LastHidden(),
                tuple(sample[name] for name in names),
                str(out),
                input_names=names,
                output_names=[OUTPUT],
                dynamic_axes=axes,
                opset_version=OPSET,
                dynamo=False,  # the TorchScript exporter needs no onnxscript
            )
    except OSError:
        raise
    except Exception as exc:  # the exporter's errors are torch's own, of many types
        raise ConfigError(
            f"cannot export {transformer_dir} to ONNX ({exc}): use embedder.backend=torch"
        ) from exc


def _quantize(fp32: Path, out: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(dir=out.parent) as scratch:
        # onnxruntime's pre-processing, ONNX shape inference only. Without it
        # quantize_dynamic logs a warning through logging.warning, configuring the root logger.
        prepared = Path(scratch) / fp32.name
        quant_pre_process(
            str(fp32), str(prepared), skip_optimization=True, skip_symbolic_shape=True
        )
        # MatMul weights only, one scale per output channel. Measured on MiniLM against
        # torch, 200 SciFact queries: the defaults (per-tensor scales, the embedding Gather
        # quantised too) give cosines down to 0.93, mean 0.958; this gives min 0.989, mean
        # 0.993. The embedding tables stay fp32 (59 MB on disk instead of 23 MB).
        quantize_dynamic(
            str(prepared),
            str(out),
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul"],
            per_channel=True,
        )


class OnnxEmbedder:
    """Satisfies ``Embedder`` like ``SentenceTransformerEmbedder``, on onnxruntime's CPU.

    ``device`` is not a setting here: the CPU provider is the point of the backend (a GPU
    runs the torch embedder in fp16). Thread-safe: the tokenizers are only read and
    onnxruntime sessions may run from several threads.
    """

    def __init__(
        self,
        name_or_path: str = DEFAULT_MODEL,
        *,
        cache_dir: Path,
        quantized: bool = False,
        cpu_threads: int | None = None,
        spin_wait: bool = True,
        query_prefix: str = "",
        passage_prefix: str = "",
        batch_size: int = 64,
        max_seq_length: int | None = None,
    ) -> None:
        """Load the exported model, exporting it first when the cache has none.

        Args:
            name_or_path: a sentence-transformers model name or folder (as the torch
                embedder takes it; a name must be the default model or in the local
                Hugging Face cache).
            cache_dir: where the exported files live (``<data_dir>/onnx-cache``).
            quantized: encode queries with the int8 copy (passages stay fp32).
            cpu_threads: onnxruntime intra-op threads; ``None``: onnxruntime's default, one
                per physical core, as torch's.
            spin_wait: let the intra-op threads busy-wait between runs (onnxruntime's
                default): lower single-query latency, more CPU burnt under concurrency.
            query_prefix: prepended to queries.
            passage_prefix: prepended to passages.
            batch_size: default encode batch size.
            max_seq_length: lower the model's own limit (never raise it).

        Raises:
            ConfigError: the model cannot be found, read or exported.
            MissingDependencyError: onnxruntime is not installed.
        """
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise MissingDependencyError(
                "the ONNX embedder backend needs onnxruntime: pip install 'braid-search[onnx]'"
            ) from exc
        path = resolve_model_path(name_or_path)
        folder = _local_folder(path)
        layout = read_layout(folder)
        self._layout = layout
        self._max_seq_length = min(max_seq_length or layout.max_seq_length, layout.max_seq_length)
        self._tokenizer = _load_tokenizer(layout, truncate_to=self._max_seq_length)
        self._counter = _load_tokenizer(layout, truncate_to=None)
        model_id = model_id_for(name_or_path)
        dim = (
            layout.projections[-1].out_features
            if layout.projections
            else _hidden_size(layout.transformer_dir)
        )
        version = _version(path, name_or_path)
        self._info = ModelInfo(model_id=model_id, version=version, dim=dim)
        self._file = export_embedder_onnx(
            layout.transformer_dir,
            cache_file(cache_dir, self._info, quantized=quantized),
            quantized=quantized,
        )
        options = ort.SessionOptions()
        options.intra_op_num_threads = cpu_threads or 0  # 0: onnxruntime's default
        options.inter_op_num_threads = 1
        # Spinning threads hold the cores for a while after each run: the lowest latency
        # for one query at a time, but a server's other request threads need those cores.
        options.add_session_config_entry(SPIN_WAIT_ENTRY, "1" if spin_wait else "0")
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._options = options
        self._session = self._open_session(self._file)
        # int8 encodes queries only: passages - what the index holds - keep the fp32 graph
        # (torch's vectors to a cosine of 0.9999), loaded on first use, which a search
        # process never needs. int8 was measured as a query encoder over fp32 vectors.
        self._fp32_file = cache_file(cache_dir, self._info, quantized=False)
        self._passage_session = None if quantized else self._session
        self._passage_lock = threading.Lock()
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._query_prefix = query_prefix
        self._passage_prefix = passage_prefix
        self._batch_size = batch_size
        self._hf_tokenizer: PreTrainedTokenizerBase | None = None

    def _open_session(self, file: Path) -> Any:
        import onnxruntime as ort

        try:
            return ort.InferenceSession(
                str(file), self._options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own unexported exception types
            raise ConfigError(
                f"onnxruntime cannot load {file} ({exc}); delete it to export it again"
            ) from exc

    def _passages(self) -> Any:
        if self._passage_session is None:
            with self._passage_lock:
                if self._passage_session is None:
                    fp32 = export_embedder_onnx(
                        self._layout.transformer_dir, self._fp32_file, quantized=False
                    )
                    self._passage_session = self._open_session(fp32)
        return self._passage_session

    @property
    def info(self) -> ModelInfo:
        return self._info

    @property
    def max_seq_length(self) -> int:
        return self._max_seq_length

    @property
    def passage_prefix(self) -> str:
        return self._passage_prefix

    @property
    def pooling(self) -> str:
        """The model's pooling mode, as read from its folder."""
        return self._layout.pooling

    @property
    def onnx_file(self) -> Path:
        """The exported graph this embedder runs."""
        return self._file

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        """The model's Hugging Face tokenizer, as sentence-transformers loads it.

        Token-aware chunking (ingestion) measures with it. Built on first use: it imports
        transformers (and so torch), which searching never does.
        """
        if self._hf_tokenizer is None:
            from transformers import AutoTokenizer

            loaded = AutoTokenizer.from_pretrained(self._layout.transformer_dir)
            if self._layout.do_lower_case:
                _lowercase_first(loaded.backend_tokenizer)
            self._hf_tokenizer = loaded
        return self._hf_tokenizer

    @property
    def model(self) -> _TokenizerView:
        """Where ``ingestion.service.tokenizer_of_embedder`` looks: ``model.tokenizer``, as on
        ``SentenceTransformerEmbedder.model``. Only the tokenizer is there."""
        return _TokenizerView(self)

    def encode_queries(self, texts: Sequence[str]) -> Vectors:
        """Embed queries (query prefix applied), one row per text (int8 when quantized)."""
        return self._encode(
            [self._query_prefix + t for t in texts], self._batch_size, self._session
        )

    def encode_passages(self, texts: Sequence[str], batch_size: int | None = None) -> Vectors:
        """Embed passages (passage prefix applied), one row per text (always fp32)."""
        return self._encode(
            [self._passage_prefix + t for t in texts],
            batch_size or self._batch_size,
            self._passages(),
        )

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens each text takes, special tokens included (no truncation)."""
        return [len(e.ids) for e in self._counter.encode_batch(list(texts))]

    def _encode(self, texts: list[str], batch_size: int, session: Any) -> Vectors:
        out = np.zeros((len(texts), self._info.dim), dtype=np.float32)
        # Longest first, as sentence-transformers batches: less padding per batch.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            out[rows] = self._encode_batch([texts[i] for i in rows], session)
        return out

    def _encode_batch(self, texts: list[str], session: Any) -> Vectors:
        encoded = (
            [self._tokenizer.encode(texts[0])]
            if len(texts) == 1
            else self._tokenizer.encode_batch(texts)
        )
        mask = np.asarray([e.attention_mask for e in encoded], dtype=np.int64)
        columns = {
            "input_ids": np.asarray([e.ids for e in encoded], dtype=np.int64),
            "attention_mask": mask,
            "token_type_ids": np.asarray([e.type_ids for e in encoded], dtype=np.int64),
        }
        feeds = {name: value for name, value in columns.items() if name in self._inputs}
        hidden = np.asarray(session.run([OUTPUT], feeds)[0], dtype=np.float32)
        pooled = pool(hidden, mask, self._layout.pooling)
        for projection in self._layout.projections:
            pooled = projection(pooled)
        return _normalise(pooled)


@dataclass(frozen=True, slots=True)
class _TokenizerView:
    embedder: OnnxEmbedder

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        return self.embedder.tokenizer


def pool(hidden: Vectors, mask: npt.NDArray[np.int64], mode: str) -> Vectors:
    """sentence-transformers' ``Pooling`` in numpy over ``(batch, sequence, dim)`` states.

    Raises:
        ConfigError: ``mode`` is not one of ``POOLING_MODES``.
    """
    weights = mask[..., None].astype(np.float32)
    if mode == "cls":
        # The first attended position (index 0 with right padding), as sentence-transformers.
        pooled = hidden[np.arange(hidden.shape[0]), mask.argmax(axis=1)]
    elif mode == "max":
        pooled = np.where(weights > 0, hidden, -np.inf).max(axis=1)
    elif mode in ("mean", "mean_sqrt_len_tokens"):
        count = np.clip(weights.sum(axis=1), 1e-9, None)
        pooled = (hidden * weights).sum(axis=1) / (count if mode == "mean" else np.sqrt(count))
    else:
        raise ConfigError(f"unknown pooling mode {mode!r}; expected one of {POOLING_MODES}")
    return np.asarray(pooled, dtype=np.float32)


def _normalise(vectors: Vectors) -> Vectors:
    # torch.nn.functional.normalize's eps, so a zero vector stays zero as it does there.
    norms = np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return np.asarray(vectors / norms, dtype=np.float32)


def _local_folder(path: str) -> Path:
    """The model's folder: ``path`` itself, or its snapshot in the local Hugging Face cache."""
    if Path(path).is_dir():
        return Path(path)
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(path, local_files_only=True))
    except Exception as exc:  # huggingface_hub raises several unrelated types here
        # The torch embedder's words, so that a typo reads the same on either backend.
        raise ConfigError(
            f"cannot load embedding model {path!r} (not a folder, and not in the local "
            f"Hugging Face cache; braid does not download models unless HF_HUB_OFFLINE=0): "
            f"{exc}"
        ) from exc


def _version(path: str, name_or_path: str) -> str:
    """The torch embedder's ``version``: the weight file's hash, else its parameter hash.

    The parameter hash needs the torch model loaded (a folder whose weights are not at its
    top, or a Hugging Face cache entry): then this costs a torch load, once per process.
    """
    folder = Path(path)
    if folder.is_dir() and (found := weights_version(folder)):
        return found
    from braid.engine.embedder import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(name_or_path, device="cpu").info.version


def _hidden_size(transformer_dir: Path) -> int:
    config = _read_json(transformer_dir / "config.json")
    size = config.get("hidden_size") or config.get("d_model") or config.get("dim")
    if not isinstance(size, int):
        raise ConfigError(f"{transformer_dir}/config.json declares no hidden size")
    return size


def _load_tokenizer(layout: ModelLayout, *, truncate_to: int | None) -> Tokenizer:
    """The model's fast tokenizer, padding and truncating as Hugging Face's call does.

    sentence-transformers tokenises with ``padding=True, truncation="longest_first",
    max_length=max_seq_length``; the ``tokenizers`` object needs no transformers (nor torch).
    """
    from tokenizers import Tokenizer

    folder = layout.transformer_dir
    config = _read_json(folder / "tokenizer_config.json")
    tokenizer_file = folder / "tokenizer.json"
    if tokenizer_file.is_file():
        tokenizer = Tokenizer.from_file(str(tokenizer_file))
    else:
        # A slow-only tokenizer: transformers converts it (this imports torch, once).
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(folder, use_fast=True).backend_tokenizer
    if layout.do_lower_case:
        _lowercase_first(tokenizer)
    tokenizer.no_truncation()
    tokenizer.no_padding()
    if truncate_to is not None:
        tokenizer.enable_truncation(
            truncate_to,
            strategy="longest_first",
            direction=str(config.get("truncation_side", "right")),
        )
        pad_token = _token_text(config.get("pad_token")) or "[PAD]"
        pad_id = tokenizer.token_to_id(pad_token)
        tokenizer.enable_padding(
            direction=str(config.get("padding_side", "right")),
            pad_id=pad_id if pad_id is not None else 0,
            pad_token=pad_token,
        )
    return tokenizer


def _lowercase_first(tokenizer: Tokenizer) -> None:
    """sentence-transformers' ``do_lower_case``: a Lowercase normaliser in front, once."""
    from tokenizers import normalizers

    if _lowercases(tokenizer.normalizer):
        return
    steps = [normalizers.Lowercase()]
    if tokenizer.normalizer is not None:
        steps.append(tokenizer.normalizer)
    tokenizer.normalizer = normalizers.Sequence(steps)


def _token_text(token: object) -> str | None:
    """A special token as tokenizer_config.json stores it: a string or an AddedToken dict."""
    if isinstance(token, dict):
        token = token.get("content")
    return token if isinstance(token, str) else None


def _lowercases(normalizer: object) -> bool:
    """sentence-transformers' ``_has_lowercase``: a Lowercase step, alone or in a Sequence.

    A BertNormalizer that lower-cases counts as none there too, so the same models get the
    extra (harmless) step.
    """
    from tokenizers import normalizers

    if isinstance(normalizer, normalizers.Lowercase):
        return True
    if isinstance(normalizer, normalizers.Sequence):
        steps: Sequence[object] = normalizer  # type: ignore[assignment]  # indexable, untyped
        return any(isinstance(steps[i], normalizers.Lowercase) for i in range(len(steps)))
    return False
