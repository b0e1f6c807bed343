"""Clean stage: raw extracted text -> `Block`s (headings, paragraphs, bullets) a reader would see.

The reports are PDF and web extractions. This removes running page headers fused with page
numbers (`7Achieving scale and spread`) and chapter-navigation lines (`1 2 3 4 5 6`), lone
page numbers, contents pages (dot leaders, tab runs, `_____`), figure and timeline fragments,
markdown links and "External link icon" artefacts; re-joins hard-wrapped lines into
paragraphs (also where every line is followed by a blank line); keeps real compound hyphens
(`Trust-wide`) and undoes typesetting hyphenation only where the report itself spells the
joined word; and normalises bullet glyphs to "- ". Every block remembers the raw line it
starts on, so case-study boundaries (given as raw lines) can be applied afterwards.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from advisor.text import FUSED_HEADER as _FUSED_HEADER
from advisor.text import MD_LINK as _MD_LINK
from advisor.text import normalise_space

BlockKind = Literal["heading", "para", "bullet"]

_BULLETS = "•●▪◦‣∙·*-–"
_BULLET_ONLY = re.compile(r"^[•●▪◦‣∙·\uf0b7\uf0a7\u2022*\-–]+$")
_BULLET_START = re.compile(r"^(?:[•●▪◦‣∙·\uf0b7\uf0a7\u2022]|[*\-–](?=\s))\s*")
_DASH_CLAUSE = re.compile(r"^[–-]\s+(?=[a-z])")
_NAV_LINE = re.compile(r"^(?:\d{1,2}\s+){2,}\d{1,2}$")
_PAGE_NUMBER = re.compile(r"^(?:p\.?\s*)?\d{1,3}$", re.IGNORECASE)
_TOC_LINE = re.compile(r"(?:\.{4,}|_{3,}|…{2,})\s*\d*\s*$|\t+\s*(?:p\.\s*)?\d+\s*$|\t{2,}\s*$")
_MD_EMPHASIS = re.compile(r"\*\*(.+?)\*\*|__(.+?)__")
_MD_HEADING = re.compile(r"^#{1,6}\s+")
_ARTEFACTS = re.compile(r"\s*External link icon\s*", re.IGNORECASE)
_CAPTION = re.compile(r"^(?:Figure|Graph|Chart|Source|Sources|Image|Photo)\s*\d*\s*[:.]", re.IGNORECASE)
_SENTENCE_END = re.compile(r"""[.!?:]["”’')\]]*$""")
_TERMINAL = re.compile(r"""[.!?:;]["”’')\]]*$""")
# Footnote references fused to the end of a sentence: "therapy.130 The", "arrhythmias.” 132"
# and lists of them ("models.8, 9, 10 At"); after a year only before a capital ("2016.4 And").
_FOOTNOTE_REF = re.compile(r"(?<=[A-Za-z)])([.!?,;:][\"”’')\]]?)\d{1,3}(?:, ?\d{1,3})*(?=\s|$)")
_YEAR_FOOTNOTE = re.compile(r"(?<=\b(?:19|20)\d\d)\.\d{1,2}(?=\s+[A-Z“‘\"(])")
_TRAILING_FOOTNOTE = re.compile(r"(?<=[A-Za-z)])(?<!\bp)(?<!\bpp)([.!?][\"”’')\]]?)\s+\d{1,3}$")
_NUMBERED = re.compile(r"^\d{1,2}\.\s")
_CONNECTORS = {
    "and",
    "or",
    "of",
    "the",
    "a",
    "an",
    "to",
    "for",
    "in",
    "on",
    "with",
    "by",
    "from",
    "as",
    "at",
    "that",
    "which",
    "their",
    "its",
    "is",
    "are",
    "be",
    "but",
    "nor",
    "into",
    "this",
    "than",
}
_MONTHS = {"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec"}


@dataclass(frozen=True)
class Block:
    """A heading, paragraph or bullet of clean text, and the raw lines it came from."""

    kind: BlockKind
    text: str
    line: int  # first raw line (0-based)
    end_line: int  # last raw line


@dataclass
class _Line:
    text: str  # stripped
    raw_index: int
    trailing: bool  # the raw line ended with white space: a soft wrap in some extractions
    gap: int = 0  # blank lines between the previous kept line and this one
    continues: bool = False  # certainly the same sentence as the line before


def clean_blocks(text: str, running_headers: Iterable[str] = (), breaks: Iterable[int] = ()) -> list[Block]:
    """The blocks of a report's text, page furniture removed and paragraphs re-joined.

    `breaks` are raw line numbers where a block must start (case-study boundaries).
    """
    raw_lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    furniture = _furniture_matcher(raw_lines, running_headers)
    lines = _kept_lines(raw_lines, furniture)
    if not lines:
        return []
    spaced = sum(1 for ln in lines if ln.trailing) > 0.3 * len(lines)
    lengths = sorted(len(ln.text) for ln in lines)
    width = lengths[int(0.8 * (len(lengths) - 1))]
    vocabulary = _vocabulary(text)
    paragraphs = _join(lines, spaced, width, vocabulary, set(breaks))
    blocks = [_classify(text, first, last) for text, first, last in paragraphs]
    return _drop_fragments([b for b in blocks if b is not None])


def clean_text(text: str, running_headers: Iterable[str] = ()) -> str:
    """The cleaned report as plain text: blocks separated by blank lines."""
    return "\n\n".join(b.text for b in clean_blocks(text, running_headers))


# ---- page furniture ------------------------------------------------------------------
def _furniture_matcher(raw_lines: list[str], running_headers: Iterable[str]):
    patterns = [re.compile(p) for p in running_headers]
    # A phrase fused to a number on its own line that recurs is a running header.
    fused = Counter(
        m.group(2).strip() for ln in raw_lines if (m := _FUSED_HEADER.match(_normalise(ln).strip()))
    )
    recurring = {phrase for phrase, n in fused.items() if n >= 3}

    def is_furniture(line: str) -> bool:
        if any(p.search(line) for p in patterns):
            return True
        m = _FUSED_HEADER.match(line)
        if m and m.group(2).strip() in recurring:
            return True
        if _NAV_LINE.match(line) or _PAGE_NUMBER.match(line):
            return True
        return bool(_TOC_LINE.search(line)) or line.lower() in {"contents", "table of contents"}

    return is_furniture


def _normalise(line: str) -> str:
    line = line.replace("\u00a0", " ").replace("\u200b", "").replace("\ufeff", "")
    line = _ARTEFACTS.sub(" ", line)
    line = _MD_LINK.sub(r"\1", line)
    line = _MD_EMPHASIS.sub(lambda m: m.group(1) or m.group(2), line)
    return line


def _kept_lines(raw_lines: list[str], is_furniture) -> list[_Line]:
    kept: list[_Line] = []
    gap = 0
    pending_bullet = False
    for index, raw in enumerate(raw_lines):
        spaced_raw = raw.replace("\u00a0", " ")
        trailing = bool(spaced_raw.strip()) and spaced_raw != spaced_raw.rstrip()
        line = _normalise(raw).strip()
        if not line:
            gap += 1
            continue
        if is_furniture(line) or _TOC_LINE.search(_normalise(raw).rstrip(" \n")):
            continue  # transparent: a sentence split by a page break is re-joined
        if _BULLET_ONLY.match(line):
            pending_bullet = True
            continue
        line = _MD_HEADING.sub("", line)
        dash = _DASH_CLAUSE.match(line)
        if dash and kept and not pending_bullet and not _TERMINAL.search(kept[-1].text):
            # "the market / – or indeed markets – and": a dash clause wrapped onto a new
            # line of the same sentence, not a bullet (the reports' bullets are glyphs).
            kept.append(_Line("– " + line[dash.end() :], index, trailing, gap, continues=True))
            gap = 0
            continue
        if _BULLET_START.match(line) or pending_bullet:
            line = "- " + _BULLET_START.sub("", line)
            pending_bullet = False
        kept.append(_Line(re.sub(r"[ \t]+", " ", line), index, trailing, gap))
        gap = 0
    return kept


# ---- paragraphs ----------------------------------------------------------------------
def _vocabulary(text: str) -> tuple[set[str], set[str]]:
    words = set(re.findall(r"[a-z]+", text.lower()))
    hyphenated = set(re.findall(r"[a-z]+-[a-z]+", text.lower()))
    return words, hyphenated


def _starts_lower(text: str) -> bool:
    return bool(text) and (text[0].islower() or text[0] in "(,;–-") and not text.startswith("- ")


def _should_join(prev: _Line, nxt: _Line, spaced: bool, width: int, para: str = "") -> bool:
    if nxt.continues:
        return True
    if nxt.text.startswith("- "):
        return False
    full = len(prev.text) >= 0.55 * width
    last_word = prev.text.rsplit(" ", 1)[-1].lower()
    if prev.text.endswith("-") and len(prev.text) > 1 and prev.text[-2].isalpha():
        return True
    if spaced and prev.trailing:
        # A wrapped line goes on in lower case or after a joining word. A capital after a
        # short line is usually a heading's end; after a nearly full line with no final
        # punctuation it is a sentence running on ("local and national" / "NHS bodies.").
        if _starts_lower(nxt.text) or last_word in _CONNECTORS or prev.text.endswith(","):
            return True
        return (
            len(prev.text) >= 0.8 * width
            and not _SENTENCE_END.search(prev.text)  # a ";" runs on: "2018; / Collins, 2018)"
            and not _CAPTION.match(nxt.text)
        )
    if nxt.gap == 0:
        para = para or prev.text
        if _NUMBERED.match(para) and len(para.split()) + len(nxt.text.split()) <= 9:
            # a numbered heading set over short lines: "3. Enhanced / Recovery After / Surgery"
            return not _TERMINAL.search(para) and not _NUMBERED.match(nxt.text)
        if prev.text.startswith("- ") and not full and not _starts_lower(nxt.text):
            return False
        return full or _starts_lower(nxt.text) or last_word in _CONNECTORS or prev.text.endswith(",")
    return _starts_lower(nxt.text) and not _TERMINAL.search(prev.text) and full


def _merge(left: str, right: str, vocabulary) -> str:
    if left.endswith("-") and len(left) > 1 and left[-2].isalpha():
        head = re.search(r"([A-Za-z]+)-$", left)
        tail = re.match(r"([A-Za-z]+)", right)
        if head and tail:
            words, hyphenated = vocabulary
            joined = (head.group(1) + tail.group(1)).lower()
            compound = f"{head.group(1)}-{tail.group(1)}".lower()
            if joined in words and compound not in hyphenated:
                return left[:-1] + right  # typesetting hyphenation: "organ-" + "isation"
        return left + right  # a real compound: "Trust-" + "wide"
    return f"{left} {right}"


def _join(
    lines: list[_Line], spaced: bool, width: int, vocabulary, breaks: set[int]
) -> list[tuple[str, int, int]]:
    paragraphs: list[tuple[str, int, int]] = []
    text, first, last = lines[0].text, lines[0].raw_index, lines[0].raw_index
    prev = lines[0]
    for line in lines[1:]:
        if line.raw_index not in breaks and _should_join(prev, line, spaced, width, text):
            text = _merge(text, line.text, vocabulary)
        else:
            paragraphs.append((text, first, last))
            text, first = line.text, line.raw_index
        last = line.raw_index
        prev = line
    paragraphs.append((text, first, last))
    return paragraphs


# ---- blocks --------------------------------------------------------------------------
def _classify(text: str, first: int, last: int) -> Block | None:
    text = normalise_space(text)
    text = _TRAILING_FOOTNOTE.sub(r"\1", _FOOTNOTE_REF.sub(r"\1", text))
    text = _YEAR_FOOTNOTE.sub(".", text)
    if not text or not re.search(r"[A-Za-z]", text):
        return None
    if re.fullmatch(r"\d{1,3}\s+(?:https?://|www\.)\S+(?:\s+\S+)?", text):
        return None  # a footnote that is only a web address
    if _CAPTION.match(text) and len(text.split()) <= 20:
        return None  # a figure's caption or source line, without its figure
    if text.startswith("- "):
        return Block("bullet", text, first, last)
    words = text.split()
    is_question = text.endswith("?") and len(words) <= 8
    if (
        len(words) <= 14
        and len(text) <= 110
        and (not _TERMINAL.search(text) or is_question)
        and (text[0].isupper() or text[0].isdigit() or text[0] in "‘“'\"")
        and words[-1].lower() not in _CONNECTORS
    ):
        return Block("heading", text, first, last)
    return Block("para", text, first, last)


def _is_fragment(block: Block) -> bool:
    """A piece of a figure or timeline: a short line that is no sentence."""
    words = block.text.split()
    if block.kind == "para" or len(words) >= 6:
        return False
    letters = sum(ch.isalpha() for ch in block.text)
    if letters < 0.6 * len(block.text.replace(" ", "")):
        return True  # mostly digits and symbols: "2.5% Early", "34%", "2012 &"
    return all(w.strip(".,").lower() in _MONTHS or w.strip(".,%").isdigit() for w in words)


def _drop_fragments(blocks: list[Block]) -> list[Block]:
    blocks = [b for b in blocks if not _is_fragment(b)]
    out: list[Block] = []
    run: list[Block] = []

    def flush(next_block: Block | None) -> None:
        # Three or more headings in a row are the labels of a figure; keep only the last,
        # which heads the text that follows it.
        if len(run) >= 3 and not any(b.kind == "para" for b in out):
            # the title page (title, date, publisher, authors): one paragraph, kept for facts
            text = ". ".join(b.text.rstrip(".") for b in run) + "."
            out.append(Block("para", text, run[0].line, run[-1].end_line))
        elif len(run) >= 3:
            if next_block is not None and next_block.kind != "heading":
                out.append(run[-1])
        else:
            out.extend(run)
        run.clear()

    for block in blocks:
        if block.kind == "heading":
            run.append(block)
            continue
        flush(block)
        out.append(block)
    flush(None)
    return out
