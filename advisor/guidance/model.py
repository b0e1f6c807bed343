"""The guidance map's data: a point of advice with its quote, a theme of points, the whole map.

Every point is a verbatim quote from a report with where it is (report, section, line), a plain
paraphrase, who it is for and at what stage of spread. A theme groups the points that give the
same piece of advice, states it in a sentence or three, and names the case studies that show it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from advisor.errors import GuidanceError

GUIDANCE_NAME = "guidance.yaml"

AUDIENCES = ("innovators", "adopters", "commissioners", "policy-makers")
STAGES = ("before-pilot", "pilot-to-early-adoption", "scaling", "sustaining")


@dataclass(frozen=True)
class GuidancePoint:
    """One piece of advice: the report's words, where they are, and a plain paraphrase."""

    quote: str  # verbatim, white space normalised
    source: str  # corpus file name
    section: str  # heading path, "Summary > Key themes > Adapting and evolving"
    line: int  # 1-based line of the report where the quote starts
    point: str  # the advice in plain words
    audiences: tuple[str, ...]
    stages: tuple[str, ...]
    cases: tuple[str, ...] = ()  # catalogue case names the quote comes from or is about

    def to_json(self) -> dict[str, Any]:
        return {
            "quote": self.quote,
            "source": self.source,
            "section": self.section,
            "line": self.line,
            "point": self.point,
            "audiences": list(self.audiences),
            "stages": list(self.stages),
            "cases": list(self.cases),
        }

    def concerns(self, audience: str | None = None, stage: str | None = None) -> bool:
        """Whether the point is for this audience and stage (None: any)."""
        return (audience is None or audience in self.audiences) and (stage is None or stage in self.stages)


@dataclass(frozen=True)
class Theme:
    """A piece of advice the reports give, with the quoted points behind it."""

    id: str
    title: str
    statement: str  # what the reports advise, in one to three sentences
    audiences: tuple[str, ...]
    stages: tuple[str, ...]
    points: tuple[GuidancePoint, ...]
    synonyms: tuple[str, ...] = ()  # everyday words for the topic
    cases: tuple[str, ...] = ()  # case studies that illustrate it

    def named(self, key: str) -> bool:
        """Whether `key` is this theme's id or title (case-insensitive)."""
        key = key.strip().lower()
        return key in {self.id.lower(), self.title.lower()}

    def narrowed(self, audience: str | None = None, stage: str | None = None) -> Theme | None:
        """The theme with only its points for this audience and stage; None if it has none."""
        if audience is None and stage is None:
            return self
        points = tuple(p for p in self.points if p.concerns(audience, stage))
        return replace(self, points=points) if points else None

    def to_json(self) -> dict[str, Any]:
        """The JSON shape of `advisor guidance --json` (one element of its list)."""
        return {
            "theme": self.id,
            "title": self.title,
            "statement": self.statement,
            "audiences": list(self.audiences),
            "stages": list(self.stages),
            "points": [p.to_json() for p in self.points],
            "cases": list(self.cases),
        }


@dataclass(frozen=True)
class GuidanceMap:
    """Every theme of the map, in file order."""

    themes: tuple[Theme, ...]

    def __len__(self) -> int:
        return len(self.themes)

    @property
    def points(self) -> tuple[GuidancePoint, ...]:
        return tuple(p for t in self.themes for p in t.points)

    def theme(self, key: str) -> Theme | None:
        """A theme by its id or title (case-insensitive), or None."""
        return next((t for t in self.themes if t.named(key)), None)

    def filtered(
        self, audience: str | None = None, stage: str | None = None, theme: str | None = None
    ) -> list[Theme]:
        """The themes (each with only its matching points) for an audience, a stage and/or a theme.

        GuidanceError, naming the valid values, for an unknown audience, stage or theme.
        """
        if audience is not None and audience not in AUDIENCES:
            raise GuidanceError(f"unknown audience {audience!r}; choose one of: {', '.join(AUDIENCES)}")
        if stage is not None and stage not in STAGES:
            raise GuidanceError(f"unknown stage {stage!r}; choose one of: {', '.join(STAGES)}")
        pool = list(self.themes)
        if theme is not None:
            chosen = self.theme(theme)
            if chosen is None:
                raise GuidanceError(
                    f"unknown theme {theme!r}; the themes are: {', '.join(t.id for t in self.themes)}"
                )
            pool = [chosen]
        narrowed = (t.narrowed(audience, stage) for t in pool)
        return [t for t in narrowed if t is not None]
