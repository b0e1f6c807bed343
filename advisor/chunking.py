"""Chunk stage: a `SourceDoc` -> `Chunk`s within sections, never across a case-study boundary.

The cleaned blocks are labelled with their section (the last heading seen) and case study
(from the manifest's start/end lines), then packed into chunks of about `chunk_words` words.
A new chunk starts at every case-study boundary, and at a section change once the current
chunk has some substance (so a three-line section joins its neighbour instead of becoming a
chunk of its own). Paragraphs longer than a chunk are split between sentences, and chunks cut
inside one section carry the previous chunk's last sentences as a small overlap.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from advisor.cleaning import Block, clean_blocks
from advisor.corpus import CaseStudySpec
from advisor.sentences import split_sentences
from advisor.types import Chunk, SourceDoc, chunk_id_for

log = logging.getLogger(__name__)

PIPELINE_VERSION = "8"  # bump whenever cleaning or chunking output changes

_MIN_CHUNK_WORDS = 60  # below this a section change does not start a new chunk


@dataclass(frozen=True)
class _Unit:
    text: str
    section: str
    case_study: str
    start: int  # offset in the cleaned text
    end: int
    words: int
    page: int  # 0 when the source has no page numbers


def _strip_numbering(heading: str) -> str:
    return re.sub(r"^\d{1,2}\.\s+", "", heading).strip()


def locate_case_studies(
    raw_lines: list[str], specs: list[CaseStudySpec]
) -> list[tuple[CaseStudySpec, int, int]]:
    """(spec, first raw line, end raw line exclusive) for every case study found."""
    stripped = [ln.replace("\u00a0", " ").strip() for ln in raw_lines]
    found: list[tuple[CaseStudySpec, int]] = []
    cursor = 0
    for spec in specs:
        try:
            index = stripped.index(spec.start, cursor)
        except ValueError:
            log.warning("case study %r: start line %r not found", spec.name, spec.start)
            continue
        found.append((spec, index))
        cursor = index + 1
    located = []
    for n, (spec, start) in enumerate(found):
        end = found[n + 1][1] if n + 1 < len(found) else len(raw_lines)
        if spec.end:
            try:
                end = min(end, stripped.index(spec.end, start + 1))
            except ValueError:
                log.warning("case study %r: end line %r not found", spec.name, spec.end)
        located.append((spec, start, end))
    return located


class Chunker:
    """Cleans a report and cuts it into cited-ready chunks."""

    def __init__(self, chunk_words: int = 220, overlap_words: int = 30) -> None:
        if chunk_words < 50 or not 0 <= overlap_words < chunk_words // 2:
            raise ValueError(
                f"chunk_words must be >= 50 and overlap below half of it; got {chunk_words}/{overlap_words}"
            )
        self.chunk_words = chunk_words
        self.overlap_words = overlap_words

    def blocks(
        self, doc: SourceDoc, case_studies: list[CaseStudySpec] = (), running_headers: list[str] = ()
    ) -> list[tuple[Block, str]]:
        """The cleaned blocks of a report, each with its case study name ("" outside one)."""
        raw_lines = doc.text.split("\n")
        located = locate_case_studies(raw_lines, list(case_studies))
        breaks = {start for _, start, _ in located} | {end for _, _, end in located}
        blocks = clean_blocks(doc.text, running_headers, breaks)
        labelled = []
        for block in blocks:
            name = next((s.name for s, a, b in located if a <= block.line < b), "")
            labelled.append((block, name))
        return labelled

    def chunk(
        self, doc: SourceDoc, case_studies: list[CaseStudySpec] = (), running_headers: list[str] = ()
    ) -> list[Chunk]:
        """The chunks of one report, in reading order, with their metadata."""
        units = self._units(self.blocks(doc, case_studies, running_headers), _line_pages(doc))
        groups = self._pack(units)
        chunks: list[Chunk] = []
        seen: set[str] = set()
        info = doc.info
        previous: _Unit | None = None
        for group, overlap in groups:
            body = "\n\n".join(u.text for u in group)
            text = f"{overlap}\n\n{body}" if overlap else body
            first = group[0]
            # the overlap is the previous unit's last sentences, so the chunk starts there
            char_start = first.start
            if overlap and previous is not None and previous.text.endswith(overlap):
                char_start = previous.end - len(overlap)
            previous = group[-1]
            cid = chunk_id_for(info.source, text)
            if cid in seen:
                continue
            seen.add(cid)
            section = max(group, key=lambda u: u.words).section or first.section
            path = " > ".join(p for p in (first.case_study, section) if p)
            chunks.append(
                Chunk(
                    id=cid,
                    doc_id=info.source,
                    text=text,
                    meta={
                        "source": info.source,
                        "title": info.title,
                        "publisher": info.publisher,
                        "year": int(info.year or 0),
                        "section": section,
                        "section_path": path,
                        "case_study": first.case_study,
                        "char_start": char_start,
                        "char_end": group[-1].end,
                        "page": first.page,
                        "chunk_index": len(chunks),
                        "doc_hash": doc.content_hash,
                    },
                )
            )
        return chunks

    def clean_text(
        self, doc: SourceDoc, case_studies: list[CaseStudySpec] = (), running_headers: list[str] = ()
    ) -> str:
        """The cleaned report that the chunks' char_start/char_end point into."""
        return "\n\n".join(block.text for block, _ in self.blocks(doc, case_studies, running_headers))

    # ---- internals -----------------------------------------------------------------
    def _units(self, labelled: list[tuple[Block, str]], pages: list[int]) -> list[_Unit]:
        units: list[_Unit] = []
        section = ""
        case_study = ""
        offset = 0
        for block, name in labelled:
            if name != case_study:
                case_study = name
                section = ""
            start = offset
            offset += len(block.text) + 2
            if block.kind == "heading":
                section = _strip_numbering(block.text)
                continue
            cursor = 0
            for piece in self._split_long(block.text):
                at = block.text.find(piece, cursor)
                at = cursor if at < 0 else at
                cursor = at + len(piece)
                units.append(
                    _Unit(
                        piece,
                        section,
                        case_study,
                        start + at,
                        start + at + len(piece),
                        len(piece.split()),
                        pages[block.line] if pages else 0,
                    )
                )
        return units

    def _split_long(self, text: str) -> list[str]:
        if len(text.split()) <= self.chunk_words:
            return [text]
        pieces, current, words = [], [], 0
        for sentence in split_sentences(text):
            n = len(sentence.split())
            if current and words + n > self.chunk_words:
                pieces.append(" ".join(current))
                current, words = [], 0
            current.append(sentence)
            words += n
        if current:
            pieces.append(" ".join(current))
        return pieces

    def _pack(self, units: list[_Unit]) -> list[tuple[list[_Unit], str]]:
        groups: list[tuple[list[_Unit], str]] = []
        current: list[_Unit] = []
        words = 0
        overlap = ""
        for unit in units:
            if current:
                boundary = unit.case_study != current[-1].case_study
                new_section = unit.section != current[-1].section and words >= _MIN_CHUNK_WORDS
                full = words + unit.words > self.chunk_words
                if boundary or new_section or full:
                    groups.append((current, overlap))
                    overlap = "" if (boundary or new_section) else self._tail(current)
                    current, words = [], 0
            current.append(unit)
            words += unit.words
        if current:
            groups.append((current, overlap))
        return groups

    def _tail(self, group: list[_Unit]) -> str:
        if not self.overlap_words:
            return ""
        tail: list[str] = []
        words = 0
        for sentence in reversed(split_sentences(group[-1].text)):
            n = len(sentence.split())
            if words + n > self.overlap_words:
                break
            tail.insert(0, sentence)
            words += n
        return " ".join(tail)


def _line_pages(doc: SourceDoc) -> list[int]:
    """The page of every raw line (0 where unknown), from the page starts the loader found.

    A PDF gives every page start, so this is exact. A text extraction gives only some
    (page 7, then page 11): lines between two such anchors get a page estimated in
    proportion to their position, and lines before the first anchor get 0.
    """
    if not doc.pages:
        return []
    anchors = sorted(doc.pages, key=lambda p: p[1])
    out, offset, i = [], 0, -1
    for line in doc.text.split("\n"):
        while i + 1 < len(anchors) and anchors[i + 1][1] <= offset:
            i += 1
        if i < 0:
            out.append(0)
        elif i + 1 == len(anchors):
            out.append(anchors[i][0])
        else:
            (p0, o0), (p1, o1) = anchors[i], anchors[i + 1]
            out.append(p0 + int((offset - o0) * (p1 - p0) / max(1, o1 - o0)))
        offset += len(line) + 1
    return out
