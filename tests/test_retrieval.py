"""The hybrid retriever's sentence re-ranking, on the real bundled index."""

from __future__ import annotations

import numpy as np

QUESTION = "How many peer reviewed studies have been published on KardiaMobile?"


def _retrieve(advisor, weight: float, k: int):
    retriever = advisor.retriever
    saved = retriever.sentence_weight
    retriever.sentence_weight = weight
    try:
        return retriever.retrieve(QUESTION, k=k)
    finally:
        retriever.sentence_weight = saved


def test_the_chunk_with_the_closest_sentence_is_never_demoted(built_advisor):
    """Re-ranking gives the pool's closest-sentence chunk the largest bonus, so it can only rise."""
    retriever = built_advisor.retriever
    assert retriever.sentences is not None and retriever.sentence_weight > 0
    fused = _retrieve(built_advisor, 0.0, k=retriever.rerank_pool)
    query = built_advisor.embedder.encode([QUESTION])[0]
    query = query / np.linalg.norm(query)
    index = retriever.sentences
    best = max(fused, key=lambda p: float((index.vectors[index.by_chunk[p.chunk.id]] @ query).max()))
    reranked = _retrieve(built_advisor, retriever.sentence_weight, k=retriever.rerank_pool)
    rank = {p.chunk.id: p.rank for p in reranked}
    assert rank[best.chunk.id] <= best.rank


def test_a_zero_sentence_weight_leaves_the_fused_ranking_alone(built_advisor):
    """sentence_weight=0 turns the re-ranking off: scores are the plain reciprocal-rank fusion."""
    passages = _retrieve(built_advisor, 0.0, k=5)
    scores = [p.score for p in passages]
    assert scores == sorted(scores, reverse=True)
    assert all(p.score <= 2.0 / (built_advisor.retriever.rrf_k + 1) for p in passages)
