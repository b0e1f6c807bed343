"""Which advice passages of the reports the guidance map quotes, and which it leaves out.

The reports' lessons, insights, implications, recommendations and key-findings sections are
listed below (`ADVICE_SECTIONS`, each a heading path and the line of its last heading). Their
paragraphs are the blocks the ingest's cleaner reads (headings and fragments of fewer than
`MIN_WORDS` words left out); a paragraph is covered when some point's quote lies on one of
its lines. Run `python -m advisor.guidance.coverage` to see the uncovered paragraphs, and add
a point for each that gives advice (see corpus/GUIDANCE.md).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from advisor.cases.loading import CaseText
from advisor.cleaning import clean_blocks
from advisor.corpus import Manifest
from advisor.guidance.loading import catalogue_case_names, load_guidance, read_yaml
from advisor.guidance.model import GUIDANCE_NAME, GuidanceMap
from advisor.guidance.outline import ReportOutline
from advisor.guidance.schema import parse_guidance
from advisor.text import normalise_space

MIN_WORDS = 8

NUFFIELD = "nuffield-2020-achieving-scale-and-spread.txt"
ODDS = "against-the-odds-2018-report.txt"
RELEASE = "against-the-odds-2018-news-release.txt"
HIN = "hin-south-london-2025-technology-enabled-service-change.txt"
CONFED = "nhs-confederation-2023-scaling-innovation.txt"
_ODDS_CASES = "The case studies > {}. The spread of {} > Key insights"
_ODDS_CONDITIONS = (
    "Against the odds: insights from the case studies > Creating the conditions for scale and spread > {}"
)

# report -> (section path, line of its last heading): the passages the map must cover
ADVICE_SECTIONS: dict[str, list[tuple[str, int]]] = {
    NUFFIELD: [
        ("Summary", 1),
        ("Discussion", 2093),
        ("Figure 8: Examples of key considerations for innovators to achieve scale and spread", 2391),
        *(
            (f"Appendix 2: Innovator case studies > {case} > Key insights for scale and spread:", line)
            for case, line in (
                ("KardiaMobile", 2789),
                ("Patients Know Best", 3087),
                ("Schwartz Rounds", 3259),
                ("Enhanced Recovery After Surgery Plus (ERAS+)", 3639),
                ("Next Generation Electronic Patient Record", 3868),
                ("OBH Outcomes Platform", 4152),
                ("Lantum", 4451),
                ("myCOPD", 4928),
            )
        ),
    ],
    ODDS: [
        ("Executive summary", 288),
        ("Against the odds: insights from the case studies", 1290),
        *(
            (_ODDS_CONDITIONS.format(name), line)
            for name, line in (
                ("5. Capitalising on national and local system priorities", 1714),
                ("6. Using policy and financial levers to kick start momentum", 1773),
                ("7. Commissioning for sustainable spread", 1832),
                ("8. External funding to support spread", 1899),
            )
        ),
        ("From insights to practice", 1951),
        *(
            (_ODDS_CASES.format(n, name), line)
            for n, name, line in (
                (1, "Altogether Better Health Champions and Collaborative Practice", 2206),
                (2, "Dose Adjustment for Normal Eating (DAFNE)", 2520),
                (3, "Enhanced Recovery After Surgery (ERAS)", 2769),
                (4, "Florence (Flo)", 3133),
                (5, "high sensitivity troponin testing", 3439),
                (6, "Implantable Cardioverter-Defibrillators (ICDs)", 3816),
                (7, "Improving Access to Psychological Therapies (IAPT)", 4144),
                (8, "Macmillan Cancer Nurse Specialists", 4378),
                (9, "Rapid Assessment Interface and Discharge (RAID)", 4642),
                (10, "Schwartz Rounds (UK)", 4999),
            )
        ),
    ],
    RELEASE: [("Against the Odds: Successfully scaling innovation in the NHS", 1)],
    HIN: [
        ("Executive Summary", 69),
        ("Building bridges for sustainable change", 195),
        ("From insight to action", 379),
        ("Achieving balance in implementation", 386),
        ("Accelerating spread", 494),
        ("Working together to make it happen", 693),
        ("Case study > Ambient Voice Technology (AVT) in London", 712),
    ],
    CONFED: [
        ("Innovation adoption: three core pillars", 22),
        ("The role of innovators and system decision-makers", 40),
    ],
}


@dataclass(frozen=True)
class Paragraph:
    """One paragraph of an advice section and whether a point quotes it."""

    source: str
    section: str
    line: int  # first line (1-based)
    end_line: int
    text: str
    covered: bool


@dataclass(frozen=True)
class Coverage:
    paragraphs: tuple[Paragraph, ...]

    @property
    def covered(self) -> int:
        return sum(p.covered for p in self.paragraphs)

    @property
    def missing(self) -> list[Paragraph]:
        return [p for p in self.paragraphs if not p.covered]


def coverage(corpus_dir: Path, guidance: GuidanceMap | None = None) -> Coverage:
    """Every paragraph of the advice sections, marked covered or not by the map's quotes."""
    corpus_dir = Path(corpus_dir)
    path = corpus_dir / GUIDANCE_NAME
    if guidance is None:
        guidance = load_guidance(path, corpus_dir, catalogue_case_names(corpus_dir))
    boundaries = parse_guidance(read_yaml(path), path.name).boundaries
    manifest = Manifest.load(corpus_dir)
    paragraphs: list[Paragraph] = []
    for source, sections in ADVICE_SECTIONS.items():
        outline = ReportOutline.read(corpus_dir / source)
        points = [p for p in guidance.points if p.source == source]
        known = {outline.headings(p.section, p.line) for p in points}
        known |= {outline.headings(b.section, b.line) for b in boundaries.get(source, [])}
        known |= {outline.headings(s, line) for s, line in sections}
        known.discard(None)
        quoted = _quoted_lines(outline, [(p.quote, p.line) for p in points])
        blocks = clean_blocks("\n".join(outline.raw_lines), manifest.running_headers_for(source))
        for section, line in sections:
            headings = outline.headings(section, line)
            if headings is None:
                raise ValueError(f"{source}: advice section {section!r} not found at line {line}")
            span = outline.span(headings, known)
            for block in blocks:
                first, last = block.line + 1, block.end_line + 1
                if block.kind == "heading" or not span.first < first < span.end:
                    continue
                if len(block.text.split()) < MIN_WORDS:
                    continue
                covered = any(first <= n <= last for n in quoted)
                paragraphs.append(Paragraph(source, section, first, last, block.text, covered))
    return Coverage(tuple(paragraphs))


def _quoted_lines(outline: ReportOutline, quotes: list[tuple[str, int]]) -> set[int]:
    """Every report line that a quote (found where it starts on its line) lies on."""
    text = CaseText(outline.raw_lines, 0, len(outline.raw_lines))
    lines: set[int] = set()
    for quote, line in quotes:
        wanted = normalise_space(quote)
        at = text.text.find(wanted)
        while at >= 0 and text.lines[at] != line:
            at = text.text.find(wanted, at + 1)
        if at >= 0:
            lines.update(range(line, text.lines[at + len(wanted) - 1] + 1))
    return lines


def main(argv: list[str] | None = None) -> None:
    """Print the coverage of every advice section and the paragraphs no point quotes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path("corpus"))
    parser.add_argument("--all", action="store_true", help="also list the covered paragraphs")
    args = parser.parse_args(argv)
    result = coverage(args.corpus)
    current = None
    for p in result.paragraphs:
        if (p.source, p.section) != current:
            current = (p.source, p.section)
            mine = [q for q in result.paragraphs if (q.source, q.section) == current]
            print(f"\n{p.source} | {p.section}: {sum(q.covered for q in mine)} of {len(mine)} covered")
        if args.all or not p.covered:
            mark = "  ok " if p.covered else "  -- "
            print(f"{mark}line {p.line}-{p.end_line}: {p.text[:150]}")
    total = len(result.paragraphs)
    print(
        f"\n{result.covered} of {total} advice paragraphs quoted by a point ({result.covered / total:.0%})."
    )


if __name__ == "__main__":
    main()
