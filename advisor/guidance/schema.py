"""The shape of corpus/guidance.yaml, validated with pydantic.

`parse_guidance` checks what the file alone can tell: every theme's fields, audiences and
stages from the allowed values, quotes of at least `MIN_QUOTE_WORDS` words, theme ids written
once, and a theme's audiences, stages and cases covering those of its points. A failure raises
`GuidanceError` listing every problem, each located by theme and point:
"guidance.yaml, theme 3 ('running-a-good-pilot'), point 2 (hin-...txt line 341): 'audiences'[0]:
unknown audience 'patients'; expected one of innovators, adopters, commissioners, policy-makers".
What needs the reports (is the quote inside its section, on its line) and the catalogue (are
the cases known) is checked by `advisor.guidance.loading`, with the same locations.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    StringConstraints,
    ValidationError,
    model_validator,
)

from advisor.errors import GuidanceError
from advisor.guidance.model import AUDIENCES, STAGES
from advisor.validation import field_problem, message

MIN_QUOTE_WORDS = 3
THEME_ID = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"

Text = Annotated[StrictStr, StringConstraints(strip_whitespace=True, min_length=1)]


def _none_as_empty(value: Any) -> Any:
    return [] if value is None else value


def _one_of(kind: str, allowed: tuple[str, ...]):
    def check(value: str) -> str:
        if value not in allowed:
            raise ValueError(f"unknown {kind} {value!r}; expected one of {', '.join(allowed)}")
        return value

    return check


Audience = Annotated[StrictStr, AfterValidator(_one_of("audience", AUDIENCES))]
Stage = Annotated[StrictStr, AfterValidator(_one_of("stage", STAGES))]
Audiences = Annotated[list[Audience], Field(min_length=1)]
Stages = Annotated[list[Stage], Field(min_length=1)]
Listed = Annotated[list[Text], BeforeValidator(_none_as_empty)]  # a list; empty when left blank


def _long_enough(quote: str) -> str:
    if len(quote.split()) < MIN_QUOTE_WORDS:
        raise ValueError(f"'quote' must be a verbatim passage of {MIN_QUOTE_WORDS}+ words")
    return quote


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PointEntry(_Entry):
    """One point of a theme: a verbatim quote, where it is, and what it advises."""

    source: Text  # corpus file name
    section: Text  # heading path, "Summary > Key themes > Adapting and evolving"
    line: Annotated[StrictInt, Field(ge=1)]
    quote: Annotated[StrictStr, AfterValidator(_long_enough)]
    point: Text
    audiences: Audiences
    stages: Stages
    cases: Listed = []


class ThemeEntry(_Entry):
    """One theme: what the reports advise, for whom, when, and the points behind it."""

    id: Annotated[StrictStr, StringConstraints(pattern=THEME_ID)]
    title: Text
    statement: Text
    audiences: Audiences
    stages: Stages
    points: Annotated[list[PointEntry], Field(min_length=1)]
    synonyms: Listed = []
    cases: Listed = []

    @model_validator(mode="after")
    def _covers_its_points(self) -> ThemeEntry:
        for name, allowed in (("audiences", self.audiences), ("stages", self.stages), ("cases", self.cases)):
            missing = [v for p in self.points for v in getattr(p, name) if v not in allowed]
            if missing:
                raise ValueError(
                    f"'{name}' must include every value its points have; missing: "
                    f"{', '.join(dict.fromkeys(missing))}"
                )
        return self


class BoundaryEntry(_Entry):
    """A heading that ends a section although no point sits under it."""

    section: Text
    line: Annotated[StrictInt, Field(ge=1)]


Boundaries = dict[StrictStr, Annotated[list[BoundaryEntry], BeforeValidator(_none_as_empty)]]


class GuidanceFile(BaseModel):
    """corpus/guidance.yaml."""

    model_config = ConfigDict(extra="ignore", frozen=True)  # `version` and notes are allowed

    themes: Annotated[list[ThemeEntry], Field(min_length=1)]
    boundaries: Annotated[Boundaries, BeforeValidator(lambda v: {} if v is None else v)] = {}

    @model_validator(mode="after")
    def _ids_once(self) -> GuidanceFile:
        seen: set[str] = set()
        for theme in self.themes:
            if theme.id in seen:
                raise ValueError(f"theme id {theme.id!r} appears twice")
            seen.add(theme.id)
        return self


def parse_guidance(data: Any, file_name: str) -> GuidanceFile:
    """The guidance file's themes, validated; GuidanceError listing every problem if not."""
    try:
        return GuidanceFile.model_validate(data)
    except ValidationError as exc:
        problems = [_problem(e, data, file_name) for e in exc.errors()]
        raise GuidanceError("\n".join(dict.fromkeys(problems))) from None


def theme_location(file_name: str, n: int, theme_id: Any) -> str:
    """Where a theme is: "guidance.yaml, theme 3 ('running-a-good-pilot')" (1-based)."""
    return f"{file_name}, theme {n} ({theme_id!r})" if theme_id else f"{file_name}, theme {n}"


def point_location(theme: str, n: int, source: Any, line: Any) -> str:
    """Where a point of a theme is: "..., point 2 (hin-...txt line 341)" (1-based)."""
    if source and line:
        return f"{theme}, point {n} ({source} line {line})"
    return f"{theme}, point {n}"


def _problem(error: Any, data: Any, file_name: str) -> str:
    loc = error["loc"]
    if not isinstance(data, dict):
        return f"{file_name}: expected a mapping with a 'themes:' list"
    if not loc:  # the file as a whole, e.g. a theme id written twice
        return f"{file_name}: {message(error)}"
    if loc[0] == "boundaries":
        return f"{file_name}: boundaries {field_problem(loc[1:], error) if len(loc) > 1 else message(error)}"
    if loc[0] != "themes" or len(loc) < 2:
        return (
            f"{file_name}: {message(error)}"
            if loc[0] != "themes"
            else f"{file_name}: expected a 'themes:' list"
        )
    entry = data["themes"][loc[1]]
    where = theme_location(file_name, loc[1] + 1, entry.get("id") if isinstance(entry, dict) else None)
    rest = loc[2:]
    if not rest:
        if error["type"] == "model_type":
            return f"{where}: expected a mapping with id, title, statement, audiences, stages and points"
        return f"{where}: {message(error)}"
    if rest[0] == "points" and len(rest) > 1:
        item = entry["points"][rest[1]]
        if not isinstance(item, dict):
            return f"{where}, point {rest[1] + 1}: expected a mapping with source, section, line, quote and point"
        where = point_location(where, rest[1] + 1, item.get("source"), item.get("line"))
        rest = rest[2:]
        if not rest:
            return f"{where}: {message(error)}"
    if error["type"] == "extra_forbidden":
        return f"{where}: unknown field {rest[0]!r}"
    return f"{where}: {field_problem(rest, error)}"
