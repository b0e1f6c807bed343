"""The map covers the reports' advice passages; the corpus's own guidance files are not reports."""

from __future__ import annotations

from advisor.corpus import discover_files
from advisor.guidance.coverage import ADVICE_SECTIONS, coverage
from tests.conftest import CORPUS

# measured on this map: 358 of 440 advice paragraphs quoted (the rest are introductions,
# summaries and lead-ins, case descriptions, a footnote, or repeat advice quoted elsewhere)
MIN_COVERED = 0.81


def test_every_advice_section_is_found_and_mostly_quoted(guidance_map):
    result = coverage(CORPUS, guidance_map)
    sections = {(p.source, p.section) for p in result.paragraphs}
    assert sections == {(s, name) for s, listed in ADVICE_SECTIONS.items() for name, _ in listed}
    assert result.covered / len(result.paragraphs) >= MIN_COVERED
    assert all(p.text for p in result.missing)


def test_guidance_files_are_not_offered_to_ingest_as_reports():
    names = {p.name for p in discover_files([CORPUS])}
    assert "GUIDANCE.md" not in names and "guidance.yaml" not in names
    assert "nuffield-2020-achieving-scale-and-spread.txt" in names
