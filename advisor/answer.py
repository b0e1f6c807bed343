"""Answer stage (offline): passages -> a short answer made of quoted, cited sentences.

The extractive answerer needs no LLM. It ranks the sentences of the retrieved passages by
their similarity to the query (with a little lexical overlap and passage rank), drops
near-duplicates, and returns the best few in reading order, each followed by its marker.
Every sentence is a verbatim quote of the passage its marker names, so its citation is true
by construction. When even the best sentence is too far from the question, it refuses; and it
asks for much closer evidence when the question names two or more things the retrieved passages
never mention and the reports mention rarely or not at all ("hip replacements", "UKCA mark"):
close-sounding sentences about something else are then the likelier match.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from advisor.retrieval import lexical_text, tokenize
from advisor.store import SentenceIndex
from advisor.types import Answer, AnswerSentence, Chunk, Citation, Passage
from advisor.words import stem

REFUSAL_TEXT = (
    "The reports in the advisor's library do not cover this question closely enough to "
    "answer it with evidence. The closest passages are listed below, in case they help."
)
UNKNOWN_TERMS_TEXT = " The reports never mention: {terms}."
UNMATCHED_TERMS_TEXT = " The closest passages do not mention: {terms}."
NO_INDEX_TEXT = "The library is empty: no report has been ingested yet."

QUOTABLE_WORDS = (6, 90)  # sentences shorter or longer than this are never quoted
_END_PUNCT = re.compile(r"""[.!?…]["”’')\]]*$""")
@dataclass(frozen=True)
class ReportTerms:
    """The words of the indexed reports by stem: in how many passages each occurs, and each
    passage's own, so the refusal gate can tell whether the evidence mentions a question's words.
    A passage's words include its report's title and publisher and its case study and section."""

    passage_count: dict[str, int]  # stem -> number of passages containing it
    by_chunk: dict[str, frozenset[str]]  # chunk id -> the stems of that passage

    @classmethod
    def from_chunks(cls, chunks: Iterable[Chunk]) -> "ReportTerms":
        """Count every passage's stems (about 35 ms for the five reports)."""
        by_chunk = {
            c.id: frozenset(
                stem(t)
                for t in tokenize(f"{lexical_text(c)} {c.title} {c.meta.get('publisher', '')}")
            )
            for c in chunks
        }
        counts: Counter[str] = Counter()
        for stems in by_chunk.values():
            counts.update(stems)
        return cls(passage_count=dict(counts), by_chunk=by_chunk)


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
        terms: ReportTerms | None = None,
        rare_term_passages: int = 5,
        spread: float = 0.12,
        redundancy: float = 0.82,
    ) -> None:
        self.sentences = sentences
        # A question naming two or more things the evidence does not mention ("COVID vaccine",
        # "Silicon Valley", "hip replacements") needs much closer evidence before it is answered.
        # A word counts when the retrieved passages lack it and at most `rare_term_passages` of
        # the reports' passages contain it: a rare word the retrieval did not bring back is as
        # good as unknown to the answer, while a common one ("decide", "spread") is only a
        # paraphrase. Calibrated on in-scope and plausible out-of-scope questions (see the README).
        self.unknown_terms_threshold = unknown_terms_threshold
        self.terms = terms
        self.rare_term_passages = rare_term_passages
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
        unmatched = self.unmatched_terms(query, passages)
        threshold = self.unknown_terms_threshold if len(unmatched) >= 2 else self.refusal_threshold
        if not candidates or best < threshold:
            text = REFUSAL_TEXT if passages else NO_INDEX_TEXT
            unknown = [t for t in unmatched if self._passage_count(t) == 0]
            rare = [t for t in unmatched if t not in unknown]
            if unknown and passages:
                text += UNKNOWN_TERMS_TEXT.format(terms=", ".join(unknown))
            if rare and passages:
                text += UNMATCHED_TERMS_TEXT.format(terms=", ".join(rare))
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

    def unmatched_terms(self, query: str, passages: list[Passage]) -> list[str]:
        """The query's rare or unknown words that none of the passages contains."""
        if self.terms is None:
            return []
        found: set[str] = set()
        for passage in passages:
            found |= self.terms.by_chunk.get(passage.chunk.id, frozenset())
        return list(
            dict.fromkeys(
                t
                for t in tokenize(query)
                if stem(t) not in found and self._passage_count(t) <= self.rare_term_passages
            )
        )

    def _passage_count(self, term: str) -> int:
        assert self.terms is not None
        return self.terms.passage_count.get(stem(term), 0)

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
