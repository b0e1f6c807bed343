"""Case-study catalogue: corpus/case_studies.yaml -> `CaseCatalogue` -> answers across cases.

The reports' case studies, read by a person into a structured catalogue where every field
value carries the verbatim quote that supports it (see corpus/CASE_STUDIES.md). Loading
validates the catalogue against the corpus: a malformed entry, an unknown tag or a quote that
is not inside its case study's part of the report raises `CatalogueError` naming the entry and
field, and `CatalogueLoader` keeps serving the previous catalogue.

Three uses, all offline:
- `CaseCatalogue.filter(**tags)`: the cases with given tags (the web page's explorer).
- `CaseCatalogue.like(text)`: "cases like mine", ranked by shared tags and by meaning, with a
  minimum score so a description with nothing in common gets "no similar case", and cut where
  similarity falls off (`LIKE_MARGIN` below the best) rather than always five.
- `CaseCatalogue.answer(question, advisor)`: questions across cases ("which innovations used a
  tariff?", "how many are digital tools?", "compare IAPT and RAID", "cases like mine: ...")
  answered with one cited row per case instead of five passages; None for other questions.

Quotes are matched with white space normalised (every run of spaces and line breaks is one
space), because the reports are hard-wrapped, and with markdown links read as their text
(`[engagement events](#)` is "engagement events"); nothing else about them may differ.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Protocol, Sequence

import numpy as np
import yaml

from advisor.chunking import locate_case_studies
from advisor.corpus import Manifest
from advisor.errors import CatalogueError
from advisor.types import Answer, AnswerSentence, CaseRow, Chunk, Citation, Filters, Passage, Route
from advisor.text import MD_LINK as _MD_LINK
from advisor.text import normalise_space, stem

log = logging.getLogger(__name__)

CATALOGUE_NAME = "case_studies.yaml"
VOCABULARY_NAME = "case_studies_vocabulary.yaml"

TAG_FIELDS = ("innovation_type", "setting", "organisation_type", "mechanism", "evidence_type", "barrier")
TEXT_FIELDS = ("description", "scale", "lesson")
FIELDS = TEXT_FIELDS + TAG_FIELDS
FIELD_LABELS = {
    "description": "what it is",
    "scale": "scale reached",
    "lesson": "lesson",
    "innovation_type": "innovation type",
    "setting": "setting",
    "organisation_type": "organisation",
    "mechanism": "spread through",
    "evidence_type": "evidence used",
    "barrier": "barrier",
}
# How much each kind of shared tag counts when ranking "cases like mine".
LIKE_WEIGHTS = {
    "innovation_type": 0.3,
    "setting": 0.25,
    "organisation_type": 0.15,
    "mechanism": 0.15,
    "barrier": 0.1,
    "evidence_type": 0.05,
}
MIN_LIKE_SCORE = 0.25  # below this a case is not "like" the description
# Cases more than this below the best score are not shown: a description close to one case gets
# that case, not four weaker ones to make up the number.
LIKE_MARGIN = 0.15  # tuned on dev (eval_sets/dev.jsonl, cases like mine)
NO_SIMILAR_CASE = (
    "None of the case studies in the catalogue is like that description: it shares no "
    "innovation type, setting, organisation or way of spreading with any of them, and no "
    "case is close to it in meaning. Try naming the kind of innovation and the setting."
)
_MIN_QUOTE_WORDS = 3


# ---- the catalogue's data ------------------------------------------------------------
@dataclass(frozen=True)
class Evidence:
    """One field value of a case study and the verbatim quote that supports it."""

    field: str
    value: str
    quote: str
    line: int  # 1-based line of the report file where the quote starts
    year: int | None = None  # for `scale`: the year the report gives for the figure

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {"field": self.field, "value": self.value, "quote": self.quote, "line": self.line}
        if self.year is not None:
            record["year"] = self.year
        return record


@dataclass(frozen=True)
class CaseStudy:
    """One case study as catalogued: where it is, and every field with its evidence."""

    name: str
    source: str  # corpus file name
    section: str
    evidence: tuple[Evidence, ...]
    aliases: tuple[str, ...] = ()
    title: str = ""  # the report's title
    publisher: str = ""
    year: int | None = None  # the report's year
    lines: tuple[int, int] = (0, 0)  # first and last line of the case study in the report (1-based)

    def values(self, field: str) -> tuple[str, ...]:
        """The distinct values of one field, in catalogue order."""
        return tuple(dict.fromkeys(e.value for e in self.evidence if e.field == field))

    @property
    def tags(self) -> dict[str, tuple[str, ...]]:
        """Every tag field with its values (empty tuple when the report says nothing)."""
        return {f: self.values(f) for f in TAG_FIELDS}

    @property
    def description(self) -> str:
        return next((e.value for e in self.evidence if e.field == "description"), "")

    def evidence_for(self, field: str, value: str | None = None) -> list[Evidence]:
        """The evidence for a field (and value), in catalogue order."""
        return [e for e in self.evidence if e.field == field and (value is None or e.value == value)]

    @property
    def report(self) -> str:
        """A short name of the report: publisher and year."""
        publisher = self.publisher.split("(")[0].strip()
        return f"{publisher} {self.year}" if self.year else publisher or self.source

    def to_record(self) -> dict[str, Any]:
        """The JSON shape of `advisor cases --json`."""
        return {
            "name": self.name,
            "aliases": list(self.aliases),
            "source": self.source,
            "title": self.title,
            "year": self.year,
            "section": self.section,
            "lines": list(self.lines),
            "tags": {f: list(v) for f, v in self.tags.items()},
            "evidence": [e.to_record() for e in self.evidence],
        }


@dataclass(frozen=True)
class Term:
    """One value of a controlled vocabulary and the words that name it."""

    field: str
    value: str
    description: str
    synonyms: tuple[str, ...]
    generic: tuple[str, ...] = ()  # words naming the value only when they stand alone (see `Vocabulary.find`)


@dataclass(frozen=True)
class CaseMatch:
    """A case study ranked against a "cases like mine" description."""

    case: CaseStudy
    score: float
    reasons: tuple[str, ...]  # why it matched, e.g. "setting: primary care"
    citations: tuple[Evidence, ...]  # the evidence behind the reasons and what it did to spread
    differences: tuple[str, ...] = ()  # where its context differs from the description

    def to_record(self) -> dict[str, Any]:
        return {
            "name": self.case.name,
            "source": self.case.source,
            "section": self.case.section,
            "score": round(self.score, 4),
            "reasons": list(self.reasons),
            "differences": list(self.differences),
            "citations": [
                {**e.to_record(), "source": self.case.source} for e in self.citations
            ],
        }


@dataclass(frozen=True)
class CaseQuery:
    """What a question across cases asks for."""

    kind: str  # "list" | "count" | "compare" | "like"
    tags: dict[str, frozenset[str]] = field(default_factory=dict)
    names: tuple[str, ...] = ()  # case studies named in the question
    any_of: bool = False  # values within one field joined by "or"
    text: str = ""  # for "like": the user's description


# ---- vocabularies ----------------------------------------------------------------------
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

    def find(self, text: str) -> list[tuple[tuple[int, int], frozenset[tuple[str, str]]]]:
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

    def choose(
        self, found: Iterable[tuple[tuple[int, int], frozenset[tuple[str, str]]]], prefer: Iterable[str] = ()
    ) -> dict[str, frozenset[str]]:
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


_HEAD_JOIN = re.compile(r"[\s-]+")  # what may stand between a phrase and the generic head noun after it


def _phrase_pattern(phrase: str) -> re.Pattern:
    """A phrase on word boundaries, its last word also in the plural ("company" reads "companies")."""
    body = re.escape(phrase)
    if re.search(r"[^aeiou]y$", phrase, re.IGNORECASE):
        body = re.escape(phrase[:-1]) + "(?:y|ies)"
    elif re.search(r"[a-z]$", phrase, re.IGNORECASE) and not phrase.endswith("s"):
        body += "(?:s|es)?"
    return re.compile(rf"(?<![\w-]){body}(?![\w-])", re.IGNORECASE)


def load_vocabulary(path: Path) -> Vocabulary:
    """Read the controlled vocabularies; CatalogueError naming the field and value if malformed."""
    data = _read_yaml(path)
    if not isinstance(data, dict):
        raise CatalogueError(f"{path.name}: expected a mapping of tag fields to their values")
    unknown = set(data) - set(TAG_FIELDS)
    if unknown:
        raise CatalogueError(f"{path.name}: unknown tag field(s) {sorted(unknown)}; expected {list(TAG_FIELDS)}")
    terms = []
    for field_name in TAG_FIELDS:
        values = data.get(field_name)
        if not isinstance(values, dict) or not values:
            raise CatalogueError(f"{path.name}: field {field_name!r} needs a mapping of values")
        for value, spec in values.items():
            spec = spec or {}
            if not isinstance(spec, dict):
                raise CatalogueError(f"{path.name}: {field_name} value {value!r}: expected description and synonyms")
            synonyms = spec.get("synonyms") or []
            generic = spec.get("generic") or []
            if not isinstance(synonyms, list) or not isinstance(generic, list):
                raise CatalogueError(f"{path.name}: {field_name} value {value!r}: synonyms and generic must be lists")
            terms.append(
                Term(
                    field_name,
                    str(value),
                    str(spec.get("description", "")),
                    tuple(str(s) for s in synonyms),
                    tuple(str(g) for g in generic),
                )
            )
    return Vocabulary(terms)


# ---- loading and validation ----------------------------------------------------------
def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CatalogueError(f"{path} does not exist") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise CatalogueError(f"{path.name} is not valid YAML: {exc}") from exc


class _CaseText:
    """A case study's part of a report, white space normalised, with the line of every character."""

    def __init__(self, raw_lines: list[str], first: int, end: int) -> None:
        chars: list[str] = []
        lines: list[int] = []
        pending_space = False
        for index in range(first, end):
            for ch in _MD_LINK.sub(r"\1", raw_lines[index].replace("\u00a0", " ")) + "\n":
                if ch.isspace():
                    pending_space = bool(chars)
                    continue
                if pending_space:
                    chars.append(" ")
                    lines.append(index + 1)
                    pending_space = False
                chars.append(ch)
                lines.append(index + 1)
        self.text = "".join(chars)
        self.lines = lines

    def locate(self, quote: str) -> int | None:
        """The 1-based report line where the quote starts, or None if it is not here."""
        at = self.text.find(normalise_space(quote))
        return None if at < 0 else self.lines[at]


def load_catalogue(corpus_dir: Path) -> tuple[list[CaseStudy], Vocabulary]:
    """Read and validate the catalogue against the corpus; CatalogueError names entry and field."""
    corpus_dir = Path(corpus_dir)
    path = corpus_dir / CATALOGUE_NAME
    vocabulary = load_vocabulary(corpus_dir / VOCABULARY_NAME)
    data = _read_yaml(path)
    entries = data.get("cases") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise CatalogueError(f"{path.name}: expected a top-level 'cases:' list")
    manifest = Manifest.load(corpus_dir)
    texts: dict[str, tuple[list[str], dict[str, tuple[int, int]]]] = {}
    cases: list[CaseStudy] = []
    seen: set[str] = set()
    for n, entry in enumerate(entries, start=1):
        name = entry.get("name") if isinstance(entry, dict) else None
        where = f"{path.name}, case {n} ({name!r})" if name else f"{path.name}, case {n}"
        if not isinstance(entry, dict):
            raise CatalogueError(f"{where}: expected a mapping with name, source, section and evidence")
        for key in ("name", "source", "section", "evidence"):
            if not entry.get(key):
                raise CatalogueError(f"{where}: field {key!r} is missing or empty")
        name, source = str(entry["name"]), str(entry["source"])
        if name in seen:
            raise CatalogueError(f"{where}: field 'name': {name!r} appears twice")
        seen.add(name)
        if source not in texts:
            file = corpus_dir / source
            if not file.is_file():
                raise CatalogueError(f"{where}: field 'source': {source!r} is not a file in {corpus_dir}")
            raw_lines = file.read_text(encoding="utf-8").replace("\r\n", "\n").split("\n")
            bounds = {
                spec.name: (start, end)
                for spec, start, end in locate_case_studies(raw_lines, manifest.case_studies_for(source))
            }
            texts[source] = (raw_lines, bounds)
        raw_lines, bounds = texts[source]
        if name not in bounds:
            raise CatalogueError(
                f"{where}: field 'name': {source} has no case study {name!r} in the manifest "
                f"(known: {', '.join(sorted(bounds)) or 'none'})"
            )
        first, end = bounds[name]
        case_text = _CaseText(raw_lines, first, end)
        evidence = tuple(
            _evidence(where, i, item, vocabulary, case_text, source, (first + 1, end))
            for i, item in enumerate(entry["evidence"] if isinstance(entry["evidence"], list) else [None], start=1)
        )
        if not any(e.field == "description" for e in evidence):
            raise CatalogueError(f"{where}: field 'description' is missing (every case needs one)")
        aliases = entry.get("aliases") or []
        if not isinstance(aliases, list):
            raise CatalogueError(f"{where}: field 'aliases' must be a list")
        info = manifest.entries.get(source)
        cases.append(
            CaseStudy(
                name=name,
                source=source,
                section=str(entry["section"]),
                evidence=evidence,
                aliases=tuple(str(a) for a in aliases),
                title=info.info.title if info else source,
                publisher=info.info.publisher if info else "",
                year=info.info.year if info else None,
                lines=(first + 1, end),
            )
        )
    return cases, vocabulary


def _evidence(
    where: str, n: int, item: Any, vocabulary: Vocabulary, text: _CaseText, source: str, lines: tuple[int, int]
) -> Evidence:
    if not isinstance(item, dict):
        raise CatalogueError(f"{where}, evidence {n}: expected a mapping with field, value and quote")
    field_name = item.get("field")
    where = f"{where}, evidence {n} (field {field_name!r})"
    if field_name not in FIELDS:
        raise CatalogueError(f"{where}: unknown field; expected one of {list(FIELDS)}")
    value, quote = item.get("value"), item.get("quote")
    if not isinstance(value, str) or not value.strip():
        raise CatalogueError(f"{where}: 'value' is missing or empty")
    if field_name in TAG_FIELDS and (field_name, value) not in vocabulary:
        raise CatalogueError(
            f"{where}: unknown tag {value!r}; the vocabulary for {field_name} is: "
            f"{', '.join(vocabulary.values(field_name))}"
        )
    if not isinstance(quote, str) or len(quote.split()) < _MIN_QUOTE_WORDS:
        raise CatalogueError(f"{where}: 'quote' must be a verbatim passage of {_MIN_QUOTE_WORDS}+ words")
    line = text.locate(quote)
    if line is None:
        raise CatalogueError(
            f"{where}: quote not found in {source} within the case study (lines {lines[0]}-{lines[1]}): {quote[:80]!r}"
        )
    given = item.get("line")
    if given is not None and given != line:
        raise CatalogueError(f"{where}: 'line' is {given} but the quote starts on line {line} of {source}")
    year = item.get("year")
    if year is not None and not (isinstance(year, int) and 1900 <= year <= 2100):
        raise CatalogueError(f"{where}: 'year' must be a year such as 2019, got {year!r}")
    return Evidence(field_name, value.strip(), normalise_space(quote), line, year)


# ---- question reading ------------------------------------------------------------------
# A question is read as one across cases only when it asks for cases ("which innovations ...",
# "how many of the case studies ...", "list the cases ...", "examples of innovations that ...")
# and everything it asks about them is a vocabulary value; any other criterion ("failed",
# "reduced admissions") leaves it to the passages, as do advice questions that merely mention
# a value ("What role do clinical champions play?").
_CASE_NOUNS = (
    r"(?:innovations?|case[- ]stud(?:y|ies)|cases|examples?|ones|projects|programmes|programs|"
    r"organisations|organizations|services|technologies|interventions|initiatives|of them|of the (?:cases|innovations|case studies))"
)
_LIKE = re.compile(
    r"\b(?:cases?|innovations?|examples?|case[- ]stud(?:y|ies)|ones|anything|something)\s+"
    r"(?:(?:that are|that is|which are)\s+)?(?:like|similar to)\s+(?:mine|ours|my|our|this|the one)\b|"
    r"\bsimilar (?:cases|innovations|case studies|examples)\b|\blike mine\b|\bsimilar to (?:mine|ours)\b",
    re.IGNORECASE,
)
_W = r"[\w'’-]+"
# Shapes are matched with innovation-type phrases read as "innovations" ("which digital tools").
_COUNT = re.compile(rf"\bhow many\s+(?:{_W}\s+){{0,3}}?{_CASE_NOUNS}\b", re.IGNORECASE)
_LIST = re.compile(
    rf"\b(?:list|name|show(?: me)?|give(?: me)?|tell me(?: about)?|find|(?:are|were|is) there(?: any)?)"
    rf"(?:\s+{_W}){{0,3}}?\s+{_CASE_NOUNS}\b"
    rf"|\bexamples? of\s+(?:{_W}\s+){{0,2}}?{_CASE_NOUNS}\b"
    rf"|\b(?:did|do|does|have|has|were|was)\s+any\s+(?:of the\s+)?{_CASE_NOUNS}\b",
    re.IGNORECASE,
)
# Between "which/what" and the case noun only modifiers may stand: in "What funding helps
# innovations spread?" the innovations are the object of an advice question, not what is asked for.
_MODIFIER = (
    r"(?:of|the|these|those|other|different|kinds?|types?|sorts?|nhs|health|healthcare|clinical|"
    r"medical|digital|new|local|national|successful|named|featured|reported|described|studied)"
)
_WHICH = re.compile(rf"\b(?:which|what)\s+(?:{_MODIFIER}\s+){{0,3}}?{_CASE_NOUNS}\b", re.IGNORECASE)
_ALL_CASES = re.compile(r"\b(?:which|what)\s+(?:case[- ]stud|cases|innovations)", re.IGNORECASE)
_COMPARE = re.compile(r"\b(?:compare|comparison|versus|vs\.?|differ|difference|differences)\b", re.IGNORECASE)
_BARRIER_CUES = re.compile(r"\b(?:barriers?|obstacles?|challenges?|struggl\w*|problems?|difficult\w*|hinder\w*|blocked)\b", re.I)
_EVIDENCE_CUES = re.compile(r"\b(?:evidence|evaluat\w*|proof|proved|prove)\b", re.IGNORECASE)
# "led by a charity" names the organisation; otherwise a phrase both an organisation and a way of
# spreading ("AHSN", "industry") is read as the way of spreading ("had help from an AHSN").
_LED_BY = re.compile(
    r"\b(?:led|developed|run|founded|owned|made|created|designed|invented|built|started|established|"
    r"delivered|hosted|managed|produced|manufactured|sold|set up)\s+by\b|\w-led\b",
    re.IGNORECASE,
)
# "such as CQUIN, QOF or the Tariff" after a criterion: examples of it, not criteria of their own.
_EXAMPLES = re.compile(r"\b(?:such as|e\.g\.|for example|for instance|including)\s[^.?!;()]*", re.IGNORECASE)
# Words a question across cases may use around its criteria without adding one of its own.
_FILLER = frozenset(
    """a about across adopt adopted adopting adoption all also an and any are as at based be been
    being by can case cases catalogue could count described developed did do does done each
    england example examples for from get got grow grew had has have help helped how in innovation
    innovations into involve involved is it its kind kinds led library list listed many me mention
    mentioned mentions my name named nhs number of on one ones or our projects programmes
    reach reached report reports rely relied relying scale scaled scaling show spread spreading
    spreads studies study such that the their them there these they this those through to type
    types use used uses using via was were what which who with would you your reports' them
    succeed succeeded successful successfully work worked achieve achieved make made their
    tagged type category categories show all total altogether overall cited examples national
    faced face faces facing met meet hit encountered around related regarding relating due
    because common most kinds innovators innovator people set up create created creating
    establish established start started become became build built went go take took give tell
    find programs organisations organizations technologies interventions initiatives""".split()
)
# Words that tie a case to a criterion ("got a boost from", "taken up in", "evidence behind
# them", "to win over"): allowed once the question names a criterion, not on their own.
_RELATION = frozenset(
    """after backed backing before behind benefit benefited benefitting benefitted boost boosted
    boosts both came come comes convince convinced dedicated different drive driven drove during
    encourage encouraged engage engaged gained gaining given help helping helps independent local
    new once other others over own part persuade persuaded receive received saw see seen separate
    set sets setting settings support supported supporting taken taking thanks then uptake up when
    where while win won""".split()
)
_WORD = re.compile(r"[A-Za-z][A-Za-z'’-]*")


class IndexView(Protocol):
    """What the catalogue reads of the published index: its generation and its chunks."""

    @property
    def generation(self) -> str: ...

    @property
    def chunks(self) -> Sequence[Chunk]: ...


class CaseCatalogue:
    """The catalogued case studies: filter by tags, rank "cases like mine", answer across cases."""

    def __init__(
        self,
        cases: list[CaseStudy],
        vocabulary: Vocabulary,
        embedder: Any = None,
        min_like_score: float = MIN_LIKE_SCORE,
    ) -> None:
        self.cases = list(cases)
        self.vocabulary = vocabulary
        self.embedder = embedder  # anything with .encode(list[str]) -> unit vectors; None = tags only
        self.min_like_score = min_like_score
        self._vectors: np.ndarray | None = None
        self._lock = threading.Lock()
        self._anchors: tuple[int, dict[tuple[str, str], Chunk]] | None = None
        self._names = self._name_patterns()

    @classmethod
    def load(cls, corpus_dir: Path, embedder: Any = None) -> "CaseCatalogue":
        """Read and validate `corpus/case_studies.yaml` (CatalogueError if it is broken)."""
        cases, vocabulary = load_catalogue(corpus_dir)
        return cls(cases, vocabulary, embedder)

    def __len__(self) -> int:
        return len(self.cases)

    def get(self, name: str) -> CaseStudy | None:
        """A case by its name or one of its aliases (case-insensitive)."""
        key = name.strip().lower()
        return next((c for c in self.cases if key in {c.name.lower(), *(a.lower() for a in c.aliases)}), None)

    # ---- filtering -----------------------------------------------------------------
    def filter(self, *, source: str | Iterable[str] | None = None, **tags: str | Iterable[str]) -> list[CaseStudy]:
        """The cases having every given tag, e.g. `filter(setting="primary care", mechanism=["tariff or payment"])`.

        A list of values for one field means all of them; `source` restricts to reports.
        """
        sources = {source} if isinstance(source, str) else set(source or ())
        wanted: dict[str, set[str]] = {}
        for field_name, values in tags.items():
            if field_name not in TAG_FIELDS:
                raise CatalogueError(f"unknown tag field {field_name!r}; expected one of {list(TAG_FIELDS)}")
            values = {values} if isinstance(values, str) else set(values)
            unknown = [v for v in values if (field_name, v) not in self.vocabulary]
            if unknown:
                raise CatalogueError(
                    f"unknown {field_name} {unknown[0]!r}; the vocabulary is: {', '.join(self.vocabulary.values(field_name))}"
                )
            wanted[field_name] = values
        return [
            c
            for c in self.cases
            if (not sources or c.source in sources) and all(v <= set(c.values(f)) for f, v in wanted.items())
        ]

    # ---- cases like mine ----------------------------------------------------------
    def like(
        self,
        text: str = "",
        k: int = 5,
        tags: dict[str, Iterable[str]] | None = None,
        cases: list[CaseStudy] | None = None,
        margin: float | None = LIKE_MARGIN,
    ) -> list[CaseMatch]:
        """The cases most like a description (and/or picked tags), best first; [] if none is.

        At most `k`, each scoring at least the minimum score and within `margin` of the best
        (None: no margin), so the ranking stops where similarity falls off.
        """
        wanted = {f: set(v) for f, v in self.vocabulary.parse_all(text).items()} if text else {}
        for field_name, values in (tags or {}).items():
            wanted.setdefault(field_name, set()).update([values] if isinstance(values, str) else values)
        pool = self.cases if cases is None else cases
        similarity = self._similarities(text, pool) if text.strip() else np.zeros(len(pool))
        total_weight = sum(LIKE_WEIGHTS[f] for f in wanted) or 1.0
        matches = []
        for case, sim in zip(pool, similarity):
            shared = {f: sorted(set(case.values(f)) & v) for f, v in wanted.items()}
            tag_score = sum(LIKE_WEIGHTS[f] * len(s) / len(wanted[f]) for f, s in shared.items()) / total_weight
            meaning = float(np.clip((sim - 0.15) / 0.45, 0.0, 1.0))
            if wanted and text.strip():
                score = 0.65 * tag_score + 0.35 * meaning
            elif wanted:
                score = tag_score
            else:
                score = meaning
            if score < self.min_like_score or (not any(shared.values()) and sim < 0.35):
                continue
            matches.append(self._match(case, score, float(sim), shared, wanted))
        matches.sort(key=lambda m: (-m.score, m.case.name))
        if matches and margin is not None:
            floor = matches[0].score - margin - 1e-9
            matches = [m for m in matches if m.score >= floor]
        return matches[:k]

    def _match(self, case, score, sim, shared, wanted) -> CaseMatch:
        reasons, cited = [], []
        for f in TAG_FIELDS:
            for value in shared.get(f, ()):
                reasons.append(f"{FIELD_LABELS[f]}: {value}")
                cited.append(case.evidence_for(f, value)[0])
        if sim >= 0.35:
            reasons.append(f"similar in meaning to the description ({sim:.2f})")
        differences = []
        for f in ("innovation_type", "setting", "organisation_type"):
            if wanted.get(f) and not shared.get(f):
                theirs = case.values(f)
                if theirs:
                    differences.append(f"{FIELD_LABELS[f]}: {', '.join(theirs)} (not {', '.join(sorted(wanted[f]))})")
                    cited.append(case.evidence_for(f)[0])
                else:
                    differences.append(f"{FIELD_LABELS[f]}: the report does not say")
        if not any(e.field == "description" for e in cited):
            cited.insert(0, case.evidence_for("description")[0])
        for e in case.evidence_for("mechanism")[:3]:
            if e not in cited:
                cited.append(e)
        return CaseMatch(case, round(score, 4), tuple(reasons), tuple(cited), tuple(differences))

    def _similarities(self, text: str, pool: list[CaseStudy]) -> np.ndarray:
        if self.embedder is None:
            return np.zeros(len(pool))
        with self._lock:
            if self._vectors is None:
                self._vectors = self.embedder.encode([_profile(c) for c in self.cases])
        index = {c.name: i for i, c in enumerate(self.cases)}
        query = self.embedder.encode([text])[0]
        return np.array([float(self._vectors[index[c.name]] @ query) for c in pool])

    # ---- questions across cases -----------------------------------------------------
    def read(self, question: str) -> CaseQuery | None:
        """What a question across cases asks, or None when it is not one (offline, rule-based)."""
        like = _LIKE.search(question)
        if like:
            text = question[like.end():].lstrip(" :,-–—.?") or question[: like.start()]
            return CaseQuery("like", text=text.strip() or question)
        names = self._names_in(question)
        if len(names) >= 2 and _COMPARE.search(question):
            return CaseQuery("compare", names=names)
        found = self.vocabulary.find(question)
        shape = _innovations_as_cases(question, found)
        count = _COUNT.search(shape)
        if not (count or _WHICH.search(shape) or _LIST.search(shape)):
            return None
        if names:
            return None  # "which of KardiaMobile's tactics...": a question about one case
        examples = _example_clauses(question, found)
        found = [(span, t) for span, t in found if not any(a <= span[0] < b for a, b in examples)]
        prefer = [f for f, cue in (("barrier", _BARRIER_CUES), ("evidence_type", _EVIDENCE_CUES)) if cue.search(question)]
        prefer.append("organisation_type" if _LED_BY.search(question) else "mechanism")
        tags = self.vocabulary.choose(found, prefer)
        if self._leftover(question, tags, examples):
            return None  # a criterion the catalogue does not record: leave it to the passages
        if not tags and not (count or _LIST.search(shape) or _ALL_CASES.search(shape)):
            return None
        any_of = bool(re.search(r"\bor\b", question, re.IGNORECASE)) and any(len(v) > 1 for v in tags.values())
        return CaseQuery("count" if count else "list", tags=tags, any_of=any_of)

    def _leftover(
        self, question: str, tags: dict[str, frozenset[str]] | None = None, skip: Iterable[tuple[int, int]] = ()
    ) -> list[str]:
        """The words of a question that are neither vocabulary phrases nor words around criteria.

        Once the question names criteria, words tying a case to them (`_RELATION`) and words of
        the criteria's own descriptions ("clinical champions ... to win over other clinicians")
        add nothing; `skip` spans (example lists) are not read.
        """
        text = question
        for a, b in skip:
            text = text[:a] + " " * (b - a) + text[b:]
        for pattern, _ in self.vocabulary._patterns:  # every phrase, overlapping ones too
            text = pattern.sub(" ", text)
        words = [w.lower().strip("'’-") for w in _WORD.findall(text)]
        left = [w for w in words if w and w not in _FILLER and not _is_barrier_or_evidence_cue(w)]
        if tags:
            described = {
                stem(w.lower())
                for f, values in tags.items()
                for v in values
                for w in _WORD.findall(self.vocabulary.terms[f][v].description)
            }
            left = [w for w in left if w not in _RELATION and stem(w) not in described]
        return left

    def _name_patterns(self) -> list[tuple[re.Pattern, str]]:
        patterns = []
        for case in self.cases:
            for name in {case.name, *case.aliases}:
                patterns.append((re.compile(rf"(?<![\w-]){re.escape(name)}(?![\w-])", re.IGNORECASE), case.name))
        return sorted(patterns, key=lambda p: -len(p[0].pattern))

    def _names_in(self, question: str) -> tuple[str, ...]:
        found: list[str] = []
        for pattern, name in self._names:
            if pattern.search(question) and name not in found:
                found.append(name)
        return tuple(found)

    def matching(self, query: CaseQuery, cases: list[CaseStudy] | None = None) -> list[CaseStudy]:
        """The cases a list/count query selects."""
        pool = self.cases if cases is None else cases
        out = []
        for case in pool:
            checks = [(set(case.values(f)) & v) if query.any_of else (v <= set(case.values(f))) for f, v in query.tags.items()]
            if all(checks):
                out.append(case)
        return out

    def answer(self, question: str, index: IndexView, filters: Filters | None = None) -> Answer | None:
        """A cited list or table answering a question across cases, or None for other questions.

        Citations point at the chunks of `index` (the published generation) holding each quote.
        """
        query = self.read(question)
        if query is None:
            return None
        if query.kind == "like":
            return self.like_answer(query.text, index, filters, question=question)
        pool = [c for c in self.cases if _allowed(c, filters)]
        if not pool:
            return None
        builder = _AnswerBuilder(question, self.anchors(index))
        if query.kind == "compare":
            chosen = [c for c in pool if c.name in query.names]
            if len(chosen) < 2:
                return None
            builder.intro(f"How {_join([c.name for c in chosen])} compare, from the case-study catalogue:", chosen)
            for case in chosen:
                _compare_rows(builder, case)
            return builder.build(f"Compared {len(chosen)} case studies from the catalogue.")
        matched = self.matching(query, pool)
        criteria = " and ".join(
            f"{FIELD_LABELS[f]} {(' or ' if query.any_of else ' and ').join(sorted(v))}" for f, v in query.tags.items()
        )
        if not matched:
            builder.sentences.append(
                AnswerSentence(
                    f"None of the {len(pool)} case studies in the catalogue is recorded with {criteria}.", (), "supported"
                )
            )
            return builder.build("Answered from the case-study catalogue: no case matched.", no_match=True)
        if query.tags:
            head = (
                f"{len(matched)} of the {len(pool)} case studies in the catalogue match {criteria}:"
                if query.kind == "count"
                else f"The case studies recorded with {criteria} ({len(matched)} of {len(pool)}):"
            )
        else:
            head = f"The catalogue holds {len(matched)} case studies:"
        builder.intro(head, matched)
        uncited = [case.name for case in matched if not _list_row(builder, case, query)]
        note = f"Answered from the case-study catalogue ({len(matched)} cases matched)."
        if uncited:
            note += (
                f" Not shown because the current index does not hold their quotes (run `advisor ingest`): "
                f"{', '.join(uncited)}."
            )
        return builder.build(note)

    def like_answer(
        self, situation: str, index: IndexView, filters: Filters | None = None, question: str = ""
    ) -> Answer:
        """The case studies most like a described situation, each with why, how it spread and
        where it differs, cited; a refusal when none is like it."""
        pool = [c for c in self.cases if _allowed(c, filters)]
        builder = _AnswerBuilder(question or situation, self.anchors(index), "cases_like_mine")
        matches = self.like(situation, k=5, cases=pool) if pool else []
        if not matches:
            return builder.refuse(NO_SIMILAR_CASE)
        wanted = self.vocabulary.parse_all(situation)
        named = "; ".join(f"{FIELD_LABELS[f]}: {', '.join(sorted(v))}" for f, v in wanted.items())
        builder.intro(
            f"The {len(matches)} case {'study' if len(matches) == 1 else 'studies'} most like yours"
            + (f" ({named})" if named else "")
            + ", best first:",
            [m.case for m in matches],
        )
        for match in matches:
            _like_rows(builder, match)
        return builder.build(f"Ranked {len(matches)} similar case studies from the catalogue.")

    def anchors(self, index: IndexView) -> dict[tuple[str, str], Chunk]:
        """(case name, quote) -> the indexed chunk holding the quote, cached per index generation."""
        if self._anchors is not None and self._anchors[0] == index.generation:
            return self._anchors[1]
        anchors = anchor_quotes(self.cases, list(index.chunks))
        self._anchors = (index.generation, anchors)
        return anchors


def anchor_quotes(cases: list[CaseStudy], chunks: list[Chunk]) -> dict[tuple[str, str], Chunk]:
    """(case name, quote) -> the chunk of that case study (or, failing that, report) holding it."""
    by_source: dict[str, list[tuple[Chunk, str]]] = {}
    for chunk in chunks:
        by_source.setdefault(chunk.source, []).append((chunk, normalise_space(chunk.text)))
    anchors: dict[tuple[str, str], Chunk] = {}
    for case in cases:
        candidates = by_source.get(case.source, [])
        own = [c for c in candidates if c[0].case_study == case.name]
        for e in case.evidence:
            hit = next((c for c, t in own if e.quote in t), None) or next((c for c, t in candidates if e.quote in t), None)
            if hit is not None:
                anchors[(case.name, e.quote)] = hit
    return anchors


# ---- answer composition ----------------------------------------------------------------
class _AnswerBuilder:
    """Collects cited rows (one marker per quote) into an `Answer` routed through the catalogue."""

    def __init__(
        self, question: str, anchors: dict[tuple[str, str], Chunk], route: Route = "catalogue"
    ) -> None:
        self.question = question
        self.anchors = anchors
        self.route = route
        self.rows: list[CaseRow] = []
        self.citations: list[Citation] = []
        self.passages: dict[str, Passage] = {}
        self.sentences: list[AnswerSentence] = []
        self._intro: int | None = None
        self.lines: list[str] = []

    def cite(self, case: CaseStudy, evidence: Evidence) -> int | None:
        """The marker for a quote (reused when cited twice), or None if no chunk holds it."""
        chunk = self.anchors.get((case.name, evidence.quote))
        if chunk is None:
            return None
        for c in self.citations:
            if c.passage.chunk.id == chunk.id and c.quote == evidence.quote:
                return c.marker
        if chunk.id not in self.passages:
            self.passages[chunk.id] = Passage(chunk, 1.0, len(self.passages) + 1)
        marker = len(self.citations) + 1
        self.citations.append(Citation(marker, self.passages[chunk.id], evidence.quote))
        return marker

    def intro(self, text: str, cases: list[CaseStudy]) -> None:
        self._intro = len(self.sentences)
        self.sentences.append(AnswerSentence(text, (), "supported"))
        self.lines.append(text)

    def row(self, text: str, cited: list[tuple[CaseStudy, Evidence]]) -> bool:
        """Add one row; its markers are the citations of the quotes it rests on."""
        markers = tuple(dict.fromkeys(m for m in (self.cite(c, e) for c, e in cited) if m is not None))
        if not markers:
            return False  # never show a row whose evidence cannot be cited
        self.sentences.append(AnswerSentence(text, markers, "supported"))
        self.rows.append(CaseRow(cited[0][0].name, text, markers))
        self.lines.append(f"- {text} " + "".join(f"[{m}]" for m in markers))
        return True

    def build(self, note: str, no_match: bool = False) -> Answer:
        sentences = list(self.sentences)
        heading = self.sentences[self._intro].text if self._intro is not None else ""
        if self._intro is not None:
            # the heading rests on the rows beneath it
            every = tuple(c.marker for c in self.citations)
            head = sentences[self._intro]
            sentences[self._intro] = replace(head, markers=every)
            self.lines[0] = head.text
        text = "\n".join(self.lines) if self.lines else sentences[0].text
        return Answer(
            question=self.question,
            text=text,
            citations=tuple(self.citations),
            passages=tuple(self.passages.values()),
            refused=False,
            query=self.question,
            sentences=tuple(s for s in sentences if s.markers) if not no_match else (),
            notes=(note,),
            route=self.route,
            heading=heading,
            rows=tuple(self.rows),
        )

    def refuse(self, text: str) -> Answer:
        return Answer(
            question=self.question,
            text=text,
            citations=(),
            passages=(),
            refused=True,
            query=self.question,
            notes=("Answered from the case-study catalogue.",),
            route=self.route,
        )


def _quote(e: Evidence, limit: int = 160) -> str:
    q = e.quote
    if q.startswith("“") and q.rstrip(".").endswith("”"):
        q = q[1:].rstrip(".")[:-1]  # a quotation in the report: show it once quoted
    q = q if len(q) <= limit else q[:limit].rsplit(" ", 1)[0] + " …"
    return f"“{q}”"


def _list_row(builder: _AnswerBuilder, case: CaseStudy, query: CaseQuery) -> bool:
    cited: list[tuple[CaseStudy, Evidence]] = []
    parts = []
    for f, values in query.tags.items():
        for value in sorted(set(case.values(f)) & values):
            e = case.evidence_for(f, value)[0]
            cited.append((case, e))
            parts.append(f"{value}: {_quote(e)}")
    if not parts:
        e = case.evidence_for("description")[0]
        cited.append((case, e))
        parts.append(e.value)
    return builder.row(f"{case.name} ({case.report}) — " + "; ".join(parts), cited)


def _compare_rows(builder: _AnswerBuilder, case: CaseStudy) -> None:
    description = case.evidence_for("description")[0]
    builder.row(f"{case.name} ({case.report}): {description.value}", [(case, description)])
    for f in ("innovation_type", "setting", "organisation_type", "scale", "mechanism", "evidence_type", "barrier"):
        items = case.evidence_for(f)
        if not items:
            continue
        firsts = {}
        for e in items:
            firsts.setdefault(e.value, e)
        values = "; ".join(
            f"{e.value} ({e.year})" if e.year else e.value for e in firsts.values()
        )
        builder.row(f"{case.name}, {FIELD_LABELS[f]}: {values}", [(case, e) for e in firsts.values()])


def _like_rows(builder: _AnswerBuilder, match: CaseMatch) -> None:
    case = match.case
    description = case.evidence_for("description")[0]
    shared = [e for e in match.citations if e.field in TAG_FIELDS and f"{FIELD_LABELS[e.field]}: {e.value}" in match.reasons]
    head = f"{case.name} ({case.report}, score {match.score:.2f}): {description.value}"
    if shared:
        head += " In common: " + ", ".join(f"{FIELD_LABELS[e.field]} {e.value}" for e in shared) + "."
    builder.row(head, [(case, description), *((case, e) for e in shared)])
    spread = case.evidence_for("mechanism")[:3]
    if spread:
        builder.row(
            f"How {case.name} spread: " + "; ".join(f"{e.value} — {_quote(e, 120)}" for e in spread),
            [(case, e) for e in spread],
        )
    diffs = [e for e in match.citations if e.field in ("innovation_type", "setting", "organisation_type") and e not in shared]
    if diffs:
        builder.row(
            f"Where {case.name} differs: " + "; ".join(d for d in match.differences if "does not say" not in d),
            [(case, e) for e in diffs],
        )


def _allowed(case: CaseStudy, filters: Filters | None) -> bool:
    if not filters:
        return True
    if filters.sources and case.source not in filters.sources:
        return False
    if filters.case_studies and case.name not in filters.case_studies:
        return False
    return True


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _innovations_as_cases(question: str, found) -> str:
    """The question's shape: innovation-type phrases read as "innovations" ("which digital tools"),
    other vocabulary phrases as a neutral word, so "what national programmes are there?" does
    not ask for cases."""
    out, at = [], 0
    for (a, b), targets in found:
        kind = "innovations" if any(f == "innovation_type" for f, _ in targets) else "criterion"
        out += [question[at:a], kind]
        at = b
    return "".join(out) + question[at:]


def _example_clauses(question: str, found) -> list[tuple[int, int]]:
    """Spans of "such as ..." lists that follow a vocabulary phrase (examples of that criterion)."""
    return [
        m.span()
        for m in _EXAMPLES.finditer(question)
        if any(b <= m.start() and not re.search(r"[.?!;]", question[b : m.start()]) for (_, b), _ in found)
    ]


def _is_barrier_or_evidence_cue(word: str) -> bool:
    return bool(_BARRIER_CUES.fullmatch(word) or _EVIDENCE_CUES.fullmatch(word))


def _profile(case: CaseStudy) -> str:
    """What "cases like mine" compares a description with: the case in a few sentences."""
    tags = "; ".join(f"{FIELD_LABELS[f]}: {', '.join(v)}" for f, v in case.tags.items() if v and f != "evidence_type")
    return f"{case.name}. {case.description} {tags}."


# ---- serving the catalogue ---------------------------------------------------------------
class CatalogueLoader:
    """Loads the catalogue and keeps serving the last good one when a reload finds it broken."""

    def __init__(self, corpus_dir: Path, embedder: Any = None) -> None:
        self.corpus_dir = Path(corpus_dir)
        self.embedder = embedder
        self.current: CaseCatalogue | None = None
        self.error: str | None = None

    def reload(self) -> CaseCatalogue | None:
        """Read the catalogue again; on error log it, remember it and keep the previous one."""
        if not (self.corpus_dir / CATALOGUE_NAME).exists():
            self.error = None
            return self.current
        try:
            self.current = CaseCatalogue.load(self.corpus_dir, self.embedder)
            self.error = None
        except CatalogueError as exc:
            self.error = str(exc)
            kept = "the previous catalogue keeps serving" if self.current else "no catalogue is served"
            log.error("case-study catalogue not loaded (%s): %s", kept, exc)
        return self.current
