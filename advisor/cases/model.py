"""The catalogue's data: its fields, a case study with its evidence, a vocabulary term, a match, a query."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CATALOGUE_NAME = "case_studies.yaml"
VOCABULARY_NAME = "case_studies_vocabulary.yaml"

TAG_FIELDS = ("innovation_type", "setting", "organisation_type", "mechanism", "evidence_type", "barrier")
TEXT_FIELDS = ("description", "scale", "lesson")
FIELDS = TEXT_FIELDS + TAG_FIELDS
FIELD_LABELS = {
    "description": "what it is",
    "scale": "scale reached",
    "lesson": "lesson",
    "innovation_type": "innovation type",
    "setting": "setting",
    "organisation_type": "organisation",
    "mechanism": "spread through",
    "evidence_type": "evidence used",
    "barrier": "barrier",
}


@dataclass(frozen=True)
class Evidence:
    """One field value of a case study and the verbatim quote that supports it."""

    field: str
    value: str
    quote: str
    line: int  # 1-based line of the report file where the quote starts
    year: int | None = None  # for `scale`: the year the report gives for the figure

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "field": self.field,
            "value": self.value,
            "quote": self.quote,
            "line": self.line,
        }
        if self.year is not None:
            record["year"] = self.year
        return record


@dataclass(frozen=True)
class CaseStudy:
    """One case study as catalogued: where it is, and every field with its evidence."""

    name: str
    source: str  # corpus file name
    section: str
    evidence: tuple[Evidence, ...]
    aliases: tuple[str, ...] = ()
    title: str = ""  # the report's title
    publisher: str = ""
    year: int | None = None  # the report's year
    lines: tuple[int, int] = (0, 0)  # first and last line of the case study in the report (1-based)

    def values(self, field: str) -> tuple[str, ...]:
        """The distinct values of one field, in catalogue order."""
        return tuple(dict.fromkeys(e.value for e in self.evidence if e.field == field))

    @property
    def tags(self) -> dict[str, tuple[str, ...]]:
        """Every tag field with its values (empty tuple when the report says nothing)."""
        return {f: self.values(f) for f in TAG_FIELDS}

    @property
    def description(self) -> str:
        return next((e.value for e in self.evidence if e.field == "description"), "")

    def evidence_for(self, field: str, value: str | None = None) -> list[Evidence]:
        """The evidence for a field (and value), in catalogue order."""
        return [e for e in self.evidence if e.field == field and (value is None or e.value == value)]

    @property
    def report(self) -> str:
        """A short name of the report: publisher and year."""
        publisher = self.publisher.split("(")[0].strip()
        return f"{publisher} {self.year}" if self.year else publisher or self.source

    def to_record(self) -> dict[str, Any]:
        """The JSON shape of `advisor cases --json`."""
        return {
            "name": self.name,
            "aliases": list(self.aliases),
            "source": self.source,
            "title": self.title,
            "year": self.year,
            "section": self.section,
            "lines": list(self.lines),
            "tags": {f: list(v) for f, v in self.tags.items()},
            "evidence": [e.to_record() for e in self.evidence],
        }


@dataclass(frozen=True)
class Term:
    """One value of a controlled vocabulary and the words that name it."""

    field: str
    value: str
    description: str
    synonyms: tuple[str, ...]
    # words naming the value only when they stand alone (see `Vocabulary.find`)
    generic: tuple[str, ...] = ()


@dataclass(frozen=True)
class CaseMatch:
    """A case study ranked against a "cases like mine" description."""

    case: CaseStudy
    score: float
    reasons: tuple[str, ...]  # why it matched, e.g. "setting: primary care"
    citations: tuple[Evidence, ...]  # the evidence behind the reasons and what it did to spread
    differences: tuple[str, ...] = ()  # where its context differs from the description

    def to_record(self) -> dict[str, Any]:
        return {
            "name": self.case.name,
            "source": self.case.source,
            "section": self.case.section,
            "score": round(self.score, 4),
            "reasons": list(self.reasons),
            "differences": list(self.differences),
            "citations": [{**e.to_record(), "source": self.case.source} for e in self.citations],
        }


@dataclass(frozen=True)
class CaseQuery:
    """What a question across cases asks for."""

    kind: str  # "list" | "count" | "compare" | "like"
    tags: dict[str, frozenset[str]] = field(default_factory=dict)
    names: tuple[str, ...] = ()  # case studies named in the question
    any_of: bool = False  # values within one field joined by "or"
    text: str = ""  # for "like": the user's description
