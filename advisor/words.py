"""Word forms: the light inflectional stem shared by the refusal gate (`advisor.answer`) and
the catalogue's reading of questions across cases (`advisor.cases`), and the numbers a text states
(the answer stage and the evaluation's key facts and quote matching).

Kept apart from `advisor.retrieval` (whose `tokenize` produces the terms it is applied to) so
that `advisor cases` does not import the retrieval stack.
"""

from __future__ import annotations

import re
from functools import lru_cache

# Inflections stripped by `stem`, longest first; a stem keeps at least three letters.
_SUFFIXES = (("ies", "y"), ("ied", "y"), ("ing", ""), ("es", ""), ("ed", ""), ("s", ""))


@lru_cache(maxsize=65536)
def stem(term: str) -> str:
    """A light inflectional stem of a `tokenize` term: 'persuaded' and 'persuade' both give 'persuad'."""
    term = term.rstrip("'")  # tokenize keeps a possessive's apostrophe: "trust's" -> "trust'"
    if term.endswith("ie") and len(term) > 4:
        return term[:-2] + "y"  # tokenize's plural strip: "categories" -> "categorie"
    for suffix, replacement in _SUFFIXES:
        if term.endswith(suffix) and len(term) - len(suffix) >= 3 and not term.endswith(("ss", "us", "is")):
            term = term[: -len(suffix)] + replacement
            break
    if len(term) > 3 and term[-1] == term[-2] and term[-1] not in "lsz":
        term = term[:-1]  # spinning -> spinn -> spin
    if len(term) > 3 and term.endswith("e"):
        term = term[:-1]
    return term


# number words as they appear in the reports' prose ("seven countries", "twenty sites")
_NUMBER_WORDS = {
    w: str(i)
    for i, w in enumerate((
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
        "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty",
    ))
}
_NUMBER = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?(?![\d])")


def numbers(text: str) -> set[str]:
    """The numbers a text states, digits or number words, normalised ("1,200" -> "1200", "seven" -> "7")."""
    found = {m.group().replace(",", "").rstrip(".") for m in _NUMBER.finditer(text)}
    found |= {_NUMBER_WORDS[w] for w in re.findall(r"[a-z]+", text.lower()) if w in _NUMBER_WORDS}
    return found
