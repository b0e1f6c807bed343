"""The hybrid retriever on the real bundled index: exact dense candidates and sentence re-ranking."""

from __future__ import annotations

import json

import numpy as np
import pytest

from advisor.types import Filters

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
    """sentence_weight=0 turns the re-ranking off: each passage's score is its reciprocal-rank
    fusion of the dense and BM25 lists, recomputed here from those lists."""
    retriever = built_advisor.retriever
    vector = built_advisor.embedder.encode([QUESTION])[0]
    fused: dict[str, float] = {}
    for ranking in (retriever._dense(vector, None), retriever._bm25(QUESTION, None)):
        for rank, cid in enumerate(ranking):
            fused[cid] = fused.get(cid, 0.0) + 1.0 / (retriever.rrf_k + rank + 1)
    passages = _retrieve(built_advisor, 0.0, k=5)
    assert [p.score for p in passages] == pytest.approx([fused[p.chunk.id] for p in passages])
    best = max(fused, key=fused.get)
    assert passages[0].chunk.id == best  # the cap per report never drops the best one
    reranked = _retrieve(built_advisor, retriever.sentence_weight, k=5)
    assert [p.score for p in reranked] != [p.score for p in passages]  # and the weight does change scores


def _exact_top(advisor, question: str, n: int, source: str | None = None) -> list[str]:
    """The n chunk ids closest to the question, computed from the vectors Chroma holds."""
    chunks_col, _ = advisor.store._collections(advisor.store.state().generation)
    got = chunks_col.get(include=["embeddings", "metadatas"], where={"source": source} if source else None)
    vectors = np.asarray(got["embeddings"], dtype=np.float64)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    query = advisor.embedder.encode([question])[0].astype(np.float64)
    sims = vectors @ (query / np.linalg.norm(query))
    return [got["ids"][i] for i in np.argsort(-sims)[:n]]


def test_dense_candidates_are_the_exact_nearest_chunks(built_advisor):
    """Every dense candidate list equals a brute-force cosine ranking of the stored vectors
    (the snapshot's vectors line up with its chunks, and nothing approximate is in the way)."""
    retriever = built_advisor.retriever
    questions = [
        QUESTION,
        "We're a small team with a diabetes app; how do we get a commissioner to notice us?",
        "What evidence did the NHS want before paying for a new device?",
    ]
    for question in questions:
        vector = built_advisor.embedder.encode([question])[0]
        assert retriever._dense(vector, None) == _exact_top(built_advisor, question, retriever.candidates)


def test_a_filter_narrows_dense_candidates_to_the_exact_nearest_of_that_report(built_advisor):
    retriever = built_advisor.retriever
    source = retriever.snapshot.chunks[0].source
    vector = built_advisor.embedder.encode([QUESTION])[0]
    dense = retriever._dense(vector, Filters(sources=(source,)))
    own = [c for c in retriever.snapshot.chunks if c.source == source]
    assert len(dense) == min(retriever.candidates, len(own))
    assert dense == _exact_top(built_advisor, QUESTION, retriever.candidates, source=source)


def test_retrieval_finds_the_dev_smoke_reference_passages(built_advisor):
    """A pinned retrieval figure on a fixed fixture: the share of dev-smoke reference quotes found
    in the top 5 passages (retrieval alone, no answerer). Measured 0.846 over 13 rows (dev split,
    the one settings are tuned on); raise the floor when retrieval improves."""
    from advisor.config import PROJECT_ROOT
    from advisor.text import quote_found

    rows = [json.loads(line) for line in (PROJECT_ROOT / "eval_sets" / "dev_smoke.jsonl").open()]
    recalls = []
    for row in rows:
        quotes = row.get("reference_contexts") or []
        if not quotes:
            continue
        _, _, passages = built_advisor.search(row["user_input"], k=5)
        texts = [p.chunk.text for p in passages]
        recalls.append(sum(quote_found(q, texts) for q in quotes) / len(quotes))
    assert len(recalls) == 13
    assert sum(recalls) / len(recalls) >= 0.846 - 1e-3


def test_a_snapshot_whose_vectors_do_not_line_up_with_its_chunks_is_a_damaged_index(built_advisor):
    """Chunks and vectors read from one generation must pair up one to one; when they do not,
    the index is damaged and the message says how to rebuild it (not a bare ValueError)."""
    from advisor.errors import IndexDamagedError
    from advisor.retrieval import IndexSnapshot

    snapshot = built_advisor.index
    with pytest.raises(IndexDamagedError, match=r"advisor ingest --rebuild") as caught:
        IndexSnapshot.build(snapshot.state, snapshot.chunks, snapshot.vectors[:-1])
    assert snapshot.generation in str(caught.value)
    assert f"{len(snapshot.chunks)} passages but {len(snapshot.chunks) - 1} vectors" in str(caught.value)
