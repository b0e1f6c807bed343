"""Sentence splitting shared by ingest (sentence index), the answerer and citation checks.

Rule-based and offline: a sentence ends at . ! ? (optionally followed by a closing quote or
bracket) before white space and a capital, digit, quote or bullet; known abbreviations and
initials do not end a sentence; a line break between paragraphs or bullets always does.
"""

from __future__ import annotations

import re

from advisor.text import normalise_space

_ABBREVIATIONS = {
    "e.g",
    "i.e",
    "etc",
    "dr",
    "mr",
    "mrs",
    "ms",
    "prof",
    "st",
    "no",
    "vs",
    "approx",
    "fig",
    "al",
    "cf",
    "inc",
    "ltd",
    "co",
    "jan",
    "feb",
    "mar",
    "apr",
    "jun",
    "jul",
    "aug",
    "sep",
    "sept",
    "oct",
    "nov",
    "dec",
    "p",
    "pp",
    "vol",
    "ed",
    "eds",
    "para",
    "ref",
    "nhs",
}

_BOUNDARY = re.compile(r"""([.!?…]+)(["”’')\]]*)(\s+)(?=["“‘(\[]?[A-Z0-9•\-–])""")
_LINE_BREAK = re.compile(r"\n\s*\n|\n(?=\s*(?:[-•*]|\d+[.)])\s)")
_MIN_CHARS = 2


def _ends_with_abbreviation(text: str) -> bool:
    match = re.search(r"(\b[\w.]+)\.$", text)
    if not match:
        return False
    word = match.group(1).lower().rstrip(".")
    if word in _ABBREVIATIONS:
        return True
    return len(word) == 1 and word.isalpha()  # an initial such as "A. Darzi"


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) character spans of the sentences in `text`, white space trimmed."""
    spans: list[tuple[int, int]] = []
    block_start = 0
    blocks: list[tuple[int, int]] = []
    for match in _LINE_BREAK.finditer(text):
        blocks.append((block_start, match.start()))
        block_start = match.end()
    blocks.append((block_start, len(text)))

    for b_start, b_end in blocks:
        block = text[b_start:b_end]
        start = 0
        for match in _BOUNDARY.finditer(block):
            end = match.end(2)
            if _ends_with_abbreviation(block[start : match.end(1)]):
                continue
            spans.append((b_start + start, b_start + end))
            start = match.end(3)
        spans.append((b_start + start, b_start + len(block)))

    trimmed = []
    for s, e in spans:
        piece = text[s:e]
        left = len(piece) - len(piece.lstrip())
        right = len(piece.rstrip())
        if right - left >= _MIN_CHARS:
            trimmed.append((s + left, s + right))
    return trimmed


def split_sentences(text: str) -> list[str]:
    """The sentences of `text`, each with its inner white space collapsed."""
    return [normalise_space(text[s:e]) for s, e in sentence_spans(text)]
