"""Reading the catalogue: the YAML files through `schema`, then every quote against its report.

A quote must lie inside its case study's part of the report (as `locate_case_studies` finds it
from the manifest), matched with white space normalised (every run of spaces and line breaks is
one space, because the reports are hard-wrapped) and with markdown links read as their text
(`[engagement events](#)` is "engagement events"); nothing else about it may differ. A `line`
given in the catalogue must be the line where the quote starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from advisor.cases.model import CATALOGUE_NAME, VOCABULARY_NAME, CaseStudy, Evidence
from advisor.cases.schema import (
    CaseEntry,
    EvidenceEntry,
    case_location,
    evidence_location,
    parse_catalogue,
    parse_vocabulary,
)
from advisor.cases.vocabulary import Vocabulary
from advisor.chunking import locate_case_studies
from advisor.corpus import Manifest
from advisor.errors import CatalogueError
from advisor.text import normalise_space, strip_md_links
from advisor.yamlfile import safe_load


def read_yaml(path: Path) -> Any:
    """A YAML file's data; CatalogueError if it is missing or not YAML."""
    try:
        return safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CatalogueError(f"{path} does not exist") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise CatalogueError(f"{path.name} is not valid YAML: {exc}") from exc


def load_vocabulary(path: Path) -> Vocabulary:
    """Read the controlled vocabularies; CatalogueError naming the field and value if malformed."""
    return Vocabulary(parse_vocabulary(read_yaml(path), path.name))


class CaseText:
    """A case study's part of a report, white space normalised, with the line of every character."""

    def __init__(self, raw_lines: list[str], first: int, end: int) -> None:
        # Each line's words joined by one space; the space between two lines counts as the
        # second line's, as every character does (str.split and str.isspace agree on spaces).
        parts: list[str] = []
        lines: list[int] = []
        for index in range(first, end):
            words = strip_md_links(raw_lines[index]).split()
            if not words:
                continue
            piece = (" " if parts else "") + " ".join(words)
            parts.append(piece)
            lines.extend([index + 1] * len(piece))
        self.text = "".join(parts)
        self.lines = lines

    def locate(self, quote: str) -> int | None:
        """The 1-based report line where the quote starts, or None if it is not here."""
        at = self.text.find(normalise_space(quote))
        return None if at < 0 else self.lines[at]


def load_catalogue(corpus_dir: Path) -> tuple[list[CaseStudy], Vocabulary]:
    """Read and validate the catalogue against the corpus; CatalogueError names entry and field."""
    corpus_dir = Path(corpus_dir)
    path = corpus_dir / CATALOGUE_NAME
    vocabulary = load_vocabulary(corpus_dir / VOCABULARY_NAME)
    entries = parse_catalogue(read_yaml(path), vocabulary, path.name).cases
    manifest = Manifest.load(corpus_dir)
    texts: dict[str, tuple[list[str], dict[str, tuple[int, int]]]] = {}
    cases: list[CaseStudy] = []
    seen: set[str] = set()
    for n, entry in enumerate(entries, start=1):
        where = case_location(path.name, n, entry.name)
        if entry.name in seen:
            raise CatalogueError(f"{where}: field 'name': {entry.name!r} appears twice")
        seen.add(entry.name)
        if entry.source not in texts:
            texts[entry.source] = _report_text(corpus_dir, entry.source, manifest, where)
        raw_lines, bounds = texts[entry.source]
        if entry.name not in bounds:
            raise CatalogueError(
                f"{where}: field 'name': {entry.source} has no case study {entry.name!r} in the manifest "
                f"(known: {', '.join(sorted(bounds)) or 'none'})"
            )
        first, end = bounds[entry.name]
        cases.append(_case(entry, manifest, CaseText(raw_lines, first, end), (first + 1, end), where))
    return cases, vocabulary


def _report_text(
    corpus_dir: Path, source: str, manifest: Manifest, where: str
) -> tuple[list[str], dict[str, tuple[int, int]]]:
    """A report's lines and where each of its case studies is (first line, end), 0-based."""
    file = corpus_dir / source
    if not file.is_file():
        raise CatalogueError(f"{where}: field 'source': {source!r} is not a file in {corpus_dir}")
    raw_lines = file.read_text(encoding="utf-8").replace("\r\n", "\n").split("\n")
    bounds = {
        spec.name: (start, end)
        for spec, start, end in locate_case_studies(raw_lines, manifest.case_studies_for(source))
    }
    return raw_lines, bounds


def _case(
    entry: CaseEntry, manifest: Manifest, text: CaseText, lines: tuple[int, int], where: str
) -> CaseStudy:
    evidence = tuple(
        _evidence(evidence_location(where, i, item.field), item, text, entry.source, lines)
        for i, item in enumerate(entry.evidence, start=1)
    )
    info = manifest.entries.get(entry.source)
    return CaseStudy(
        name=entry.name,
        source=entry.source,
        section=entry.section,
        evidence=evidence,
        aliases=tuple(entry.aliases),
        title=info.info.title if info else entry.source,
        publisher=info.info.publisher if info else "",
        year=info.info.year if info else None,
        lines=lines,
    )


def _evidence(
    where: str, item: EvidenceEntry, text: CaseText, source: str, lines: tuple[int, int]
) -> Evidence:
    line = text.locate(item.quote)
    if line is None:
        raise CatalogueError(
            f"{where}: quote not found in {source} within the case study "
            f"(lines {lines[0]}-{lines[1]}): {item.quote[:80]!r}"
        )
    if item.line is not None and item.line != line:
        raise CatalogueError(
            f"{where}: 'line' is {item.line} but the quote starts on line {line} of {source}"
        )
    return Evidence(item.field, item.value, normalise_space(item.quote), line, item.year)
