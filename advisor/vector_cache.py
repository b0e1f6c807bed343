"""Fixed texts' vectors (the guidance map's, the case vocabulary's and profiles') kept on disk.

Embedding the guidance map takes seconds on every process start, for the same texts. The
vectors are saved under the data folder as `<data_dir>/vectors/<name>-<key>.npy`, the key a hash
of the encoder identity ("onnx:<model hash>") and the texts embedded, written to a temporary
name then renamed. They are read back when the key matches; another encoder or changed texts
give another key, so the vectors are computed again and the stale file is removed. A file that
cannot be read, or holds the wrong shape, is logged, ignored and rewritten.

Without a cache folder, or an embedder that names its `encoder_identity`, texts are encoded as
before.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

KEY_CHARS = 16
FOLDER = "vectors"


def cache_key(identity: str, texts: Sequence[str]) -> str:
    """Hash of the encoder identity and the texts, in order."""
    digest = hashlib.sha256(identity.encode("utf-8"))
    for text in texts:
        digest.update(b"\0")
        digest.update(text.encode("utf-8"))
    return digest.hexdigest()[:KEY_CHARS]


def cached_encode(embedder: Any, texts: Sequence[str], cache_dir: Path | None, name: str) -> np.ndarray:
    """`embedder.encode(texts)`, from `<cache_dir>/vectors/<name>-<key>.npy` when it is there."""
    texts = list(texts)
    identity = getattr(embedder, "encoder_identity", None) if cache_dir is not None else None
    if not isinstance(identity, str) or not texts:
        return embedder.encode(texts)
    folder = Path(cache_dir) / FOLDER
    path = folder / f"{name}-{cache_key(identity, texts)}.npy"
    if path.exists():
        try:
            vectors = np.load(path, allow_pickle=False)
            if vectors.ndim == 2 and vectors.shape[0] == len(texts) and np.isfinite(vectors).all():
                return vectors
            log.warning("ignoring %s: shape %s for %d texts; encoding again", path, vectors.shape, len(texts))
        except (OSError, ValueError, EOFError) as exc:
            log.warning("ignoring unreadable %s (%s); encoding again", path, exc)
    vectors = np.asarray(embedder.encode(texts))
    _save(folder, path, vectors, name)
    return vectors


def readable_as_folder(file: Path) -> None:
    """Give a file made by mkstemp (mode 0600) its folder's read and write bits, as a file
    created plainly would have: a web process run as another user reads what ingest wrote."""
    os.chmod(file, file.parent.stat().st_mode & 0o666)


def _save(folder: Path, path: Path, vectors: np.ndarray, name: str) -> None:
    """Write through a temporary file and rename; remove this name's other (stale) files.

    A failure to write is logged only: the vectors are still served from memory."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                np.save(handle, vectors, allow_pickle=False)
            readable_as_folder(Path(tmp))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        for stale in folder.glob(f"{name}-{'?' * KEY_CHARS}.npy"):
            if stale != path:
                stale.unlink(missing_ok=True)
    except OSError as exc:
        log.warning("could not cache vectors at %s: %s", path, exc)
