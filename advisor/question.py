"""Question analysis, offline and deterministic: what a question asks before anything is retrieved.

`analyse(question, names)` returns a `QuestionAnalysis`:
- `parts`: the question split into the questions it holds ("...? And how long...?"), capped at
  `MAX_PARTS` (the rest is reported as `dropped_parts`);
- `answer_type`: what kind of answer is expected, read from the question's grammar (its wh-word
  and auxiliary): `number`, `date`, `who`, `list`, `yes_no`, `how` (advice and explanations);
- `named`: the named things it mentions: case studies (by the catalogue's names and aliases),
  acronyms and capitalised names;
- `domain_terms` / `everyday_terms`: its content words told apart by a general-English word
  frequency list (`wordfreq`): a word common in everyday English ("worried", "tweak",
  "whoever") is never evidence that the reports do not cover a question; a rare one ("UKCA",
  "DTAC", "paracetamol") may be.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

MAX_PARTS = 4
# Zipf frequency (log10 of uses per billion words) at or above which a word is everyday English:
# 3.0 is about once per million words ("tweak" 3.3, "realistically" 3.3, "tariff" 3.5 are
# everyday; "paracetamol" 2.7, "DTAC" 1.2, "UKCA" 0 are not).
EVERYDAY_ZIPF = 3.0

_WORD = re.compile(r"[^\W\d_][\w+'’-]*[\w+]|[^\W\d_]")
# a run of capitalised words or acronyms, with the small words that join names ("Point of Care Foundation")
_NAME_RUN = re.compile(r"\b[A-Z][\w+&-]*(?:\s+(?:(?:of|and|for|the)\s+)?[A-Z][\w+&-]*)*")
# the question's own grammar: wh-words and auxiliaries open a part
_PART_OPENERS = re.compile(
    r"(?:(?<=[?;])|(?<=\?\s)|,?\s+(?:and|but|also|plus)\s+(?=(?:how|what|which|who|when|where|why|whether|"
    r"is|are|do|does|did|can|could|should|would|will)\b))",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class QuestionAnalysis:
    """What a question asks: its parts, the answer type, the named things and its kinds of words."""

    question: str
    parts: tuple[str, ...]
    answer_type: str
    part_types: tuple[str, ...] = ()
    named: tuple[str, ...] = ()
    cases: tuple[str, ...] = ()  # catalogue names of the case studies the question names
    domain_terms: tuple[str, ...] = ()
    asked_terms: tuple[str, ...] = ()  # the domain terms of the asking sentences (not the scene-setting)
    everyday_terms: tuple[str, ...] = ()
    dropped_parts: int = 0
    language: str = "en"
    notes: tuple[str, ...] = field(default=())

    def to_record(self) -> dict:
        return {
            "parts": list(self.parts),
            "answer_type": self.answer_type,
            "part_types": list(self.part_types),
            "named": list(self.named),
            "cases": list(self.cases),
            "domain_terms": list(self.domain_terms),
            "asked_terms": list(self.asked_terms),
            "everyday_terms": list(self.everyday_terms),
            "dropped_parts": self.dropped_parts,
            "language": self.language,
        }


@lru_cache(maxsize=1)
def english_stop_words() -> frozenset[str]:
    """scikit-learn's English stop-word list, read from its own module file.

    Importing it the usual way imports the whole of scikit-learn first (about 2.8 s of a cold
    `advisor ask` on 2 cores, for a list of 318 words); the module holds nothing but the list.
    """
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        file = Path(folder) / "feature_extraction" / "_stop_words.py"
        module_spec = importlib.util.spec_from_file_location("_advisor_sklearn_stop_words", file)
        if file.is_file() and module_spec and module_spec.loader:
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
            words = getattr(module, "ENGLISH_STOP_WORDS", None)
            if words:
                return frozenset(words)
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS  # a layout this does not know

    return frozenset(ENGLISH_STOP_WORDS)


@lru_cache(maxsize=1)
def stop_words() -> frozenset[str]:
    return english_stop_words() | {
        "i'm",
        "we're",
        "i've",
        "we've",
        "don't",
        "it's",
        "what's",
        "let's",
    }


@lru_cache(maxsize=65536)
def zipf(word: str) -> float:
    """How common a word is in general English (wordfreq's Zipf scale, 0 when unknown)."""
    from wordfreq import zipf_frequency

    return zipf_frequency(word, "en")


def is_everyday(word: str) -> bool:
    """Whether a word is common in general English, so its absence from the reports means nothing."""
    return zipf(word.lower()) >= EVERYDAY_ZIPF


def content_words(text: str) -> list[str]:
    """The question's words that carry content: not stop words, in order, once each."""
    stops = stop_words()
    out: list[str] = []
    for w in _WORD.findall(text):
        lw = w.lower().replace("’", "'")
        if lw in stops or len(lw) < 2 or lw in out:
            continue
        out.append(lw)
    return out


def split_parts(question: str) -> list[str]:
    """The questions a question holds: split after '?' or ';', and before 'and how/what/is...'."""
    pieces = [p.strip(" ,;") for p in _PART_OPENERS.split(question) if p and p.strip(" ,;")]
    parts: list[str] = []
    for piece in pieces:
        # a fragment without a content word ("and?") belongs to the part before it
        if parts and not content_words(piece):
            parts[-1] = f"{parts[-1]} {piece}"
        else:
            parts.append(piece)
    return parts or [question.strip()]


# The interrogatives and what each expects; the earliest in a question decides ("How did they decide
# who to target?" is a how question, "Roughly how much did it cost?" an amount).
_OPENERS = [
    (
        (
            r"how (many|much|long|often|big|large|far|quickly|fast)\b"
            r"|what (percentage|proportion|share|number|figure)\b"
        ),
        "number",
    ),
    (r"when\b|what (year|date)\b|which year\b|since when\b", "date"),
    (r"who\b|whom\b|whose\b|which (organisation|organization|company|charity|body|team|trust)s?\b", "who"),
    (
        r"which\b|list\b|name\b|(give|show) me\b|examples?\b|what (are|were) the\b|any (cases?|examples?)\b",
        "list",
    ),
    (r"how\b|why\b|what\b|where\b|should\b|could\b|can\b|would\b", "how"),
    (r"(is|are|was|were|do|does|did|will|has|have|had)\b", "yes_no"),
]
_MONEY_ASKED = re.compile(
    r"£|\b(cost|costs|price|priced|charge|charges|fee|fees|spend|spent|budget|funding|grant|investment)\b"
    r"|how much .*\bpaid?\b"
)


def answer_type(question: str) -> str:
    """The kind of answer a question expects, from its earliest interrogative (and money words)."""
    q = question.lower()
    found = []
    for order, (pattern, kind) in enumerate(_OPENERS):
        m = re.search(rf"\b(?:{pattern})", q)
        if m:
            found.append((m.start(), order, kind))
    kind = min(found)[2] if found else "how"
    if (
        kind in ("number", "how")
        and _MONEY_ASKED.search(q)
        and re.search(r"\bhow much\b|\bwhat\b|\bprice\b|£", q)
        # "How much did it cost?", "What does Lantum charge?": an amount of money
        and (kind == "number" or not re.search(r"\b(how|why) (do|does|did|should|can|could|would)\b", q))
    ):
        return "amount"
    return kind


def named_things(
    question: str, case_names: dict[str, Iterable[str]] | None = None
) -> tuple[list[str], list[str]]:
    """(names mentioned, catalogue cases among them): case names and aliases, acronyms, capitalised names."""
    named: list[str] = []
    cases: list[str] = []
    if case_names:
        spellings = sorted(
            ((s, case) for case, aliases in case_names.items() for s in {case, *aliases}),
            key=lambda p: -len(p[0]),
        )
        taken = question
        for spelling, case in spellings:
            pattern = re.compile(rf"(?<![\w-]){re.escape(spelling)}(?![\w-])", re.IGNORECASE)
            if pattern.search(taken):
                if case not in cases:
                    cases.append(case)
                if spelling not in named:
                    named.append(spelling)
                taken = pattern.sub(" ", taken)
    for m in _NAME_RUN.finditer(question):
        name = m.group().strip()
        words = name.split()
        opening = not question[: m.start()].strip() or bool(re.search(r"[.!?:]\s*$", question[: m.start()]))
        if opening and words[0].lower() in stop_words() | {"i'm", "we're", "i've", "we've", "hi", "hello"}:
            words = words[1:]  # "Which", "We're", "Is" open the sentence; the name may follow
            name = " ".join(words)
        if not words or name in ("I", "OK") or any(name.lower() in n.lower() for n in named):
            continue
        acronym = len(words) == 1 and name.isupper() and len(name) > 1
        opening_word = opening and len(words) == 1 and not acronym and m.start() == question.find(name)
        if (len(words) > 1 or acronym or not is_everyday(name)) and not opening_word:
            named.append(name)
    return named, cases


def asking_text(question: str) -> str | None:
    """The sentences that ask (end with '?') when the question also sets a scene; else None.

    "An ICB wants our IP. Is that normal?": the first sentence says who is asking, the second what.
    """
    sentences = [p.strip() for p in re.split(r"(?<=[.!?])\s+", question.strip()) if p.strip()]
    asking = [p for p in sentences if p.endswith("?")]
    if len(sentences) < 2 or not asking or len(asking) == len(sentences):
        return None
    return " ".join(asking)


def looks_english(question: str) -> bool:
    """Whether most of the question's words are English words (wordfreq knows them)."""
    words = [w.lower() for w in _WORD.findall(question) if len(w) > 2]
    if len(words) < 3:
        return True
    known = sum(zipf(w) >= 2.5 for w in words)
    return known / len(words) >= 0.5


def analyse(question: str, case_names: dict[str, Iterable[str]] | None = None) -> QuestionAnalysis:
    """Read a question: parts, answer type, named things, domain and everyday words."""
    parts = split_parts(question)
    dropped = max(0, len(parts) - MAX_PARTS)
    parts = parts[:MAX_PARTS]
    named, cases = named_things(question, case_names)
    words = content_words(question)
    named_words = {w.lower() for n in named for w in _WORD.findall(n)}
    domain = [w for w in words if not is_everyday(w) or w in named_words]
    everyday = [w for w in words if w not in domain]
    asking = asking_text(question)
    asked_words = set(content_words(asking)) if asking else set(words)
    asked = [w for w in domain if w in asked_words]
    return QuestionAnalysis(
        question=question,
        parts=tuple(parts),
        answer_type=answer_type(parts[-1] if len(parts) == 1 else parts[0]),
        part_types=tuple(answer_type(p) for p in parts),
        named=tuple(named),
        cases=tuple(cases),
        domain_terms=tuple(domain),
        asked_terms=tuple(asked),
        everyday_terms=tuple(everyday),
        dropped_parts=dropped,
        language="en" if looks_english(question) else "other",
    )
