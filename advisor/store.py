"""Store stage: chunks and their sentences, with embeddings, in Chroma (embedded or server).

An index is a *generation*: a pair of collections (`<name>_g<stamp>_chunks` and
`..._sentences`). A small pointer collection names the generation queries read. An ingest
writes a new generation beside the current one and only then moves the pointer, so an
interrupted or failed ingest never leaves a half-written index that queries would read.
Chroma's own embedding function is never used: every vector comes from the encoder (`advisor.embedding.make_embeddings`).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import numpy as np

from advisor.config import Settings, force_offline
from advisor.errors import ConfigError, IndexDamagedError
from advisor.types import Chunk

log = logging.getLogger(__name__)

_BATCH = 1000
_REBUILD = "Rebuild it with `advisor ingest --rebuild`."
_WHAT = {"chunks": "passage vectors", "sentences": "sentence vectors"}
_UNIT_TOLERANCE = 1e-3  # every stored vector is a unit vector (both encoders normalise them)
# Chroma's local HNSW segment header (hnswlib's, after a version number): what the files hold
_HNSW_HEADER = struct.Struct("<i6Q")  # version, offset, capacity, count, bytes per element, ...
_HNSW_HEADER_BYTES = 100


def make_client(settings: Settings):
    """A Chroma client: HttpClient in server mode, PersistentClient otherwise; telemetry off."""
    force_offline()
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if settings.server_mode:
        if settings.chroma_url:
            url = urlparse(settings.chroma_url)
            if not url.hostname:
                raise ConfigError(f"ADVISOR_CHROMA_URL is not a URL: {settings.chroma_url!r}")
            host, port, ssl = (
                url.hostname,
                url.port or (443 if url.scheme == "https" else 8000),
                url.scheme == "https",
            )
        else:
            host, port, ssl = settings.chroma_host, settings.chroma_port or 8000, False
        return chromadb.HttpClient(host=host, port=port, ssl=ssl, settings=chroma_settings)
    settings.index_dir.mkdir(parents=True, exist_ok=True)
    try:
        client = chromadb.PersistentClient(path=str(settings.index_dir), settings=chroma_settings)
        client.list_collections()
        return client
    except Exception as exc:  # noqa: BLE001 - a damaged database: keep it for inspection, start anew
        aside = settings.index_dir.with_name(f"{settings.index_dir.name}.damaged-{int(time.time())}")
        settings.index_dir.rename(aside)
        log.warning(
            "the index at %s could not be opened (%s); moved it to %s and starting afresh",
            settings.index_dir,
            exc,
            aside,
        )
        settings.index_dir.mkdir(parents=True)
        from chromadb.api.client import SharedSystemClient

        SharedSystemClient.clear_system_cache()  # chroma caches the broken system per path
        return chromadb.PersistentClient(path=str(settings.index_dir), settings=chroma_settings)


@dataclass(frozen=True)
class DocRecord:
    """What the index remembers of one ingested document."""

    source: str
    content_hash: str
    path: str
    title: str
    chunks: int


@dataclass(frozen=True)
class IndexState:
    """The generation queries read, and what it holds."""

    generation: str
    signature: str
    docs: dict[str, DocRecord] = field(default_factory=dict)
    created: float = 0.0
    # the encoder that embedded it ("torch:<model hash>" / "onnx:<model hash>"); "" for an index
    # built before encoders were recorded (issue 18), which only torch could have built
    encoder: str = ""

    def encoder_matches(self, identity: str) -> bool:
        """Whether vectors from the encoder `identity` may be compared with (or added to) these.

        Only the same encoder's: torch and ONNX give the same vectors to cosine 0.99999994, but
        vectors from different encoders are never mixed. An index from before encoders were
        recorded counts as torch's with the same model (its signature names the model folder).
        """
        if self.encoder:
            return self.encoder == identity
        return identity.startswith("torch:")


@dataclass(frozen=True)
class SentenceIndex:
    """Every sentence of every chunk with its unit vector, for the extractive answerer."""

    chunk_ids: list[str]
    texts: list[str]
    starts: np.ndarray  # char offset of the sentence inside its chunk text
    vectors: np.ndarray  # (n, dim) float32, unit length
    by_chunk: dict[str, np.ndarray]  # chunk id -> row indices


def _chunk_meta(chunk: Chunk) -> dict[str, Any]:
    return {k: v for k, v in chunk.meta.items() if isinstance(v, (str, int, float, bool))}


class ChromaStore:
    """Reads and writes index generations in one Chroma database."""

    def __init__(self, settings: Settings, client=None) -> None:
        self.name = settings.collection
        self.client = client if client is not None else make_client(settings)
        self._pointer_name = f"{self.name}__pointer"
        # where the files are, for the HNSW file check and for messages (None: a Chroma server)
        self.index_dir = None if settings.server_mode else settings.index_dir
        if settings.server_mode:
            server = settings.chroma_url or f"http://{settings.chroma_host}:{settings.chroma_port or 8000}"
            self.location = f"on the Chroma server at {server}"
        else:
            self.location = f"at {settings.index_dir}"

    # ---- reading -------------------------------------------------------------------
    def state(self) -> IndexState | None:
        """The published generation, or None when nothing has been built."""
        try:
            pointer = self.client.get_collection(self._pointer_name)
        except Exception:  # noqa: BLE001 - chroma raises NotFoundError / ValueError by version
            return None
        meta = pointer.metadata or {}
        generation = meta.get("generation")
        if not generation:
            return None
        docs = {k: DocRecord(**v) for k, v in json.loads(meta.get("docs", "{}")).items()}
        return IndexState(
            generation=generation,
            signature=str(meta.get("signature", "")),
            docs=docs,
            created=float(meta.get("created", 0.0)),
            encoder=str(meta.get("encoder", "")),
        )

    def _collections(self, generation: str):
        """The generation's (chunks, sentences) collections; IndexDamagedError when the pointer
        names collections that are not there, or their vector files are cut short."""
        from chromadb.errors import ChromaError

        self._check_vector_files(generation)
        try:
            return (
                self.client.get_collection(f"{generation}_chunks", embedding_function=None),
                self.client.get_collection(f"{generation}_sentences", embedding_function=None),
            )
        except (ChromaError, ValueError) as exc:  # NotFoundError (a ValueError in older Chroma)
            raise IndexDamagedError(
                f"The index {self.location} is damaged: its published generation {generation!r} "
                f"has no collections ({exc}). {_REBUILD}"
            ) from exc

    def _damaged(self, generation: str, kind: str, cause: object) -> IndexDamagedError:
        return IndexDamagedError(
            f"The index {self.location} is damaged: the {_WHAT[kind]} of generation {generation!r} "
            f"could not be read ({cause}). {_REBUILD}"
        )

    def _check_vector_files(self, generation: str) -> None:
        """Embedded store: each of the generation's HNSW segments holds as many bytes as its
        header says. Chroma reads a cut-short file as if it were whole: mostly it then raises,
        but now and then the process dies (SIGSEGV, measured on emptied data_level0.bin files),
        so this is checked before Chroma opens them. Nothing is checked when Chroma's catalogue
        or a header is not in the layout this knows (another Chroma version)."""
        if self.index_dir is None:
            return
        try:
            db = sqlite3.connect(f"{(self.index_dir / 'chroma.sqlite3').as_uri()}?mode=ro", uri=True)
            try:
                rows = db.execute(
                    "SELECT c.name, s.id FROM segments s JOIN collections c ON s.collection = c.id "
                    "WHERE s.scope = 'VECTOR' AND c.name IN (?, ?)",
                    (f"{generation}_chunks", f"{generation}_sentences"),
                ).fetchall()
            finally:
                db.close()
        except sqlite3.Error as exc:
            log.debug("vector files of %s not checked: %s", generation, exc)
            return
        for name, segment in rows:
            folder = self.index_dir / segment
            header = folder / "header.bin"
            if not header.is_file():
                continue  # no vectors flushed to files yet: they are in Chroma's log
            raw = header.read_bytes()
            kind = name.rsplit("_", 1)[1]
            if len(raw) < _HNSW_HEADER_BYTES:
                raise self._damaged(generation, kind, f"{header} is {len(raw)} bytes long, not 100")
            version, _, _, count, per_element = _HNSW_HEADER.unpack_from(raw)[:5]
            if version != 1:
                continue
            for file, expected in (("data_level0.bin", count * per_element), ("length.bin", count * 4)):
                path = folder / file
                size = path.stat().st_size if path.is_file() else 0
                if size < expected:
                    raise self._damaged(
                        generation,
                        kind,
                        f"{path} holds {size:,} bytes; its header says {count:,} vectors, {expected:,} bytes",
                    )

    def load_chunks(self, state: IndexState) -> list[Chunk]:
        """Every chunk of a generation, in document order."""
        return self.load_chunk_vectors(state)[0]

    def load_chunk_vectors(self, state: IndexState) -> tuple[list[Chunk], np.ndarray]:
        """Every chunk of a generation, in document order, with its vector (one row each)."""
        chunks_col, _ = self._collections(state.generation)
        got = self._read_vectors(chunks_col, state.generation, "chunks")
        rows = [
            (Chunk(id=i, doc_id=str(m.get("source", "")), text=d, meta=dict(m)), e)
            for i, d, m, e in zip(got["ids"], got["documents"], got["metadatas"], got["embeddings"])
        ]
        rows.sort(key=lambda row: (row[0].source, int(row[0].meta.get("chunk_index", 0))))
        vectors = np.asarray([e for _, e in rows], dtype=np.float32)
        return [c for c, _ in rows], vectors.reshape(len(rows), -1) if rows else vectors.reshape(0, 0)

    def load_sentences(self, state: IndexState) -> SentenceIndex:
        """Every sentence of a generation with its vector."""
        _, sent_col = self._collections(state.generation)
        got = self._read_vectors(sent_col, state.generation, "sentences")
        chunk_ids = [str(m["chunk_id"]) for m in got["metadatas"]]
        starts = np.array([int(m.get("start", 0)) for m in got["metadatas"]], dtype=np.int64)
        vectors = got["embeddings"]
        by_chunk: dict[str, list[int]] = {}
        for row, cid in enumerate(chunk_ids):
            by_chunk.setdefault(cid, []).append(row)
        return SentenceIndex(
            chunk_ids=chunk_ids,
            texts=list(got["documents"]),
            starts=starts,
            vectors=vectors,
            by_chunk={k: np.array(v, dtype=np.int64) for k, v in by_chunk.items()},
        )

    def _read_vectors(self, collection, generation: str, kind: str) -> dict[str, Any]:
        """Every row of a generation's collection with its vector (as one float32 array), or
        IndexDamagedError when Chroma cannot read them or they are not the unit vectors stored."""
        from chromadb.errors import ChromaError

        try:
            got = self._get_all(collection, include=["documents", "metadatas", "embeddings"])
            vectors = np.asarray(got["embeddings"], dtype=np.float32)
        except (ChromaError, ValueError) as exc:  # ValueError: vectors of different lengths
            raise self._damaged(generation, kind, exc) from exc
        n = len(got["ids"])
        if not n:
            got["embeddings"] = vectors.reshape(0, 0)
            return got
        if vectors.ndim != 2 or len(vectors) != n:
            raise self._damaged(generation, kind, f"{n} rows but {len(vectors)} vectors")
        norms = np.linalg.norm(vectors, axis=1)
        off = int(np.count_nonzero(~(np.abs(norms - 1.0) <= _UNIT_TOLERANCE)))  # NaN counts as off
        if off:
            raise self._damaged(generation, kind, f"{off} of {n} {_WHAT[kind]} are not unit vectors")
        got["embeddings"] = vectors
        return got

    @staticmethod
    def _get_all(collection, include: list[str], where: dict | None = None) -> dict[str, list]:
        out: dict[str, list] = {"ids": [], **{k: [] for k in include}}
        offset = 0
        while True:
            got = collection.get(include=include, where=where, limit=_BATCH, offset=offset)
            if not got["ids"]:
                break
            out["ids"].extend(got["ids"])
            for key in include:
                values = got[key]
                out[key].extend(list(values) if values is not None else [])
            offset += len(got["ids"])
            if len(got["ids"]) < _BATCH:
                break
        return out

    # ---- writing -------------------------------------------------------------------
    def new_generation(self) -> GenerationWriter:
        """Start writing a generation beside the published one."""
        generation = f"{self.name}_g{int(time.time() * 1000)}"
        return GenerationWriter(self, generation)

    def publish(self, generation: str, signature: str, docs: dict[str, DocRecord], encoder: str = "") -> None:
        """Point queries at a finished generation (embedded by `encoder`), then drop all but it
        and its predecessor."""
        previous = self.state()
        meta = {
            "generation": generation,
            "signature": signature,
            "encoder": encoder,
            "docs": json.dumps({k: vars(v) for k, v in docs.items()}),
            "created": time.time(),
        }
        try:
            pointer = self.client.get_collection(self._pointer_name)
            pointer.modify(metadata=meta)
        except Exception:  # noqa: BLE001 - no pointer yet (the error type varies by version)
            self.client.create_collection(self._pointer_name, metadata=meta, embedding_function=None)
        keep = {generation, previous.generation if previous else ""}
        self.drop_generations(keep=keep)

    def drop_generations(self, keep: Iterable[str]) -> list[str]:
        """Delete generations not in `keep` (leftovers of interrupted ingests, old ones)."""
        keep = set(keep)
        dropped = []
        prefix = f"{self.name}_g"
        for name in self._collection_names():
            if not name.startswith(prefix):
                continue
            generation = name.rsplit("_", 1)[0]
            if generation not in keep:
                self.client.delete_collection(name)
                dropped.append(name)
        return dropped

    def _collection_names(self) -> list[str]:
        return [c if isinstance(c, str) else c.name for c in self.client.list_collections()]


class GenerationWriter:
    """Fills one unpublished generation: copies kept documents, adds new chunks and sentences."""

    def __init__(self, store: ChromaStore, generation: str) -> None:
        self.store = store
        self.generation = generation
        client = store.client
        space = {"hnsw:space": "cosine"}
        self.chunks = client.create_collection(
            f"{generation}_chunks", metadata=space, embedding_function=None
        )
        self.sentences = client.create_collection(
            f"{generation}_sentences", metadata=space, embedding_function=None
        )

    def copy_documents(self, state: IndexState, sources: list[str]) -> None:
        """Copy the chunks and sentences of unchanged documents from a published generation."""
        if not sources:
            return
        old_chunks, old_sentences = self.store._collections(state.generation)
        where = {"source": {"$in": sources}}
        include = ["documents", "metadatas", "embeddings"]
        for old, new in ((old_chunks, self.chunks), (old_sentences, self.sentences)):
            got = ChromaStore._get_all(old, include=include, where=where)
            self._add(new, got["ids"], got["documents"], got["metadatas"], got["embeddings"])

    def add_chunks(
        self,
        chunks: list[Chunk],
        chunk_vectors: np.ndarray,
        sentences: list[tuple[str, str, int, int]],
        sentence_vectors: np.ndarray,
    ) -> None:
        """Add chunks and their sentences (chunk id, text, start, end) with their vectors."""
        self._add(
            self.chunks,
            [c.id for c in chunks],
            [c.text for c in chunks],
            [_chunk_meta(c) for c in chunks],
            chunk_vectors,
        )
        source_of = {c.id: c.source for c in chunks}
        self._add(
            self.sentences,
            [f"{cid}:{start}" for cid, _, start, _ in sentences],
            [text for _, text, _, _ in sentences],
            [
                {"chunk_id": cid, "source": source_of[cid], "start": start, "end": end}
                for cid, _, start, end in sentences
            ],
            sentence_vectors,
        )

    def abandon(self) -> None:
        """Delete this unpublished generation."""
        for col in (self.chunks, self.sentences):
            try:
                self.store.client.delete_collection(col.name)
            except Exception:  # noqa: BLE001 - already gone; nothing reads it anyway
                log.debug("could not delete %s", col.name)

    @staticmethod
    def _add(collection, ids, documents, metadatas, embeddings) -> None:
        embeddings = np.asarray(embeddings, dtype=np.float32) if len(ids) else embeddings
        for start in range(0, len(ids), _BATCH):
            end = start + _BATCH
            collection.add(
                ids=list(ids[start:end]),
                documents=list(documents[start:end]),
                metadatas=list(metadatas[start:end]),
                embeddings=embeddings[start:end],
            )
