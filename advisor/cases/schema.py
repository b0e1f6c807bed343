"""The shapes of corpus/case_studies.yaml and its vocabulary file, validated with pydantic.

`parse_vocabulary` and `parse_catalogue` check what the files alone can tell: the shape of
every entry, known fields, tags from the vocabulary, quotes of at least `MIN_QUOTE_WORDS`
words, years as years. A failure raises `CatalogueError` whose message locates the problem
from pydantic's error location, naming the entry and the field:
"case_studies.yaml, case 7 ('Lantum'), evidence 4 (field 'setting'): unknown tag 'hospital'; ...".
What needs the reports (is the quote inside its case study, on the line given) is checked by
`advisor.cases.loading`, with the same locations (`case_location`, `evidence_location`).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from advisor.cases.model import FIELDS, TAG_FIELDS, Term
from advisor.errors import CatalogueError
from advisor.validation import field_problem, message

MIN_QUOTE_WORDS = 3
MAX_REPORTED = 10  # problems listed in one error; the rest are counted

Text = Annotated[StrictStr, StringConstraints(min_length=1)]
Value = Annotated[StrictStr, StringConstraints(strip_whitespace=True, min_length=1)]


class _Entry(BaseModel):
    # keys the loader does not read (the file's `version`, notes) are allowed and ignored
    model_config = ConfigDict(extra="ignore", frozen=True)


def _none_as_empty(value: Any) -> Any:
    return [] if value is None else value


Listed = Annotated[list[StrictStr], BeforeValidator(_none_as_empty)]  # a list; empty when left blank


# ---- the case-study catalogue ------------------------------------------------------------
class EvidenceEntry(_Entry):
    """One `evidence:` item: a field value and the verbatim quote supporting it."""

    field: StrictStr
    value: Value
    quote: StrictStr
    line: Annotated[StrictInt, Field(ge=1)] | None = None  # checked against the report by the loader
    year: Annotated[StrictInt, Field(ge=1900, le=2100)] | None = None

    @field_validator("field")
    @classmethod
    def _known_field(cls, name: str) -> str:
        if name not in FIELDS:
            raise ValueError(f"unknown field; expected one of {list(FIELDS)}")
        return name

    @field_validator("quote")
    @classmethod
    def _long_enough(cls, quote: str) -> str:
        if len(quote.split()) < MIN_QUOTE_WORDS:
            raise ValueError(f"'quote' must be a verbatim passage of {MIN_QUOTE_WORDS}+ words")
        return quote

    @model_validator(mode="after")
    def _known_tag(self, info: ValidationInfo) -> EvidenceEntry:
        vocabulary = (info.context or {}).get("vocabulary")
        if vocabulary is not None and self.field in TAG_FIELDS and (self.field, self.value) not in vocabulary:
            raise ValueError(
                f"unknown tag {self.value!r}; the vocabulary for {self.field} is: "
                f"{', '.join(vocabulary.values(self.field))}"
            )
        return self


class CaseEntry(_Entry):
    """One entry of `cases:`: a case study, where it is, and its evidence."""

    name: Text
    source: Text  # corpus file name
    section: Text
    evidence: Annotated[list[EvidenceEntry], Field(min_length=1)]
    aliases: Listed = []

    @model_validator(mode="after")
    def _described(self) -> CaseEntry:
        if not any(e.field == "description" for e in self.evidence):
            raise ValueError("field 'description' is missing (every case needs one)")
        return self


class CatalogueFile(_Entry):
    """corpus/case_studies.yaml."""

    cases: Annotated[list[CaseEntry], Field(min_length=1)]


def parse_catalogue(data: Any, vocabulary: Any, file_name: str) -> CatalogueFile:
    """The catalogue file's entries, validated (tags against `vocabulary`); CatalogueError if not."""
    try:
        return CatalogueFile.model_validate(data, context={"vocabulary": vocabulary})
    except ValidationError as exc:
        raise CatalogueError(
            _report([_catalogue_problem(e, data, file_name) for e in exc.errors()])
        ) from None


def case_location(file_name: str, n: int, name: Any) -> str:
    """Where an entry is: "case_studies.yaml, case 7 ('Lantum')" (1-based)."""
    return f"{file_name}, case {n} ({name!r})" if name else f"{file_name}, case {n}"


def evidence_location(case: str, n: int, field: Any) -> str:
    """Where an evidence item of an entry is: "..., evidence 4 (field 'setting')" (1-based)."""
    return f"{case}, evidence {n} (field {field!r})"


def _catalogue_problem(error: Any, data: Any, file_name: str) -> str:
    loc, kind = error["loc"], error["type"]
    if len(loc) < 2:  # the file itself, or its `cases:` list
        return f"{file_name}: expected a top-level 'cases:' list"
    entry = data["cases"][loc[1]]
    where = case_location(file_name, loc[1] + 1, entry.get("name") if isinstance(entry, dict) else None)
    rest = loc[2:]
    if not rest:
        if kind == "model_type":
            return f"{where}: expected a mapping with name, source, section and evidence"
        return f"{where}: {message(error)}"
    if rest[0] == "evidence" and len(rest) > 1:
        item = entry["evidence"][rest[1]]
        if not isinstance(item, dict):
            return f"{where}, evidence {rest[1] + 1}: expected a mapping with field, value and quote"
        where = evidence_location(where, rest[1] + 1, item.get("field"))
        rest = rest[2:]
        if not rest or kind == "value_error":
            return f"{where}: {message(error)}"
        return f"{where}: {field_problem(rest, error)}"
    if kind == "value_error":
        return f"{where}: {message(error)}"
    return f"{where}: field {field_problem(rest, error)}"


# ---- the vocabularies ----------------------------------------------------------------------
class TermSpec(_Entry):
    """One value of a controlled vocabulary."""

    description: StrictStr = ""
    synonyms: Listed = []
    generic: Listed = []  # words naming the value only when they stand alone


Values = Annotated[dict[StrictStr, TermSpec | None], Field(min_length=1)]


class VocabularyFile(BaseModel):
    """corpus/case_studies_vocabulary.yaml: every tag field with its values."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    innovation_type: Values
    setting: Values
    organisation_type: Values
    mechanism: Values
    evidence_type: Values
    barrier: Values

    def terms(self) -> list[Term]:
        return [
            Term(field, value, spec.description, tuple(spec.synonyms), tuple(spec.generic))
            for field in TAG_FIELDS
            for value, spec in ((v, s or TermSpec()) for v, s in getattr(self, field).items())
        ]


assert tuple(VocabularyFile.model_fields) == TAG_FIELDS


def parse_vocabulary(data: Any, file_name: str) -> list[Term]:
    """The vocabulary file's terms, validated; CatalogueError naming the field and value if not."""
    try:
        return VocabularyFile.model_validate(data).terms()
    except ValidationError as exc:
        raise CatalogueError(_report([_vocabulary_problem(e, file_name) for e in exc.errors()])) from None


def _vocabulary_problem(error: Any, file_name: str) -> str:
    loc, kind = error["loc"], error["type"]
    if not loc:
        return f"{file_name}: expected a mapping of tag fields to their values"
    if kind == "extra_forbidden":
        return f"{file_name}: unknown tag field {loc[0]!r}; expected one of {list(TAG_FIELDS)}"
    if len(loc) == 1:
        return f"{file_name}: field {loc[0]!r} needs a mapping of values"
    where = f"{file_name}: {loc[0]} value {loc[1]!r}"
    if len(loc) == 2 or kind == "model_type":
        return f"{where}: expected description and synonyms"
    return f"{where}: {field_problem(loc[2:], error)}"


# ---- messages --------------------------------------------------------------------------
def _report(problems: list[str]) -> str:
    """The problems, one a line, the first ones only when there are many."""
    problems = list(dict.fromkeys(problems))
    shown = problems[:MAX_REPORTED]
    if len(problems) > len(shown):
        shown.append(f"... and {len(problems) - len(shown)} more")
    return "\n".join(shown)
