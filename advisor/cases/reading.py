"""Reading a question as one across cases: list, count, compare or "cases like mine".

A question is read as one across cases only when it asks for cases ("which innovations ...",
"how many of the case studies ...", "list the cases ...", "examples of innovations that ...")
and everything it asks about them is a vocabulary value; any other criterion ("failed",
"reduced admissions") leaves it to the passages, as do advice questions that merely mention
a value ("What role do clinical champions play?"). Offline and rule-based: patterns for the
question's shape and word lists for what may stand around its criteria.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from advisor.cases.model import CaseQuery, CaseStudy
from advisor.cases.vocabulary import Found, Vocabulary
from advisor.text import stem

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
_BARRIER_CUES = re.compile(
    r"\b(?:barriers?|obstacles?|challenges?|struggl\w*|problems?|difficult\w*|hinder\w*|blocked)\b",
    re.IGNORECASE,
)
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
    find programs organisations organizations technologies interventions initiatives""".split()  # noqa: SIM905 - a word list reads better as prose
)
# Words that tie a case to a criterion ("got a boost from", "taken up in", "evidence behind
# them", "to win over"): allowed once the question names a criterion, not on their own.
_RELATION = frozenset(
    """after backed backing before behind benefit benefited benefitting benefitted boost boosted
    boosts both came come comes convince convinced dedicated different drive driven drove during
    encourage encouraged engage engaged gained gaining given help helping helps independent local
    new once other others over own part persuade persuaded receive received saw see seen separate
    set sets setting settings support supported supporting taken taking thanks then uptake up when
    where while win won""".split()  # noqa: SIM905 - a word list reads better as prose
)
_WORD = re.compile(r"[A-Za-z][A-Za-z'’-]*")


class QuestionReader:
    """Reads questions across cases against a vocabulary and the names of the catalogued cases."""

    def __init__(self, vocabulary: Vocabulary, cases: list[CaseStudy]) -> None:
        self.vocabulary = vocabulary
        self._names = _name_patterns(cases)

    def read(self, question: str) -> CaseQuery | None:
        """What a question across cases asks, or None when it is not one (offline, rule-based)."""
        like = _LIKE.search(question)
        if like:
            text = question[like.end() :].lstrip(" :,-–—.?") or question[: like.start()]
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
        prefer = [
            f
            for f, cue in (("barrier", _BARRIER_CUES), ("evidence_type", _EVIDENCE_CUES))
            if cue.search(question)
        ]
        prefer.append("organisation_type" if _LED_BY.search(question) else "mechanism")
        tags = self.vocabulary.choose(found, prefer)
        if self._leftover(question, tags, examples):
            return None  # a criterion the catalogue does not record: leave it to the passages
        if not tags and not (count or _LIST.search(shape) or _ALL_CASES.search(shape)):
            return None
        any_of = bool(re.search(r"\bor\b", question, re.IGNORECASE)) and any(
            len(v) > 1 for v in tags.values()
        )
        return CaseQuery("count" if count else "list", tags=tags, any_of=any_of)

    def _leftover(
        self,
        question: str,
        tags: dict[str, frozenset[str]] | None = None,
        skip: Iterable[tuple[int, int]] = (),
    ) -> list[str]:
        """The words of a question that are neither vocabulary phrases nor words around criteria.

        Once the question names criteria, words tying a case to them (`_RELATION`) and words of
        the criteria's own descriptions ("clinical champions ... to win over other clinicians")
        add nothing; `skip` spans (example lists) are not read.
        """
        text = question
        for a, b in skip:
            text = text[:a] + " " * (b - a) + text[b:]
        for pattern in self.vocabulary.patterns:  # every phrase, overlapping ones too
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

    def _names_in(self, question: str) -> tuple[str, ...]:
        """The cases a question names (by name or alias), in order of pattern length."""
        found: list[str] = []
        for pattern, name in self._names:
            if pattern.search(question) and name not in found:
                found.append(name)
        return tuple(found)


def _name_patterns(cases: list[CaseStudy]) -> list[tuple[re.Pattern, str]]:
    """A pattern for every name and alias of the cases, longest first."""
    patterns = []
    for case in cases:
        for name in {case.name, *case.aliases}:
            patterns.append((re.compile(rf"(?<![\w-]){re.escape(name)}(?![\w-])", re.IGNORECASE), case.name))
    return sorted(patterns, key=lambda p: -len(p[0].pattern))


def _innovations_as_cases(question: str, found: list[Found]) -> str:
    """The question's shape: innovation-type phrases read as "innovations" ("which digital tools"),
    other vocabulary phrases as a neutral word, so "what national programmes are there?" does
    not ask for cases."""
    out, at = [], 0
    for (a, b), targets in found:
        kind = "innovations" if any(f == "innovation_type" for f, _ in targets) else "criterion"
        out += [question[at:a], kind]
        at = b
    return "".join(out) + question[at:]


def _example_clauses(question: str, found: list[Found]) -> list[tuple[int, int]]:
    """Spans of "such as ..." lists that follow a vocabulary phrase (examples of that criterion)."""
    return [
        m.span()
        for m in _EXAMPLES.finditer(question)
        if any(b <= m.start() and not re.search(r"[.?!;]", question[b : m.start()]) for (_, b), _ in found)
    ]


def _is_barrier_or_evidence_cue(word: str) -> bool:
    return bool(_BARRIER_CUES.fullmatch(word) or _EVIDENCE_CUES.fullmatch(word))
