"""Reading the guidance map: the YAML through `schema`, then every quote against its report.

A quote must lie inside its section (as `outline` finds it from the point's line), matched
with white space normalised and markdown links read as their text, exactly as the case
catalogue matches its quotes, and must start on the point's `line`. Every case a theme or
point names must be a case of the catalogue (an alias is answered with the catalogue's
spelling). All problems are gathered and raised together in one `GuidanceError`, each
located by theme and point.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from advisor.cases.model import CATALOGUE_NAME
from advisor.cases.schema import parse_catalogue
from advisor.errors import CatalogueError, GuidanceError
from advisor.guidance.model import AUDIENCES, STAGES, GuidanceMap, GuidancePoint, Theme
from advisor.guidance.outline import ReportOutline, Span
from advisor.guidance.schema import (
    GuidanceFile,
    PointEntry,
    parse_guidance,
    point_location,
    theme_location,
)
from advisor.text import normalise_space
from advisor.yamlfile import safe_load

CaseNames = Mapping[str, Iterable[str]]  # catalogue name -> its aliases


def read_yaml(path: Path) -> Any:
    """A YAML file's data; GuidanceError if it is missing or not YAML."""
    try:
        return safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GuidanceError(f"{path} does not exist") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise GuidanceError(f"{Path(path).name} is not valid YAML: {exc}") from exc


def catalogue_case_names(corpus_dir: Path) -> dict[str, tuple[str, ...]]:
    """The case studies of corpus/case_studies.yaml with their aliases (shape checked only)."""
    path = Path(corpus_dir) / CATALOGUE_NAME
    try:
        entries = parse_catalogue(safe_load(path.read_text(encoding="utf-8")), None, path.name).cases
    except (OSError, yaml.YAMLError, CatalogueError) as exc:
        raise GuidanceError(f"the case names cannot be read from {path.name}: {exc}") from None
    return {e.name: tuple(e.aliases) for e in entries}


def load_guidance(path: Path, corpus_dir: Path, case_names: CaseNames | Iterable[str]) -> GuidanceMap:
    """Read and validate the map against the reports and the catalogue's case names.

    GuidanceError lists every problem, each naming its theme and point.
    """
    path = Path(path)
    parsed = parse_guidance(read_yaml(path), path.name)
    names = _CaseIndex(case_names)
    checker = _QuoteChecker(Path(corpus_dir), parsed)
    problems: list[str] = []
    themes: list[Theme] = []
    for n, entry in enumerate(parsed.themes, start=1):
        where = theme_location(path.name, n, entry.id)
        problems += [f"{where}: {p}" for p in names.problems(entry.cases)]
        points = []
        for m, item in enumerate(entry.points, start=1):
            at = point_location(where, m, item.source, item.line)
            found = checker.problems(item)
            found += names.problems(item.cases)
            problems += [f"{at}: {p}" for p in found]
            points.append(_point(item))
        themes.append(
            Theme(
                id=entry.id,
                title=entry.title,
                statement=normalise_space(entry.statement),
                audiences=_ordered(entry.audiences, AUDIENCES),
                stages=_ordered(entry.stages, STAGES),
                points=tuple(points),
                synonyms=tuple(entry.synonyms),
                cases=tuple(entry.cases),
            )
        )
    problems += checker.boundary_problems(path.name)
    if problems:
        raise GuidanceError("\n".join(dict.fromkeys(problems)))
    return GuidanceMap(tuple(themes))


def _point(item: PointEntry) -> GuidancePoint:
    return GuidancePoint(
        quote=normalise_space(item.quote),
        source=item.source,
        section=item.section,
        line=item.line,
        point=normalise_space(item.point),
        audiences=_ordered(item.audiences, AUDIENCES),
        stages=_ordered(item.stages, STAGES),
        cases=tuple(item.cases),
    )


def _ordered(values: Iterable[str], order: tuple[str, ...]) -> tuple[str, ...]:
    chosen = set(values)
    return tuple(v for v in order if v in chosen)


class _QuoteChecker:
    """Every report the map quotes, its known sections located, and each point's quote checked."""

    def __init__(self, corpus_dir: Path, parsed: GuidanceFile) -> None:
        self.corpus_dir = corpus_dir
        self.outlines: dict[str, ReportOutline | None] = {}
        self.known: dict[str, set[tuple[int, ...]]] = {}
        self.boundaries = parsed.boundaries
        sections = [(p.source, p.section, p.line) for t in parsed.themes for p in t.points]
        sections += [(source, b.section, b.line) for source, bs in parsed.boundaries.items() for b in bs]
        for source, section, line in sections:
            outline = self.outline(source)
            headings = outline.headings(section, line) if outline else None
            if headings is not None:
                self.known.setdefault(source, set()).add(headings)

    def outline(self, source: str) -> ReportOutline | None:
        if source not in self.outlines:
            file = self.corpus_dir / source
            self.outlines[source] = ReportOutline.read(file) if file.is_file() else None
        return self.outlines[source]

    def span(self, source: str, section: str, line: int) -> Span | None:
        outline = self.outline(source)
        headings = outline.headings(section, line) if outline else None
        return None if headings is None else outline.span(headings, self.known.get(source, ()))

    def problems(self, item: PointEntry) -> list[str]:
        """What is wrong with a point's source, section, quote or line ([] if nothing)."""
        outline = self.outline(item.source)
        if outline is None:
            return [f"'source': {item.source!r} is not a file in {self.corpus_dir}"]
        span = self.span(item.source, item.section, item.line)
        if span is None:
            missing = outline.missing_heading(item.section, item.line)
            where = f"line {item.line} of {item.source}"
            return [f"'section': heading {missing!r} of {item.section!r} not found at or above {where}"]
        starts = _starts(outline.text(span), item.quote)
        if not starts:
            lines = f"lines {span.first}-{span.end - 1}"
            return [
                f"quote not found in section {item.section!r} of {item.source} ({lines}): {item.quote[:80]!r}"
            ]
        if item.line not in starts:
            return [f"'line' is {item.line} but the quote starts on line {starts[0]} of {item.source}"]
        return []

    def boundary_problems(self, file_name: str) -> list[str]:
        """A boundary whose report or heading is not found."""
        problems = []
        for source, entries in self.boundaries.items():
            outline = self.outline(source)
            for b in entries:
                if outline is None:
                    problems.append(f"{file_name}: boundaries: {source!r} is not a file in {self.corpus_dir}")
                elif outline.headings(b.section, b.line) is None:
                    problems.append(
                        f"{file_name}: boundaries of {source}: heading "
                        f"{outline.missing_heading(b.section, b.line)!r} not found at or above line {b.line}"
                    )
        return problems


def _starts(text, quote: str) -> list[int]:
    """The report line of every place the quote starts in a section's text."""
    wanted = normalise_space(quote)
    starts, at = [], text.text.find(wanted)
    while at >= 0:
        starts.append(text.lines[at])
        at = text.text.find(wanted, at + 1)
    return starts


class _CaseIndex:
    """The catalogue's case names and aliases, for naming an unknown case."""

    def __init__(self, case_names: CaseNames | Iterable[str]) -> None:
        if isinstance(case_names, Mapping):
            self.names = tuple(case_names)
            aliases = {name: tuple(case_names[name]) for name in self.names}
        else:
            self.names = tuple(case_names)
            aliases = {}
        self.by_alias: dict[str, list[str]] = {}
        for name, others in aliases.items():
            for alias in (name, *others):
                self.by_alias.setdefault(alias.lower(), []).append(name)

    def problems(self, cases: Iterable[str]) -> list[str]:
        return [self._unknown(c) for c in cases if c not in self.names]

    def _unknown(self, case: str) -> str:
        meant = list(dict.fromkeys(self.by_alias.get(case.lower(), [])))
        if len(meant) == 1:
            return f"unknown case {case!r}; the catalogue calls it {meant[0]!r}"
        if meant:
            return f"unknown case {case!r}; it may mean any of {', '.join(map(repr, meant))}: use one of these names"
        close = difflib.get_close_matches(case, self.names, n=1, cutoff=0.75)
        if close:
            return f"unknown case {case!r}; did you mean {close[0]!r}?"
        return f"unknown case {case!r}; the catalogue's cases are: {', '.join(self.names)}"
