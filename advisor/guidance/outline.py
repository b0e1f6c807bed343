"""Where a section of a report is: heading paths found in the report's lines, and their spans.

A point's `section` is the path of headings above its quote, joined by " > "
("Summary > Key themes > Adapting and evolving"). Each heading is a line of the report, or a
heading wrapped over up to five lines, compared with white space normalised and markdown
links read as their text. The path is read upward from the point's line: its last heading is
the nearest occurrence at or above the line, each heading before it the nearest occurrence
above the one below it (so a contents page or a summary that repeats a heading further up
does not capture it).

A section runs from its last heading to the next heading that the map knows for the same
report and that is not inside it: the located headings of every point's section, and the
report's `boundaries` (headings that end a section although no point sits under them). So a
quote filed under "Discussion" may come from "Discussion > Implications for policy", but not
from the chapter after it.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from advisor.cases.loading import CaseText
from advisor.text import normalise_space, strip_md_links

SEPARATOR = " > "
_WRAP = 5  # a heading may be wrapped over this many lines (figure labels are)
_KEY = 3  # lines are indexed by their first characters: a heading's first line is its prefix


def split_path(section: str) -> tuple[str, ...]:
    """The headings of a section path, outermost first."""
    return tuple(part.strip() for part in section.split(SEPARATOR.strip()) if part.strip())


@dataclass(frozen=True)
class Span:
    """A located section: the line of each of its headings and the lines it covers (1-based)."""

    headings: tuple[int, ...]
    first: int  # the last heading's line
    end: int  # the first line after the section


class ReportOutline:
    """A report's lines, read once, with its sections located on demand."""

    def __init__(self, raw_lines: list[str]) -> None:
        self.raw_lines = raw_lines
        self._lines = [normalise_space(strip_md_links(ln)).lstrip("# ") for ln in raw_lines]
        self._texts: dict[tuple[int, int], CaseText] = {}
        # Where a heading may begin: its first line is a prefix of it, so only lines that share
        # its first characters are tried (a map check looks up ~1,700 headings per start).
        self._starts: dict[str, list[int]] = defaultdict(list)
        for index, line in enumerate(self._lines):
            if line:
                self._starts[line[:_KEY]].append(index)

    @classmethod
    def read(cls, path: Path) -> ReportOutline:
        return cls(path.read_text(encoding="utf-8").replace("\r\n", "\n").split("\n"))

    def headings(self, section: str, line: int) -> tuple[int, ...] | None:
        """The 1-based line of each heading of a section path, read upward from `line`.

        The last heading is its nearest occurrence at or above `line`, each one before it the
        nearest above the one below it; None when one is not found.
        """
        found: list[int] = []
        below = line  # 1-based: search lines [0, below)
        for heading in reversed(split_path(section)):
            at = self._find_up(heading, below)
            if at is None:
                return None
            found.append(at + 1)
            below = at
        return tuple(reversed(found)) or None

    def missing_heading(self, section: str, line: int) -> str | None:
        """The first heading of a path, read upward from `line`, that is not found (None: all are)."""
        below = line
        for heading in reversed(split_path(section)):
            at = self._find_up(heading, below)
            if at is None:
                return heading
            below = at
        return None

    def span(self, headings: tuple[int, ...], known: Iterable[tuple[int, ...]]) -> Span:
        """The lines of a located section, up to the next `known` heading path not inside it."""
        last = headings[-1]
        # a known heading ends this section unless its path runs through this section's heading
        ends = [h[-1] for h in known if h[-1] > last and last not in h[:-1]]
        return Span(headings, last, min(ends, default=len(self.raw_lines) + 1))

    def text(self, span: Span) -> CaseText:
        """The section's text, white space normalised, with the line of every character."""
        key = (span.first, span.end)
        if key not in self._texts:
            self._texts[key] = CaseText(self.raw_lines, span.first - 1, span.end - 1)
        return self._texts[key]

    def _find_up(self, heading: str, below: int) -> int | None:
        """The 0-based line nearest above index `below` (exclusive) where the heading begins."""
        wanted = normalise_space(heading)
        if not wanted:
            return None
        limit = min(below, len(self._lines))
        # a line shorter than the key is indexed under itself: try each prefix of that length
        keys = {wanted[:n] for n in range(1, _KEY + 1)}
        best: int | None = None
        for key in keys:
            indices = self._starts.get(key, ())
            for at in range(bisect.bisect_left(indices, limit) - 1, -1, -1):
                index = indices[at]
                if best is not None and index <= best:
                    break
                if self._starts_here(wanted, index):
                    best = index
                    break
        return best

    def _starts_here(self, wanted: str, index: int) -> bool:
        joined = ""
        for width in range(_WRAP):
            line = self._lines[index + width] if index + width < len(self._lines) else ""
            if not line:
                return False
            # "Trust-" + "wide": a word broken at its hyphen joins without a space
            joined = f"{joined}{line}" if joined.endswith("-") else f"{joined} {line}".strip()
            if joined == wanted:
                return True
            if not wanted.startswith(joined):
                return False
        return False
