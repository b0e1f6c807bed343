"""Questions across case studies: which cases an answer names, scored against a row's `expected_cases`.

The advisor's answer names a case in a sentence that carries a citation (`cases_named`); plain
passage retrieval "names" the case studies of its top-k passages (`cases_retrieved`). Both are
scored by recall and precision, and "cases like mine" also by hit@3 and recall@5.
"""

from __future__ import annotations

import math
import re
import typing as t
from pathlib import Path

CASE_KINDS = ("aggregate", "cases_like_mine")  # questions across case studies, scored by `expected_cases`

_QUOTED = re.compile(
    r"“[^”]*”|\"[^\"]*\""
)  # the report's words inside an answer row, not the answer naming a case


class CaseNames:
    """The catalogue's case names and aliases, and which cases a piece of answer text names."""

    def __init__(self, aliases: dict[str, t.Iterable[str]]) -> None:
        self.cases = list(aliases)
        spellings: dict[str, set[str]] = {}
        for case, others in aliases.items():
            for spelling in {case, *others}:
                spellings.setdefault(spelling.lower(), set()).add(case)
        # longest first, so "ERAS+" is read before "ERAS" and "Schwartz Rounds (UK)" before "Schwartz Rounds"
        self._patterns = [
            (re.compile(rf"(?<![\w-]){re.escape(spelling)}(?![\w-])", re.IGNORECASE), frozenset(cases))
            for spelling, cases in sorted(spellings.items(), key=lambda p: (-len(p[0]), p[0]))
        ]

    @classmethod
    def from_corpus(cls, corpus_dir: Path) -> CaseNames:
        """The names in `corpus/case_studies.yaml` (AdvisorError if the catalogue does not load)."""
        from advisor.cases import load_catalogue

        cases, _ = load_catalogue(Path(corpus_dir))
        return cls({c.name: c.aliases for c in cases})

    def canonical(self, spelling: str) -> str | None:
        """The catalogue name for a name or alias, if exactly one case goes by it."""
        for pattern, cases in self._patterns:
            if pattern.fullmatch(spelling.strip()) and len(cases) == 1:
                return next(iter(cases))
        return None

    def named_in(self, text: str) -> list[tuple[frozenset[str], int]]:
        """(the cases a mention may mean, where it starts) for every mention outside quotation marks."""
        text = _QUOTED.sub(lambda m: " " * len(m.group()), text)
        taken: list[tuple[int, int]] = []
        found = []
        for pattern, cases in self._patterns:
            for m in pattern.finditer(text):
                if any(m.start() < b and a < m.end() for a, b in taken):
                    continue
                taken.append(m.span())
                found.append((cases, m.start()))
        return sorted(found, key=lambda f: f[1])


def cases_named(record: dict, names: CaseNames) -> list[str]:
    """The cases an answer names in a sentence that carries a citation, in order of first mention.

    A case mentioned only inside a quotation, or only in a sentence without a marker that maps
    to a citation, is not named. A name two cases share ("Schwartz Rounds") counts for the ones
    its sentence cites (by the cited passages' case study), or for both when it cites neither.
    """
    if record.get("refused"):
        return []
    citations = {c["marker"]: c for c in record.get("citations", [])}
    named: list[str] = []
    for sentence in record.get("sentences") or []:
        cited = [citations[m] for m in sentence.get("markers", []) if m in citations]
        if not cited:
            continue
        cited_cases = {c.get("case_study") for c in cited}
        for cases, _ in names.named_in(sentence["text"]):
            chosen = sorted(cases & cited_cases) if len(cases) > 1 else []
            chosen = chosen or sorted(cases)
            named += [c for c in chosen if c not in named]
    return named


def cases_retrieved(record: dict, k: int) -> list[str]:
    """Plain passage retrieval's answer to a question across cases: the top-k passages' case studies."""
    named: list[str] = []
    for passage in sorted(record.get("passages", []), key=lambda p: p.get("rank", 0))[:k]:
        case = passage.get("case_study")
        if case and case not in named:
            named.append(case)
    return named


def case_recall(named: t.Sequence[str], expected: t.Sequence[str]) -> float:
    """Share of the expected cases that were named."""
    return len(set(named) & set(expected)) / len(expected) if expected else math.nan


def case_precision(named: t.Sequence[str], expected: t.Sequence[str]) -> float:
    """Share of the named cases that were expected (nan when nothing was named)."""
    return len(set(named) & set(expected)) / len(named) if named else math.nan


def case_hit_at(named: t.Sequence[str], expected: t.Sequence[str], n: int) -> float:
    """1 when one of the first n cases named is expected."""
    return float(bool(set(named[:n]) & set(expected))) if expected else math.nan


CaseScore = t.Callable[[t.Sequence[str], t.Sequence[str]], float]

# metric -> (score of the cases named against the expected ones, the kinds of row it is measured on)
CASE_SCORES: dict[str, tuple[CaseScore, tuple[str, ...]]] = {
    "case_recall": (case_recall, CASE_KINDS),
    "case_precision": (case_precision, CASE_KINDS),
    "case_hit_at_3": (lambda named, expected: case_hit_at(named, expected, 3), ("cases_like_mine",)),
    "case_recall_at_5": (lambda named, expected: case_recall(named[:5], expected), ("cases_like_mine",)),
}
CASE_METRICS = tuple(CASE_SCORES)
