"""Question sets: JSONL rows validated by pydantic, each problem named by file, line and field.

A set file uses ragas' field names (`id`, `user_input`, `reference`, `reference_contexts`,
`sources`) and three of our own (`kind`, `sort`, `expected_cases`); only `id` and `user_input`
are required. A row is checked against the corpus as it loads: its sources must be reports of
the corpus, its quotes must be in them (white space folded, as the reports are hard-wrapped), and
its expected cases must be names in the case-study catalogue. Strict loading stops at the first
bad line; lenient loading skips it with a warning that counts.
"""

from __future__ import annotations

import json
import typing as t
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator

from advisor.errors import AdvisorError
from advisor.evaluation.cases import CaseNames
from advisor.text import normalise_space

Kind = t.Literal["fact", "case_study", "advice", "multi_doc", "out_of_scope", "aggregate", "cases_like_mine"]
# why an out-of-scope question is out of scope
Sort = t.Literal["near_miss", "missing_detail", "off_topic"]
KINDS: tuple[str, ...] = t.get_args(Kind)
SORTS: tuple[str, ...] = t.get_args(Sort)


class EvalSetError(AdvisorError):
    """A question set file is malformed; the message names the file and line."""


class EvalItem(BaseModel):
    """One question of a set, with whatever reference material it carries.

    Validated against the corpus when `load_eval_set` passes one in its validation context
    (`{"corpus": ...}`); built directly (in tests), only the field types are checked.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    user_input: str
    reference: str | None = None
    sources: tuple[str, ...] = ()
    reference_contexts: tuple[str, ...] | None = None  # quotes from the sources a good answer rests on
    kind: Kind | None = None
    sort: Sort | None = None  # out_of_scope rows: near_miss, missing_detail or off_topic
    expected_cases: tuple[str, ...] | None = None  # catalogue names of the cases a good answer names
    # questions across cases: the catalogue value asked about, {"field": ..., "value": ...}
    # (two joined by "+"); fits the reading of conditions (`advisor calibrate --what cases`)
    target: dict[str, str] | None = None
    line: int = 0  # where the row is in its file (set by the loader)

    @field_validator("id", "user_input")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("missing or empty")
        return value

    @field_validator("reference", "sources", mode="before")
    @classmethod
    def _empty_is_absent(cls, value: t.Any, info: ValidationInfo) -> t.Any:
        if value is None or value == "" or value == []:
            return () if info.field_name == "sources" else None
        return value

    @field_validator("sources")
    @classmethod
    def _sources_in_corpus(cls, sources: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        corpus = _corpus(info)
        for name in sources if corpus else ():
            if corpus.text(name) is None:
                raise ValueError(f"source {name!r} is not in the corpus")
        return sources

    @field_validator("reference_contexts")
    @classmethod
    def _quotes_in_sources(
        cls, quotes: tuple[str, ...] | None, info: ValidationInfo
    ) -> tuple[str, ...] | None:
        if not quotes:
            return None
        corpus, sources = _corpus(info), info.data.get("sources")
        if corpus and sources:  # absent when the sources themselves failed
            for quote in quotes:
                if not any(normalise_space(quote) in (corpus.text(n) or "") for n in sources):
                    raise ValueError(f"quote not found in {', '.join(sources)}: {quote[:80]!r}")
        return quotes

    @field_validator("sort")
    @classmethod
    def _sort_for_out_of_scope(cls, sort: str | None, info: ValidationInfo) -> str | None:
        kind = info.data.get("kind", "out_of_scope")  # a kind that failed is reported on its own
        if sort is not None and kind != "out_of_scope":
            raise ValueError(f"sort is for out_of_scope rows only (this row's kind is {kind!r})")
        return sort

    @field_validator("expected_cases")
    @classmethod
    def _catalogue_names(
        cls, expected: tuple[str, ...] | None, info: ValidationInfo
    ) -> tuple[str, ...] | None:
        if expected is None:
            return None
        if not expected:
            raise ValueError("expected_cases must be a non-empty list of case study names")
        corpus = _corpus(info)
        names = corpus.case_names if corpus else None
        for name in expected if names else ():
            if name not in names.cases:
                hint = names.canonical(name)
                raise ValueError(
                    f"expected case {name!r} is not in the case-study catalogue"
                    + (f" (its name there is {hint!r})" if hint else "")
                )
        if len(set(expected)) != len(expected):
            raise ValueError("expected_cases names a case twice")
        return expected


@dataclass
class LoadedSet:
    items: list[EvalItem]
    warnings: list[str] = field(default_factory=list)
    case_names: CaseNames | None = None  # the catalogue's names, when a row has expected_cases


class _Corpus:
    """What rows are checked against: the reports' texts and the catalogue, each read when first needed."""

    def __init__(self, corpus_dir: Path) -> None:
        self.dir = Path(corpus_dir)
        self._texts: dict[str, str] = {}

    def text(self, name: str) -> str | None:
        """A report's text, white space folded; None when the corpus has no such report."""
        if name not in self._texts:
            file = self.dir / name
            self._texts[name] = normalise_space(file.read_text(encoding="utf-8")) if file.exists() else ""
        return self._texts[name] or None

    @cached_property
    def case_names(self) -> CaseNames:
        """The catalogue's names (EvalSetError, which stops even a lenient load, if it does not load)."""
        try:
            return CaseNames.from_corpus(self.dir)
        except AdvisorError as exc:
            raise EvalSetError(
                f"expected_cases need the case-study catalogue, which does not load: {exc}"
            ) from exc


def _corpus(info: ValidationInfo) -> _Corpus | None:
    return (info.context or {}).get("corpus")


def load_eval_set(path: Path, corpus_dir: Path, lenient: bool = False) -> LoadedSet:
    """Read and validate a set file; strict mode stops at the first problem, naming file:line."""
    path = Path(path)
    if not path.exists():
        raise EvalSetError(f"No such question set: {path}")
    corpus = _Corpus(corpus_dir)
    items: list[EvalItem] = []
    warnings: list[str] = []
    seen: set[str] = set()
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip():
            continue
        item, problem = _parse_line(raw, corpus, seen)
        if problem:
            where = f"{path}:{number}"
            if not lenient:
                raise EvalSetError(f"{where}: {problem}")
            warnings.append(f"{where}: {problem} (skipped)")
            continue
        seen.add(item.id)
        items.append(item.model_copy(update={"line": number}))
    if not items:
        raise EvalSetError(f"{path}: no usable questions")
    has_cases = any(item.expected_cases for item in items)
    return LoadedSet(items, warnings, corpus.case_names if has_cases else None)


def _parse_line(raw: str, corpus: _Corpus, seen: set[str]) -> tuple[EvalItem | None, str | None]:
    """(the row, None) or (None, what is wrong with it: 'field: message; ...')."""
    try:
        row = json.loads(raw)
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON ({exc.msg})"
    if isinstance(row, dict) and "line" in row:
        row = {k: v for k, v in row.items() if k != "line"}  # the loader's field, not the file's
    try:
        item = EvalItem.model_validate(row, context={"corpus": corpus})
    except ValidationError as exc:
        return None, "; ".join(_problem(error) for error in exc.errors())
    if item.id in seen:
        return None, f"id: duplicate id {item.id!r}"
    return item, None


# pydantic's words for a wrong type, in the words of a JSON file
_TYPE_MESSAGES = {
    "missing": "missing or empty",
    "string_type": "must be a string",
    "tuple_type": "must be a list",
    "model_type": "each line must be a JSON object",
}


def _problem(error: dict) -> str:
    """One validation error as 'field: message' (a list item as 'field[i]')."""
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"]).lstrip(".")
    if error["type"] == "literal_error":
        message = f"unknown {where} {error['input']!r} (expected {error['ctx']['expected']})"
    else:
        message = _TYPE_MESSAGES.get(error["type"], error["msg"].removeprefix("Value error, "))
    return f"{where}: {message}" if where else message
