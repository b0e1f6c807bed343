"""The controlled vocabularies of the tag fields, and reading tags from free text."""

from __future__ import annotations

import re
from collections.abc import Iterable

from advisor.cases.model import TAG_FIELDS, Term

# A phrase found in a text: its span and every (field, value) it names.
Found = tuple[tuple[int, int], frozenset[tuple[str, str]]]

_HEAD_JOIN = re.compile(r"[\s-]+")  # what may stand between a phrase and the generic head noun after it


class Vocabulary:
    """The controlled vocabularies of the tag fields, and tag parsing from free text."""

    def __init__(self, terms: Iterable[Term]) -> None:
        self.terms: dict[str, dict[str, Term]] = {f: {} for f in TAG_FIELDS}
        for term in terms:
            self.terms[term.field][term.value] = term
        phrases: dict[str, set[tuple[str, str]]] = {}
        self._generic: set[str] = set()
        for field_terms in self.terms.values():
            for term in field_terms.values():
                for phrase in (term.value, *term.synonyms, *term.generic):
                    phrases.setdefault(phrase.lower(), set()).add((term.field, term.value))
                self._generic.update(g.lower() for g in term.generic)
        # longest first, so "primary care network" is read before "network"
        self._phrases = sorted(phrases.items(), key=lambda p: (-len(p[0]), p[0]))
        self._patterns = [(_phrase_pattern(p), targets) for p, targets in self._phrases]

    def __contains__(self, item: tuple[str, str]) -> bool:
        field_name, value = item
        return value in self.terms.get(field_name, {})

    def values(self, field_name: str) -> list[str]:
        return list(self.terms.get(field_name, {}))

    @property
    def patterns(self) -> list[re.Pattern]:
        """The pattern of every phrase, longest first."""
        return [pattern for pattern, _ in self._patterns]

    def find(self, text: str) -> list[Found]:
        """Every vocabulary phrase in the text: (span, {(field, value), ...}), in text order.

        Longer phrases win over the shorter ones inside them. A generic word ("services") right
        after another phrase is that phrase's head noun ("mental health services") and is dropped.
        """
        taken: list[tuple[int, int]] = []
        found = []
        generic: set[tuple[int, int]] = set()
        for (pattern, targets), (phrase, _) in zip(self._patterns, self._phrases):
            for m in pattern.finditer(text):
                span = m.span()
                if any(span[0] < b and a < span[1] for a, b in taken):
                    continue
                taken.append(span)
                found.append((span, frozenset(targets)))
                if phrase in self._generic:
                    generic.add(span)
        found.sort()
        kept = []
        for i, (span, targets) in enumerate(found):
            if span in generic and i and _HEAD_JOIN.fullmatch(text[found[i - 1][0][1] : span[0]]):
                continue
            kept.append((span, targets))
        return kept

    def parse(self, text: str, prefer: Iterable[str] = ()) -> dict[str, frozenset[str]]:
        """The tags a text names. A phrase shared by several fields goes to a preferred field
        if one of them is preferred, otherwise to the first in `TAG_FIELDS` order."""
        return self.choose(self.find(text), prefer)

    def choose(self, found: Iterable[Found], prefer: Iterable[str] = ()) -> dict[str, frozenset[str]]:
        """The tags of phrases found by `find`, each phrase read in one field (as `parse` does)."""
        order = [*prefer, *TAG_FIELDS]
        tags: dict[str, set[str]] = {}
        for _, targets in found:
            best = min(targets, key=lambda t: order.index(t[0]))
            tags.setdefault(best[0], set()).add(best[1])
        return {f: frozenset(v) for f, v in tags.items()}

    def parse_all(self, text: str) -> dict[str, frozenset[str]]:
        """Like `parse`, but a phrase shared by several fields counts for all of them."""
        tags: dict[str, set[str]] = {}
        for _, targets in self.find(text):
            for f, v in targets:
                tags.setdefault(f, set()).add(v)
        return {f: frozenset(v) for f, v in tags.items()}


def _phrase_pattern(phrase: str) -> re.Pattern:
    """A phrase on word boundaries, its last word also in the plural ("company" reads "companies")."""
    body = re.escape(phrase)
    if re.search(r"[^aeiou]y$", phrase, re.IGNORECASE):
        body = re.escape(phrase[:-1]) + "(?:y|ies)"
    elif re.search(r"[a-z]$", phrase, re.IGNORECASE) and not phrase.endswith("s"):
        body += "(?:s|es)?"
    return re.compile(rf"(?<![\w-]){body}(?![\w-])", re.IGNORECASE)
