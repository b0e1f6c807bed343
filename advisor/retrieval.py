"""Retrieval stage: query -> ranked `Passage`s, hybrid dense + BM25, fused and diversified.

Dense candidates are the chunks whose vectors (read from the published Chroma generation) are
closest to the query's, ranked exactly over the snapshot rather than by Chroma's approximate
search, so every build of the same corpus ranks the same chunks (README, "Retrieval"). Lexical
candidates come from BM25 over the same chunks (plus their section and case-study names);
reciprocal rank fusion merges the two lists. When the sentence index is given, the best fused
candidates are re-ranked by how close the query comes to their closest sentence, so a fact
stated in one sentence of a long case study can outrank chunks that only share its general
topic. A cap per report then keeps one long report from crowding out the others.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rank_bm25 import BM25Okapi

from advisor.embedding import Embedder
from advisor.errors import IndexDamagedError
from advisor.store import IndexState, SentenceIndex
from advisor.text import tokenize
from advisor.types import Chunk, Filters, Passage


def lexical_text(chunk: Chunk) -> str:
    """What BM25 sees of a chunk: its case study and section names, then its text."""
    return f"{chunk.case_study} {chunk.section} {chunk.text}"


@dataclass
class IndexSnapshot:
    """An in-memory view of one published generation: chunks by id, their unit vectors (one
    row per chunk, in the same order) and a BM25 index."""

    state: IndexState
    chunks: list[Chunk]
    bm25: BM25Okapi | None
    vectors: np.ndarray

    @classmethod
    def build(cls, state: IndexState, chunks: list[Chunk], vectors: np.ndarray) -> IndexSnapshot:
        if len(vectors) != len(chunks):
            raise IndexDamagedError(
                f"The index is damaged: generation {state.generation!r} holds {len(chunks)} passages "
                f"but {len(vectors)} vectors. Rebuild it with `advisor ingest --rebuild`."
            )
        corpus = [tokenize(lexical_text(c)) for c in chunks]
        bm25 = BM25Okapi(corpus) if chunks else None
        vectors = np.asarray(vectors, dtype=np.float32)
        if len(vectors):
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = vectors / np.where(norms > 0, norms, 1.0)
        return cls(state=state, chunks=chunks, bm25=bm25, vectors=vectors)

    @property
    def generation(self) -> str:
        return self.state.generation

    def __post_init__(self) -> None:
        self.by_id = {c.id: c for c in self.chunks}
        self.position = {c.id: i for i, c in enumerate(self.chunks)}


class HybridRetriever:
    """Dense + BM25 retrieval fused by reciprocal rank, with a per-report cap.

    With `sentences`, the top `rerank_pool` fused candidates are ranked once more by the best
    cosine between the query and any one of their sentences, and that rank joins the fused
    score as a reciprocal-rank term weighted by `sentence_weight` (a third of a list or so:
    a whole-corpus sentence ranking as a full third list measured worse).
    """

    def __init__(
        self,
        embedder: Embedder,
        snapshot: IndexSnapshot,
        k: int = 5,
        candidates: int = 40,
        rrf_k: int = 60,
        max_per_document: int = 3,
        sentences: SentenceIndex | None = None,
        rerank_pool: int = 30,
        sentence_weight: float = 0.5,
    ) -> None:
        self.embedder = embedder
        self.snapshot = snapshot
        self.k = k
        self.candidates = candidates
        self.rrf_k = rrf_k
        self.max_per_document = max_per_document
        self.sentences = sentences
        self.rerank_pool = rerank_pool
        self.sentence_weight = sentence_weight

    def retrieve(
        self,
        query: str,
        k: int | None = None,
        filters: Filters | None = None,
        query_vector: np.ndarray | None = None,
    ) -> list[Passage]:
        """The k best passages for a query, best first."""
        k = k or self.k
        snap = self.snapshot
        if not snap.chunks:
            return []
        if query_vector is None:
            query_vector = self.embedder.encode([query])[0]
        dense = self._dense(query_vector, filters)
        lexical = self._bm25(query, filters)

        fused: dict[str, float] = {}
        for ranking in (dense, lexical):
            for rank, cid in enumerate(ranking):
                if cid in snap.by_id:
                    fused[cid] = fused.get(cid, 0.0) + 1.0 / (self.rrf_k + rank + 1)
        ordered = sorted(fused.items(), key=lambda kv: (-kv[1], snap.position[kv[0]]))
        ordered = self._rerank_by_sentence(ordered, query_vector)

        per_doc: dict[str, int] = {}
        chosen: list[tuple[str, float]] = []
        overflow: list[tuple[str, float]] = []
        for cid, score in ordered:
            source = snap.by_id[cid].source
            if per_doc.get(source, 0) < self.max_per_document:
                per_doc[source] = per_doc.get(source, 0) + 1
                chosen.append((cid, score))
            else:
                overflow.append((cid, score))
            if len(chosen) == k:
                break
        if len(chosen) < k:  # a filter or a small corpus: the cap must not starve the answer
            chosen.extend(overflow[: k - len(chosen)])
            chosen.sort(key=lambda kv: -kv[1])
        return [
            Passage(chunk=snap.by_id[cid], score=score, rank=rank)
            for rank, (cid, score) in enumerate(chosen, start=1)
        ]

    def _rerank_by_sentence(
        self, ordered: list[tuple[str, float]], query_vector: np.ndarray
    ) -> list[tuple[str, float]]:
        """The fused ranking with its head re-scored by each chunk's closest sentence."""
        index = self.sentences
        if index is None or not self.sentence_weight or index.vectors.size == 0:
            return ordered
        pool, rest = ordered[: self.rerank_pool], ordered[self.rerank_pool :]
        query = np.asarray(query_vector, dtype=np.float32)
        query = query / (np.linalg.norm(query) or 1.0)
        best: dict[str, float] = {}
        for cid, _ in pool:
            rows = index.by_chunk.get(cid)
            best[cid] = float((index.vectors[rows] @ query).max()) if rows is not None and len(rows) else -1.0
        by_sentence = sorted(pool, key=lambda kv: -best[kv[0]])
        rescored = {
            cid: fused + self.sentence_weight / (self.rrf_k + rank + 1)
            for rank, (cid, fused) in enumerate(by_sentence)
        }
        position = self.snapshot.position
        head = sorted(rescored.items(), key=lambda kv: (-kv[1], position[kv[0]]))
        return head + rest

    def _dense(self, query_vector: np.ndarray, filters: Filters | None) -> list[str]:
        """The `candidates` chunks closest to the query vector by cosine, exactly, best first
        (ties in document order)."""
        snap = self.snapshot
        query = np.asarray(query_vector, dtype=np.float32)
        scores = snap.vectors @ (query / (np.linalg.norm(query) or 1.0))
        order = np.argsort(-scores, kind="stable")
        out = []
        for i in order:
            chunk = snap.chunks[i]
            if filters and not filters.allows(chunk):
                continue
            out.append(chunk.id)
            if len(out) >= self.candidates:
                break
        return out

    def _bm25(self, query: str, filters: Filters | None) -> list[str]:
        snap = self.snapshot
        tokens = tokenize(query)
        if not tokens or snap.bm25 is None:
            return []
        scores = snap.bm25.get_scores(tokens)
        order = np.argsort(-scores, kind="stable")
        out = []
        for i in order:
            if scores[i] <= 0 or len(out) >= self.candidates:
                break
            chunk = snap.chunks[i]
            if filters and not filters.allows(chunk):
                continue
            out.append(chunk.id)
        return out
