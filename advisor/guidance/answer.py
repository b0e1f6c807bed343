"""Answering an advice question from the guidance map: the theme's points that bear on it, cited.

`GuidanceAnswerer.answer` returns None (the passages answer) unless the route model says the map
fits the question. Otherwise the answer is:

- a heading: the closest theme's statement (what the reports advise), resting on the rows;
- up to `max_points` of that theme's points, closest to the question first (preferring points
  for the audience and stage the question names), each its plain paraphrase cited by the
  verbatim quote in the indexed chunk that holds it;
- one illustrating case study: the closest point of the theme that comes from a case.

A point whose quote no indexed chunk holds is never shown.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from advisor.guidance.holder import Guidance
from advisor.guidance.matching import (
    MODEL_FILE,
    GuidanceMatch,
    GuidanceMatcher,
    RouteModel,
    ScoredPoint,
    load_route_model,
)
from advisor.guidance.model import GuidanceMap, GuidancePoint
from advisor.text import normalise_space
from advisor.types import Answer, AnswerSentence, CaseRow, Chunk, Citation, Filters, Passage

log = logging.getLogger(__name__)

MAX_POINTS = 4
NOTE = "Answered from the guidance map: what the reports advise on this theme, each point quoted."


@dataclass(frozen=True)
class Routed:
    """What the route decision saw: the match, the probability and whether the map answers."""

    match: GuidanceMatch
    probability: float
    routed: bool

    def to_record(self) -> dict[str, Any]:
        return {**self.match.to_record(), "probability": round(self.probability, 4), "routed": self.routed}


class GuidanceAnswerer:
    """The served guidance map, its embedded points, the route decision and cited answers."""

    def __init__(
        self,
        guidance: Guidance,
        embedder: Any,
        route_model: Path | None = MODEL_FILE,
        max_points: int = MAX_POINTS,
        cache_dir: Path | None = None,
    ) -> None:
        self.guidance = guidance
        self.embedder = embedder
        self.cache_dir = cache_dir  # where the map's vectors are kept (advisor.vector_cache)
        self.route_model_path = route_model
        self.route: RouteModel | None = None
        self.max_points = max_points
        self._matcher: tuple[GuidanceMap, GuidanceMatcher] | None = None
        self._anchors: tuple[str, GuidanceMap, dict[tuple[str, str], Chunk]] | None = None

    def reload(self) -> GuidanceMap | None:
        """Read the map again (the last good one keeps serving) and the route model."""
        current = self.guidance.reload()
        self.route = load_route_model(self.route_model_path) if self.route_model_path else None
        return current

    @property
    def matcher(self) -> GuidanceMatcher | None:
        current = self.guidance.current
        if current is None:
            return None
        if self._matcher is None or self._matcher[0] is not current:
            self._matcher = (current, GuidanceMatcher(current, self.embedder, self.cache_dir))
        return self._matcher[1]

    def warm(self) -> None:
        """Embed the map's points, themes and sides now (at ingest), not in the first question."""
        matcher = self.matcher
        if matcher is not None:
            matcher.warm()

    def match(self, vector: np.ndarray, advice_probability: float = 0.0) -> GuidanceMatch | None:
        matcher = self.matcher
        return None if matcher is None else matcher.match(vector, advice_probability)

    def decide(self, vector: np.ndarray, advice_probability: float = 0.0) -> Routed | None:
        """The match and the route decision (None when no map is served)."""
        match = self.match(vector, advice_probability)
        if match is None:
            return None
        if self.route is None:
            return Routed(match, 0.0, False)
        probability = self.route.probability(match.features)
        return Routed(match, probability, probability >= self.route.threshold)

    def answer(
        self,
        question: str,
        vector: np.ndarray,
        index: Any,
        filters: Filters | None = None,
        advice_probability: float = 0.0,
        force: bool = False,
        routed: Routed | None = None,
    ) -> Answer | None:
        """A cited answer from the map when the route decision says it fits (or `force`), else None.

        `routed`, a decision already taken for this vector, is used instead of deciding again."""
        if filters is not None and filters.case_studies:
            return None  # a question about chosen case studies: their passages answer it
        routed = routed or self.decide(vector, advice_probability)
        if routed is None or not (routed.routed or force):
            return None
        anchors = self.anchors(index)
        allowed = set(filters.sources) if filters is not None and filters.sources else None
        return compose(question, routed, anchors, self.max_points, allowed)

    def about(
        self, text: str, vector: np.ndarray, index: Any, advice_probability: float = 0.0
    ) -> Answer | None:
        """What the map says on a theme named by id or title, or else on the theme closest to
        the text (whatever the route decision): `/advisor guidance <theme or question>`."""
        current = self.guidance.current
        if current is None:
            return None
        named = current.theme(text)
        match = self.match(vector, advice_probability)
        if match is None:
            return None
        if named is not None:
            # the named theme first, its points ranked by closeness to the text
            themes = ((named, 1.0), *((t, s) for t, s in match.themes if t is not named))
            match = replace(match, themes=themes)
        return compose(text, Routed(match, 1.0, True), self.anchors(index), self.max_points)

    def anchors(self, index: Any) -> dict[tuple[str, str], Chunk]:
        """(source, quote) -> the indexed chunk holding the quote, per index generation and map."""
        current = self.guidance.current
        if self._anchors is not None and self._anchors[0] == index.generation and self._anchors[1] is current:
            return self._anchors[2]
        anchors = anchor_points(current.points if current else (), list(index.chunks))
        self._anchors = (index.generation, current, anchors)
        return anchors


def anchor_points(points, chunks: list[Chunk]) -> dict[tuple[str, str], Chunk]:
    """(source, quote) -> the chunk of that report holding the quote (white space folded)."""
    by_source: dict[str, list[tuple[Chunk, str]]] = {}
    for chunk in chunks:
        by_source.setdefault(chunk.source, []).append((chunk, normalise_space(chunk.text)))
    anchors = {}
    for p in points:
        quote = normalise_space(p.quote)
        hit = next((c for c, t in by_source.get(p.source, []) if quote in t), None)
        if hit is not None:
            anchors[(p.source, p.quote)] = hit
    return anchors


def compose(
    question: str,
    routed: Routed,
    anchors: dict[tuple[str, str], Chunk],
    max_points: int = MAX_POINTS,
    sources: set[str] | None = None,
) -> Answer | None:
    """The closest theme's statement over its closest cited points and one illustrating case."""
    match = routed.match
    theme = match.themes[0][0]

    def usable(s: ScoredPoint) -> bool:
        return (s.point.source, s.point.quote) in anchors and (sources is None or s.point.source in sources)

    own = [s for s in match.points if s.theme is theme and usable(s)]
    chosen: list[ScoredPoint] = []
    for s in own:
        if len(chosen) >= max_points:
            break
        if any(s.point.quote == c.point.quote for c in chosen):
            continue
        chosen.append(s)
    if not chosen:
        return None
    example = None
    if not any(s.point.cases for s in chosen):
        example = next((s for s in own if s.point.cases and s not in chosen), None)
    citations: list[Citation] = []
    passages: dict[str, Passage] = {}

    def cite(point: GuidancePoint, score: float) -> int:
        chunk = anchors[(point.source, point.quote)]
        for c in citations:
            if c.passage.chunk.id == chunk.id and c.quote == point.quote:
                return c.marker
        if chunk.id not in passages:
            passages[chunk.id] = Passage(chunk, score, len(passages) + 1)
        citations.append(Citation(len(citations) + 1, passages[chunk.id], point.quote))
        return len(citations)

    rows: list[CaseRow] = []
    sentences: list[AnswerSentence] = []
    lines: list[str] = []
    for s in chosen:
        marker = cite(s.point, s.score)
        label = s.point.cases[0] if s.point.cases else ""
        sentences.append(AnswerSentence(s.point.point, (marker,), "supported", label=label))
        rows.append(CaseRow(label, s.point.point, (marker,)))
        lines.append(f"- {s.point.point} [{marker}]")
    if example is not None:
        marker = cite(example.point, example.score)
        case = example.point.cases[0]
        text = f"For example, {case}: {example.point.point}"
        sentences.append(AnswerSentence(text, (marker,), "supported", label=case))
        rows.append(CaseRow(case, text, (marker,)))
        lines.append(f"- {text} [{marker}]")
    heading = f"What the reports advise ({theme.title}): {theme.statement}"
    every = tuple(c.marker for c in citations)
    return Answer(
        question=question,
        text="\n".join([heading, *lines]),
        citations=tuple(citations),
        passages=tuple(passages.values()),
        refused=False,
        query=question,
        sentences=(AnswerSentence(heading, every, "supported"), *sentences),
        notes=(NOTE,),
        route="guidance",
        heading=heading,
        rows=tuple(rows),
        analysis={"guidance": {**routed.to_record(), "theme": theme.id}},
    )
