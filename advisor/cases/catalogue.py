"""`CaseCatalogue`: the loaded case studies and what the advisor asks of them; `CatalogueLoader`.

- `filter(**tags)`: the cases with given tags (the web page's explorer).
- `like(text)`: "cases like mine", ranked by shared tags and by meaning (`ranking`).
- `answer(question, index)`: a question across cases ("which innovations used a tariff?", "how
  many are digital tools?", "compare IAPT and RAID", "cases like mine: ...") answered with one
  cited row per case instead of five passages (`reading`, `compose`); None for other questions.
- `anchors(index)`: where each quote is in the published index, cached per index generation.

`CatalogueLoader` reloads the catalogue with the index and keeps serving the last good one when
a reload finds it broken.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from advisor.cases.compose import Anchors, compare_answer, like_answer, list_answer
from advisor.cases.loading import load_catalogue
from advisor.cases.model import CATALOGUE_NAME, CaseMatch, CaseQuery, CaseStudy
from advisor.cases.ranking import (
    LIKE_MARGIN,
    MIN_LIKE_SCORE,
    CaseSimilarity,
    allowed,
    filter_cases,
    matching,
    rank_like,
)
from advisor.cases.reading import MODEL_FILE, CaseQuestionModel, QuestionReader, Reading, load_model
from advisor.cases.vocabulary import Vocabulary
from advisor.errors import CatalogueError
from advisor.text import normalise_space
from advisor.types import Answer, Chunk, Filters

log = logging.getLogger(__name__)


class IndexView(Protocol):
    """What the catalogue reads of the published index: its generation and its chunks."""

    @property
    def generation(self) -> str: ...

    @property
    def chunks(self) -> Sequence[Chunk]: ...


class CaseCatalogue:
    """The catalogued case studies: filter by tags, rank "cases like mine", answer across cases."""

    def __init__(
        self,
        cases: list[CaseStudy],
        vocabulary: Vocabulary,
        embedder: Any = None,
        min_like_score: float = MIN_LIKE_SCORE,
        question_model: CaseQuestionModel | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        self.cases = list(cases)
        self.vocabulary = vocabulary
        self.embedder = embedder  # anything with .encode(list[str]) -> unit vectors; None = tags only
        self.min_like_score = min_like_score
        self._similarity = CaseSimilarity(self.cases, embedder, cache_dir)
        self._reader = QuestionReader(vocabulary, self.cases, embedder, question_model, cache_dir)
        self._anchors: tuple[str, Anchors] | None = None

    def warm(self) -> None:
        """Embed what questions across cases and "cases like mine" compare with (the profiles and
        the vocabulary's values), so the first such question does not: ~7 s with the ONNX encoder
        on 2 cores when not yet kept in the data folder."""
        if self.embedder is not None:
            self._similarity.profile_vectors()
            self._reader.warm()

    @classmethod
    def load(
        cls,
        corpus_dir: Path,
        embedder: Any = None,
        question_model: CaseQuestionModel | None = None,
        cache_dir: Path | None = None,
    ) -> CaseCatalogue:
        """Read and validate `corpus/case_studies.yaml` (CatalogueError if it is broken).

        Questions are read as across cases only with an embedder and the fitted question model."""
        cases, vocabulary = load_catalogue(corpus_dir)
        return cls(cases, vocabulary, embedder, question_model=question_model, cache_dir=cache_dir)

    def __len__(self) -> int:
        return len(self.cases)

    def get(self, name: str) -> CaseStudy | None:
        """A case by its name or one of its aliases (case-insensitive)."""
        key = name.strip().lower()
        return next((c for c in self.cases if key in {c.name.lower(), *(a.lower() for a in c.aliases)}), None)

    def filter(
        self, *, source: str | Iterable[str] | None = None, **tags: str | Iterable[str]
    ) -> list[CaseStudy]:
        """The cases having every given tag, e.g. `filter(setting="primary care", mechanism=["tariff or payment"])`.

        A list of values for one field means all of them; `source` restricts to reports.
        """
        return filter_cases(self.cases, self.vocabulary, source, tags)

    def like(
        self,
        text: str = "",
        k: int = 5,
        tags: dict[str, Iterable[str]] | None = None,
        cases: list[CaseStudy] | None = None,
        margin: float | None = LIKE_MARGIN,
    ) -> list[CaseMatch]:
        """The cases most like a description (and/or picked tags), best first; [] if none is.

        At most `k`, each scoring at least the minimum score and within `margin` of the best
        (None: no margin), so the ranking stops where similarity falls off.
        """
        pool = self.cases if cases is None else cases
        return rank_like(
            pool, self.vocabulary, self._similarity, text, k, tags, margin, min_score=self.min_like_score
        )

    @property
    def reader(self) -> QuestionReader:
        """How questions are read as across cases (its model and the embedded vocabulary)."""
        return self._reader

    def read(self, question: str, vector: Any = None) -> CaseQuery | None:
        """What a question across cases asks, or None when it is not one (read by meaning)."""
        return self._reader.read(question, vector)

    def reading(self, question: str, vector: Any = None) -> Reading:
        """How a question was read: the model's probabilities, the conditions found, the query."""
        return self._reader.reading(question, vector)

    def matching(self, query: CaseQuery, cases: list[CaseStudy] | None = None) -> list[CaseStudy]:
        """The cases a list/count query selects."""
        return matching(query, self.cases if cases is None else cases)

    def answer(
        self, question: str, index: IndexView, filters: Filters | None = None, vector: Any = None
    ) -> Answer | None:
        """A cited list or table answering a question across cases, or None for other questions.

        Citations point at the chunks of `index` (the published generation) holding each quote;
        `vector` is the question's embedding when the caller has it already.
        """
        return self.answer_reading(question, self.reading(question, vector), index, filters)

    def answer_reading(
        self, question: str, reading: Reading, index: IndexView, filters: Filters | None = None
    ) -> Answer | None:
        """`answer` for a question already read (`reading`), or None when it is not across cases."""
        query = reading.query
        if query is None:
            return None
        answer = self._answer(question, query, index, filters)
        if answer is not None:
            answer = replace(answer, analysis={**(answer.analysis or {}), "catalogue": reading.to_record()})
        return answer

    def _answer(
        self, question: str, query: CaseQuery, index: IndexView, filters: Filters | None
    ) -> Answer | None:
        if query.kind == "like":
            return self.like_answer(query.text, index, filters, question=question)
        pool = [c for c in self.cases if allowed(c, filters)]
        if not pool:
            return None
        if query.kind == "compare":
            chosen = [c for c in pool if c.name in query.names]
            if len(chosen) < 2:
                return None
            return compare_answer(question, self.anchors(index), chosen)
        return list_answer(question, self.anchors(index), query, pool, self.matching(query, pool))

    def like_answer(
        self, situation: str, index: IndexView, filters: Filters | None = None, question: str = ""
    ) -> Answer:
        """The case studies most like a described situation, each with why, how it spread and
        where it differs, cited; a refusal when none is like it."""
        pool = [c for c in self.cases if allowed(c, filters)]
        anchors = self.anchors(index)
        matches = self.like(situation, k=5, cases=pool) if pool else []
        wanted = self.vocabulary.parse_all(situation) if matches else {}
        return like_answer(question or situation, anchors, matches, wanted)

    def anchors(self, index: IndexView) -> Anchors:
        """(case name, quote) -> the indexed chunk holding the quote, cached per index generation."""
        if self._anchors is not None and self._anchors[0] == index.generation:
            return self._anchors[1]
        anchors = anchor_quotes(self.cases, list(index.chunks))
        self._anchors = (index.generation, anchors)
        return anchors


def anchor_quotes(cases: list[CaseStudy], chunks: list[Chunk]) -> Anchors:
    """(case name, quote) -> the chunk of that case study (or, failing that, report) holding it."""
    by_source: dict[str, list[tuple[Chunk, str]]] = {}
    for chunk in chunks:
        by_source.setdefault(chunk.source, []).append((chunk, normalise_space(chunk.text)))
    anchors: Anchors = {}
    for case in cases:
        candidates = by_source.get(case.source, [])
        own = [c for c in candidates if c[0].case_study == case.name]
        for e in case.evidence:
            hit = next((c for c, t in own if e.quote in t), None) or next(
                (c for c, t in candidates if e.quote in t), None
            )
            if hit is not None:
                anchors[(case.name, e.quote)] = hit
    return anchors


class CatalogueLoader:
    """Loads the catalogue and keeps serving the last good one when a reload finds it broken."""

    def __init__(
        self,
        corpus_dir: Path,
        embedder: Any = None,
        question_model: Path | None = MODEL_FILE,
        cache_dir: Path | None = None,
    ) -> None:
        self.corpus_dir = Path(corpus_dir)
        self.cache_dir = cache_dir  # the data folder: vectors of fixed texts are kept there
        self.embedder = embedder
        self.question_model = question_model
        self.current: CaseCatalogue | None = None
        self.error: str | None = None

    def reload(self) -> CaseCatalogue | None:
        """Read the catalogue again; on error log it, remember it and keep the previous one."""
        if not (self.corpus_dir / CATALOGUE_NAME).exists():
            self.error = None
            return self.current
        try:
            model = (
                load_model(self.question_model) if self.embedder is not None and self.question_model else None
            )
            self.current = CaseCatalogue.load(self.corpus_dir, self.embedder, model, self.cache_dir)
            self.error = None
        except CatalogueError as exc:
            self.error = str(exc)
            kept = "the previous catalogue keeps serving" if self.current else "no catalogue is served"
            log.error("case-study catalogue not loaded (%s): %s", kept, exc)
        return self.current
