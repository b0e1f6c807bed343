"""Answer stage (offline): passages -> a short answer made of quoted, cited sentences.

The extractive answerer needs no LLM. It ranks the sentences of the retrieved passages by
their similarity to the query (with a little lexical overlap and passage rank), drops
near-duplicates, and returns the best few in reading order, each followed by its marker.
Every sentence is a verbatim quote of the passage its marker names, so its citation is true
by construction. When even the best sentence is too far from the question, it refuses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from advisor.retrieval import tokenize
from advisor.store import SentenceIndex
from advisor.types import Answer, AnswerSentence, Citation, Passage

REFUSAL_TEXT = (
    "The reports in the advisor's library do not cover this question closely enough to "
    "answer it with evidence. The closest passages are listed below, in case they help."
)
UNKNOWN_TERMS_TEXT = " The reports never mention: {terms}."
NO_INDEX_TEXT = "The library is empty: no report has been ingested yet."

QUOTABLE_WORDS = (6, 90)  # sentences shorter or longer than this are never quoted
_END_PUNCT = re.compile(r"""[.!?…]["”’')\]]*$""")


@dataclass(frozen=True)
class ScoredSentence:
    row: int
    passage: Passage
    text: str
    start: int
    similarity: float
    score: float


class ExtractiveAnswerer:
    """Composes an answer from the passages' own sentences, each cited."""

    def __init__(
        self,
        sentences: SentenceIndex,
        max_sentences: int = 4,
        refusal_threshold: float = 0.45,
        unknown_terms_threshold: float = 0.62,
        vocabulary: frozenset[str] = frozenset(),
        spread: float = 0.12,
        redundancy: float = 0.82,
    ) -> None:
        self.sentences = sentences
        # A question naming two or more things the reports never mention ("COVID vaccine",
        # "Silicon Valley") needs much closer evidence before it is answered: calibrated on
        # in-scope and plausible out-of-scope questions (see the README).
        self.unknown_terms_threshold = unknown_terms_threshold
        self.vocabulary = vocabulary
        self.max_sentences = max_sentences
        self.refusal_threshold = refusal_threshold
        self.spread = spread  # keep sentences within this much of the best one
        self.redundancy = redundancy  # skip a sentence this similar to one already chosen

    def answer(
        self, question: str, query: str, query_vector: np.ndarray, passages: list[Passage]
    ) -> Answer:
        """The cited extractive answer, or a refusal listing the closest passages."""
        candidates = self._score(query, query_vector, passages)
        best = max((c.similarity for c in candidates), default=0.0)
        unknown = self.unknown_terms(query)
        threshold = self.unknown_terms_threshold if len(unknown) >= 2 else self.refusal_threshold
        if not candidates or best < threshold:
            text = REFUSAL_TEXT if passages else NO_INDEX_TEXT
            if unknown and passages:
                text += UNKNOWN_TERMS_TEXT.format(terms=", ".join(unknown))
            return Answer(
                question=question,
                query=query,
                text=text,
                citations=(),
                passages=tuple(passages),
                refused=True,
            )
        chosen = self._select(candidates, best)
        chosen.sort(key=lambda c: (c.passage.rank, c.start))
        citations, sentences, parts = [], [], []
        for marker, cand in enumerate(chosen, start=1):
            citations.append(Citation(marker=marker, passage=cand.passage, quote=cand.text))
            sentences.append(AnswerSentence(text=cand.text, markers=(marker,), verdict="supported"))
            parts.append(f"{cand.text} [{marker}]")
        return Answer(
            question=question,
            query=query,
            text=" ".join(parts),
            citations=tuple(citations),
            passages=tuple(passages),
            refused=False,
            sentences=tuple(sentences),
        )

    def unknown_terms(self, query: str) -> list[str]:
        """The query's content words that no indexed report contains."""
        if not self.vocabulary:
            return []
        return list(dict.fromkeys(t for t in tokenize(query) if t not in self.vocabulary))

    def _score(
        self, query: str, query_vector: np.ndarray, passages: list[Passage]
    ) -> list[ScoredSentence]:
        index = self.sentences
        query_terms = set(tokenize(query))
        out: list[ScoredSentence] = []
        n = max(len(passages), 1)
        for passage in passages:
            rows = index.by_chunk.get(passage.chunk.id)
            if rows is None or len(rows) == 0:
                continue
            sims = index.vectors[rows] @ query_vector
            for row, sim in zip(rows.tolist(), sims.tolist()):
                text = index.texts[row]
                words = text.split()
                if not QUOTABLE_WORDS[0] <= len(words) <= QUOTABLE_WORDS[1]:
                    continue
                overlap = (
                    len(query_terms & set(tokenize(text))) / len(query_terms) if query_terms else 0.0
                )
                score = sim + 0.08 * overlap + 0.03 * (n - passage.rank + 1) / n
                if not _END_PUNCT.search(text):
                    score -= 0.05  # a fragment (a heading or cut bullet) reads badly as an answer
                out.append(
                    ScoredSentence(row, passage, text, int(index.starts[row]), float(sim), score)
                )
        return out

    def _select(self, candidates: list[ScoredSentence], best: float) -> list[ScoredSentence]:
        vectors = self.sentences.vectors
        floor = max(self.refusal_threshold, best - self.spread)
        chosen: list[ScoredSentence] = []
        for cand in sorted(candidates, key=lambda c: -c.score):
            if len(chosen) == self.max_sentences:
                break
            if cand.similarity < floor:
                continue
            if any(
                cand.text == c.text or float(vectors[cand.row] @ vectors[c.row]) > self.redundancy
                for c in chosen
            ):
                continue
            chosen.append(cand)
        return chosen
