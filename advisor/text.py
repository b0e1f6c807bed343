"""Text primitives shared by every stage: white space, folding, tokens, stems, numbers, quotes.

- `normalise_space`: runs of white space (line breaks, no-break spaces) as one space.
- `fold`: lower case, punctuation dropped, white space folded (how quotes meet passages).
- `tokenize`: lower-cased content words with a light plural strip (BM25, lexical overlap).
- `stem`: a light inflectional stem of a token ("persuaded" and "persuade" give "persuad").
- `numbers`: the numbers a text states, digits or number words, normalised.
- `quote_found` / `quote_found_exact`: whether passages hold a quote, nearly or word for word.
- `MD_LINK`, `FUSED_HEADER`: the markdown-link and fused page-header patterns of extracted reports.

Kept free of the retrieval and model stacks so that the catalogue and the CLI import it cheaply.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

_SPACE = re.compile(r"\s+")
# web extractions: "[engagement events](#)" reads "engagement events"
MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
# a page number fused to a running header: "7Achieving scale and spread"
FUSED_HEADER = re.compile(r"^(\d{1,3})([A-Z][^\d]{5,80})$")


def normalise_space(text: str) -> str:
    """Text with every run of white space (line breaks, no-break spaces) as one space.

    str.split and the regex \\s agree on what white space is (every code point checked); the
    split is ~3x faster, and a start reads every line of the quoted reports through here.
    """
    return " ".join(text.split())


def strip_md_links(text: str) -> str:
    """Markdown links and images read as their text ("[NHS](https://...)" -> "NHS")."""
    return MD_LINK.sub(r"\1", text) if "](" in text else text


def fold(text: str) -> str:
    """Lower case, punctuation dropped, white space folded: how quotes meet cleaned passages."""
    return _SPACE.sub(" ", re.sub(r"[^\w\s]", " ", text.lower())).strip()


# ---- tokens and stems --------------------------------------------------------------------
_STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself
    yourselves""".split()  # noqa: SIM905 - a word list reads better as prose
)
_TOKEN = re.compile(r"[a-z0-9]+(?:[+'][a-z0-9]+)*\+?")


def tokenize(text: str) -> list[str]:
    """Lower-cased content words with a light plural strip, for BM25 and lexical overlap."""
    tokens = []
    for tok in _TOKEN.findall(text.lower().replace("’", "'")):
        if tok in _STOPWORDS or len(tok) < 2:
            continue
        if len(tok) > 4 and tok.endswith("s") and not tok.endswith("ss"):
            tok = tok[:-1]
        tokens.append(tok)
    return tokens


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


# ---- numbers -----------------------------------------------------------------------------
# number words as they appear in the reports' prose ("seven countries", "twenty sites")
_NUMBER_WORDS = {
    w: str(i)
    for i, w in enumerate(
        (
            "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
            "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
            "nineteen", "twenty",
        )
    )
}  # fmt: skip
_NUMBER = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?(?![\d])")


def numbers(text: str) -> set[str]:
    """The numbers a text states, digits or number words, normalised ("1,200" -> "1200", "seven" -> "7")."""
    found = {m.group().replace(",", "").rstrip(".") for m in _NUMBER.finditer(text)}
    found |= {_NUMBER_WORDS[w] for w in re.findall(r"[a-z]+", text.lower()) if w in _NUMBER_WORDS}
    return found


# ---- quotes in passages ------------------------------------------------------------------
# A quote counts as found in a passage when the passage holds it with at most ~15 % of its
# characters edited (rapidfuzz partial_ratio on folded text). Cleaning drops footnote markers and
# page furniture, and the reports repeat a sentence with small wording changes (summary vs body).
QUOTE_MATCH_MIN = 85.0


def quote_found(quote: str, passages: Iterable[str]) -> bool:
    """Whether any passage holds the quote (exactly, or nearly: see QUOTE_MATCH_MIN).

    A near match must also keep every number of the quote inside the matched stretch: at 85 the
    edit distance alone accepts "2007" for "2015" or "71" for "17".
    """
    from rapidfuzz import fuzz

    needle = fold(quote)
    if not needle:
        return False
    folded = [fold(p) for p in passages]
    if any(needle in p for p in folded):
        return True
    wanted = numbers(needle)
    for p in folded:
        match = fuzz.partial_ratio_alignment(needle, p)
        if match is not None and match.score >= QUOTE_MATCH_MIN:
            window = p[max(0, match.dest_start - 10) : match.dest_end + 10]
            if wanted <= numbers(window):
                return True
    return False


def quote_found_exact(quote: str, passages: Iterable[str]) -> bool:
    """Whether a passage holds the quote word for word (case and punctuation folded, nothing else forgiven)."""
    needle = fold(quote)
    return bool(needle) and any(needle in fold(p) for p in passages)
