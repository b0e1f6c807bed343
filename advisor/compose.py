"""What the offline answerer says besides its quotes, and how a quote is labelled.

The reply texts (refusals, notes, bad input), the label shown before a quote, the closest
topics a refusal names, and whether a sentence states the fact a question asks for.
"""

from __future__ import annotations

import re

from advisor.text import numbers
from advisor.types import Passage

REFUSAL_TEXT = (
    "The reports in the advisor's library do not cover this question closely enough "
    "to answer it with evidence."
)
UNKNOWN_TERMS_TEXT = " The reports never mention: {terms}."
MISSING_DETAIL_TEXT = "The reports describe {things} but do not give {detail}."
CLOSEST_TOPICS_TEXT = " The closest topics they do cover: {topics}."
UNCOVERED_PART_TEXT = "The reports do not cover this part of the question: \u201c{part}\u201d."
DROPPED_PARTS_TEXT = "Only the first {n} parts of the question were answered; please ask the rest separately."
NO_CONTENT_TEXT = (
    "The question has no words to search the reports for. Please say what you would like to know, "
    "for example \u201cHow did DAFNE win over doubtful consultants?\u201d"
)
NOT_ENGLISH_TEXT = (
    "The reports are in English, and the advisor reads questions in English only. Please ask in English."
)
NO_INDEX_TEXT = "The library is empty: no report has been ingested yet."
DETAIL_WORDS = {
    "number": "the figure asked for",
    "amount": "the amount asked for",
    "date": "the date asked for",
    "who": "who it was",
}

_YEAR = re.compile(r"\b(1[89]\d\d|20\d\d)\b")
_MONEY = re.compile(r"[£$€]\s?\d|\b\d[\d,.]*\s?(?:million|billion|bn|m|k|pounds|pence|p)\b", re.IGNORECASE)


def states(answer_type: str, text: str) -> bool:
    """Whether a sentence states what a number / amount / date question asks for."""
    if answer_type == "number":
        return bool(numbers(text))
    if answer_type == "amount":
        return bool(_MONEY.search(text))
    if answer_type == "date":
        return bool(_YEAR.search(text))
    return False


def label_of(passage: Passage) -> str:
    """What a quote is about: its case study, else its report (publisher and year)."""
    chunk = passage.chunk
    if chunk.case_study:
        return chunk.case_study
    publisher = str(chunk.meta.get("publisher", "") or "").split("(")[0].strip()
    year = chunk.meta.get("year")
    return f"{publisher} {year}".strip() if publisher else chunk.title


def closest_topics(passages: list[Passage], n: int = 3) -> list[str]:
    topics: list[str] = []
    for p in passages:
        topic = p.chunk.case_study or p.chunk.section or p.chunk.title
        if topic and topic not in topics:
            topics.append(topic)
    return topics[:n]


def join_names(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
