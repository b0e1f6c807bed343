"""The encoder on ONNX Runtime: the same vectors as `LocalEmbeddings`, without loading torch.

`export_onnx` turns the local sentence-transformers folder into an ONNX graph once (torch and
transformers are imported only there) and caches it under `<cache_dir>/encoders/<model hash>/`,
so a changed model folder gets a new export. `OnnxEmbeddings` then answers with `onnxruntime`
and `tokenizers` only: tokenise (truncated to the model's `max_seq_length`), run the graph for
the last hidden state, mean-pool over the attention mask and L2-normalise, as the
sentence-transformers pipeline (Transformer -> mean Pooling -> Normalize) does.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np
from langchain_core.embeddings import Embeddings

from advisor.config import PROJECT_ROOT, force_offline
from advisor.errors import ConfigError
from advisor.vector_cache import readable_as_folder

OPSET = 17
ONNX_NAME = "model.onnx"
# The weights, beside the graph: ONNX Runtime maps this file instead of copying the weights
# out of the parsed graph, so a session opens in 0.04 s at +57 MB peak (inline: 0.17 s, +142 MB).
ONNX_DATA_NAME = "model.onnx.data"
# The files that decide the vectors: weights, configs, tokenizer. Not README.md or .gitattributes.
HASHED_SUFFIXES = (".safetensors", ".bin", ".json", ".txt", ".model")
HASH_SKIP = frozenset({"README.md", ".gitattributes"})
DEFAULT_MAX_SEQ_LENGTH = 256
# Tokens (rows x padded length) per ONNX Runtime call. Its activations grow with the batch's
# area: measured on 2 cores, 64 rows x 256 tokens peaked at 1.7 GB and ran 11.8 rows/s, 16 x 256
# at 0.49 GB and 20.7 rows/s. Short texts (questions, sentences) still go 64 at a time.
BATCH_TOKENS = 4096


def _hashed_files(model_path: Path) -> list[Path]:
    files = [
        p
        for p in model_path.rglob("*")
        if p.is_file()
        and p.name not in HASH_SKIP
        and p.suffix in HASHED_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(model_path).parts)
    ]
    return sorted(files, key=lambda p: p.relative_to(model_path).as_posix())


HASH_MEMO = "model-hashes.json"


def model_hash(model_path: str | Path, memo_dir: str | Path | None = None) -> str:
    """sha256 over the model folder's weight, config and tokenizer files (sorted names and bytes).

    With `memo_dir`, the hash is kept in `<memo_dir>/encoders/model-hashes.json` with each file's
    size and modification time, and read from there while none of them has changed: hashing the
    90 MB of weights costs ~0.1 s of every start. (A file rewritten to the same size within the
    same nanosecond would go unnoticed, as it would by make or git.)
    """
    root = Path(model_path)
    if not root.is_dir():
        raise ConfigError(f"Embedding model folder not found: {model_path}")
    if memo_dir is None:
        return _hash_files(root)
    files = _hashed_files(root)
    stats = [(p, p.stat()) for p in files]
    stamp = [[p.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns] for p, st in stats]
    memo_file = Path(memo_dir) / "encoders" / HASH_MEMO
    key = str(root.resolve())
    try:
        memo = json.loads(memo_file.read_text(encoding="utf-8"))
        entry = memo.get(key) if isinstance(memo, dict) else None
        if isinstance(entry, dict) and entry.get("files") == stamp and isinstance(entry.get("sha256"), str):
            return entry["sha256"]
    except (OSError, ValueError):  # none yet, or unreadable: hash again and rewrite it
        memo = {}
    digest = _hash_files(root, files)
    memo = memo if isinstance(memo, dict) else {}
    memo[key] = {"files": stamp, "sha256": digest}
    try:
        memo_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo_file.with_name(f".{HASH_MEMO}.{os.getpid()}-{threading.get_ident()}")
        tmp.write_text(json.dumps(memo, indent=1), encoding="utf-8")
        os.replace(tmp, memo_file)
    except OSError:  # a read-only cache folder: hash on every start
        pass
    return digest


def _hash_files(root: Path, files: list[Path] | None = None) -> str:
    digest = hashlib.sha256()
    for path in _hashed_files(root) if files is None else files:
        name = path.relative_to(root).as_posix().encode()
        digest.update(len(name).to_bytes(8, "big") + name)
        digest.update(path.stat().st_size.to_bytes(8, "big"))
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def onnx_path(model_path: str | Path, cache_dir: str | Path, digest: str | None = None) -> Path:
    """Where the export of this model (by content hash; `digest` if already computed) lives."""
    return Path(cache_dir) / "encoders" / (digest or model_hash(model_path)) / ONNX_NAME


def export_onnx(model_path: str | Path, cache_dir: str | Path, digest: str | None = None) -> Path:
    """Export the local model's transformer to ONNX once; return the cached file.

    The graph takes input_ids, attention_mask and token_type_ids (int64, [batch, sequence],
    both axes dynamic) and returns last_hidden_state [batch, sequence, hidden]; pooling and
    normalisation happen in numpy. The graph (`model.onnx`) and its weights (`model.onnx.data`)
    are written in a temporary folder beside the cache and renamed into place together, so an
    interrupted export leaves nothing that looks finished.
    """
    force_offline()
    target = onnx_path(model_path, cache_dir, digest)
    if target.is_file():
        return target
    target.parent.parent.mkdir(parents=True, exist_ok=True)

    import onnx
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        model = AutoModel.from_pretrained(str(model_path), local_files_only=True)
    except Exception as exc:  # safetensors, tokenizers and torch each raise their own kinds
        raise _export_failed(model_path, exc) from exc
    model.eval()

    class _Wrapper(torch.nn.Module):
        """Calls the model with keyword arguments, as the pinned transformers needs."""

        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            out = self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            )
            return out.last_hidden_state

    # A padded sample: traced with an all-ones mask, transformers may drop the mask from the graph.
    ids = torch.full((2, 8), 1000, dtype=torch.long)
    mask = torch.ones((2, 8), dtype=torch.long)
    mask[1, 5:] = 0
    axes = {0: "batch", 1: "sequence"}
    work = Path(tempfile.mkdtemp(prefix=f".{target.parent.name[:16]}.tmp-", dir=target.parent.parent))
    raw = work / "traced.onnx"
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # The tracer's notes on shape-dependent Python branches: the outputs are checked
            # against the torch encoder (tests/test_onnx_encoder.py), padded batches included.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _Wrapper(model),
                (ids, mask, torch.zeros_like(ids)),
                str(raw),
                input_names=["input_ids", "attention_mask", "token_type_ids"],
                output_names=["last_hidden_state"],
                dynamic_axes={
                    "input_ids": axes,
                    "attention_mask": axes,
                    "token_type_ids": axes,
                    "last_hidden_state": axes,
                },
                opset_version=OPSET,
                dynamo=False,
            )
        staged = work / "export"
        staged.mkdir()
        graph = onnx.load(str(raw))
        onnx.save_model(
            graph,
            str(staged / ONNX_NAME),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=ONNX_DATA_NAME,
            size_threshold=1024,
        )
        for file in staged.iterdir():
            readable_as_folder(file)
        _move_into_place(staged, target)
    except (RuntimeError, TypeError, ValueError, OSError) as exc:
        raise _export_failed(model_path, exc) from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def _move_into_place(staged: Path, target: Path) -> None:
    """Rename the staged folder to the cache's; another process's finished export wins."""
    folder = target.parent
    if folder.exists() and not target.is_file():
        shutil.rmtree(folder, ignore_errors=True)  # what an interrupted older export left
    try:
        os.replace(staged, folder)
    except OSError:
        if not target.is_file():  # not a concurrent export that finished first
            raise


def _export_failed(model_path: str | Path, exc: Exception) -> ConfigError:
    return ConfigError(
        f"Could not export the model in {model_path} to ONNX ({type(exc).__name__}: {exc}). "
        "Set ADVISOR_ENCODER=torch to use it through sentence-transformers."
    )


SUPPORTED_MODULES = {"Transformer", "Pooling", "Normalize"}


def unsupported(model_path: str | Path) -> str | None:
    """Why this model folder's pipeline is not the one `OnnxEmbeddings` computes (None if it is).

    It computes Transformer -> mean pooling -> L2 normalisation; another pooling or an extra
    module (a Dense layer, say) would give other vectors than sentence-transformers does.
    """
    root = Path(model_path)
    modules_file = root / "modules.json"
    if not modules_file.is_file():
        return None  # a bare transformers folder: sentence-transformers mean-pools it too
    try:
        modules = json.loads(modules_file.read_text(encoding="utf-8"))
        kinds = [str(m["type"]).rsplit(".", 1)[-1] for m in modules]
        extra = [k for k in kinds if k not in SUPPORTED_MODULES]
        if extra:
            return f"its pipeline has {', '.join(extra)} (supported: Transformer, mean Pooling, Normalize)"
        for module in modules:
            if str(module["type"]).endswith("Pooling"):
                config = json.loads(
                    (root / module.get("path", "") / "config.json").read_text(encoding="utf-8")
                )
                modes = sorted(k for k, v in config.items() if k.startswith("pooling_mode_") and v)
                if modes != ["pooling_mode_mean_tokens"]:
                    return f"it pools by {', '.join(modes) or 'nothing'} (supported: mean tokens)"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"its modules.json or pooling config cannot be read ({exc})"
    return None


def _max_seq_length(model_path: Path) -> int:
    config = model_path / "sentence_bert_config.json"
    if config.is_file():
        value = json.loads(config.read_text(encoding="utf-8")).get("max_seq_length")
        if value:
            return int(value)
    return DEFAULT_MAX_SEQ_LENGTH


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class OnnxEmbeddings(Embeddings):
    """`LocalEmbeddings`' interface on ONNX Runtime: batched, L2-normalised, no torch."""

    def __init__(self, model_path: str, batch_size: int = 64, cache_dir: str | Path | None = None) -> None:
        force_offline()
        if not Path(model_path).is_dir():
            raise ConfigError(
                f"Embedding model folder not found: {model_path} "
                "(set ADVISOR_EMBEDDING_MODEL_PATH to a local sentence-transformers model)"
            )
        reason = unsupported(model_path)
        if reason:
            raise ConfigError(
                f"The ONNX encoder cannot run the model in {model_path}: {reason}. "
                "Set ADVISOR_ENCODER=torch to use it through sentence-transformers."
            )
        self.model_path = model_path
        self.batch_size = batch_size
        self.cache_dir = Path(cache_dir) if cache_dir is not None else PROJECT_ROOT / "data"
        self.max_seq_length = _max_seq_length(Path(model_path))
        self._lock = threading.Lock()
        self._session = None  # loaded on first use, as LocalEmbeddings does
        self._tokenizer = None
        self._input_names: list[str] = []
        self._dimension: int | None = None
        self._hash: str | None = None
        self._pad_id = 0

    kind = "onnx"

    @property
    def model_hash(self) -> str:
        """The model folder's content hash, computed once (it names the cached export too)."""
        if self._hash is None:
            self._hash = model_hash(self.model_path, memo_dir=self.cache_dir)
        return self._hash

    @property
    def encoder_identity(self) -> str:
        """What the index records as the encoder that built it: "onnx:<model hash>"."""
        from advisor.embedding import identity_of

        return identity_of(self.kind, self.model_hash)

    def _load(self) -> None:
        if self._session is not None:
            return
        with self._lock:
            if self._session is not None:
                return
            import onnxruntime as ort
            from tokenizers import Tokenizer

            path = export_onnx(
                self.model_path, self.cache_dir, self.model_hash
            )  # the cached file once exported
            tokenizer = Tokenizer.from_file(str(Path(self.model_path) / "tokenizer.json"))
            # tokenizer.json ships with truncation at 128 and fixed padding to 128; the model
            # (sentence_bert_config.json) reads up to max_seq_length, padded per batch.
            # Padding happens per batch in `_run`, to the batch's longest text.
            tokenizer.enable_truncation(max_length=self.max_seq_length)
            tokenizer.no_padding()
            pad_id = tokenizer.token_to_id("[PAD]")
            self._pad_id = 0 if pad_id is None else pad_id

            options = ort.SessionOptions()
            options.intra_op_num_threads = _cores()
            options.inter_op_num_threads = 1
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            # Pre-packed weight copies cost ~30 MB of resident memory and measured no faster.
            options.add_session_config_entry("session.disable_prepacking", "1")
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            self._input_names = [i.name for i in session.get_inputs()]
            dims = session.get_outputs()[0].shape
            self._dimension = dims[-1] if isinstance(dims[-1], int) else None
            self._tokenizer = tokenizer
            self._session = session

    @property
    def dimension(self) -> int:
        self._load()
        if self._dimension is None:
            self._dimension = int(self.encode(["x"]).shape[1])
        return self._dimension

    def _run(self, encodings: list) -> np.ndarray:
        """Unit vectors for a batch of tokenised texts, padded here to the batch's longest."""
        width = max(len(e.ids) for e in encodings)
        ids = np.full((len(encodings), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        types = np.zeros((len(encodings), width), dtype=np.int64)
        for row, e in enumerate(encodings):
            n = len(e.ids)
            ids[row, :n] = e.ids
            mask[row, :n] = e.attention_mask
            types[row, :n] = e.type_ids
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        feeds = {name: feeds[name] for name in self._input_names}
        hidden = self._session.run(None, feeds)[0]  # [batch, sequence, hidden]
        weights = mask[:, :, None].astype(np.float32)
        summed = (hidden * weights).sum(axis=1)
        pooled = summed / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)

    def _batches(self, lengths: list[int]) -> list[list[int]]:
        """Text indices, longest first, in batches of at most `batch_size` rows and about
        BATCH_TOKENS padded tokens (a single text longer than that is a batch of its own)."""
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        batches: list[list[int]] = []
        for i in order:
            if batches:
                batch = batches[-1]
                width = lengths[batch[0]]  # the first is the longest: the batch pads to it
                if len(batch) < self.batch_size and (len(batch) + 1) * width <= BATCH_TOKENS:
                    batch.append(i)
                    continue
            batches.append([i])
        return batches

    def encode(self, texts: list[str], show_progress: bool = False) -> np.ndarray:
        """Embed texts as a float32 matrix of unit vectors, in the order given."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        self._load()
        encodings = self._tokenizer.encode_batch(texts)
        batches = self._batches([len(e.ids) for e in encodings])
        if show_progress:
            from tqdm import tqdm

            batches = tqdm(batches, desc="Embedding", unit="batch")
        out: np.ndarray | None = None
        for batch in batches:
            vectors = self._run([encodings[i] for i in batch])
            if out is None:
                out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
            out[np.array(batch)] = vectors
        return out

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """LangChain hook: embed many texts."""
        return self.encode(list(texts)).tolist()

    def embed_query(self, text: str) -> list[float]:
        """LangChain hook: embed one query."""
        return self.encode([text])[0].tolist()
