"""Evaluation stage: a question set -> the advisor's answers -> ragas metrics -> a summary.

Set files are JSONL with ragas' field names (`id`, `user_input`, `reference`,
`reference_contexts`, `sources`, `kind`); only `id` and `user_input` are required. A metric
that needs a missing field is skipped for that row and counted. Runs are resumable: every
answered question is appended to `records.jsonl` at once, and a re-run with the same output
folder continues where it stopped. Metrics go through ragas' `evaluate()`: its non-LLM
context recall and precision, semantic similarity with the local embedding model, ROUGE,
and metrics of our own written as ragas metrics (evidence recall@k, citation faithfulness,
refusal accuracy, and for questions across case studies case recall, case precision, hit@3
and recall@5 against the row's `expected_cases`). Nothing reaches the network unless `--judge`
is asked for.

Questions across case studies are also put to the same advisor with its case-study catalogue
switched off (`catalogue_off`), where the cases "named" are the case studies of the top-k
passages: the comparison the report shows as catalogue vs passage retrieval.
"""

from __future__ import annotations

import json
import math
import os
import re
import statistics
import typing as t
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Callable

from advisor.errors import AdvisorError
from advisor.text import QUOTE_MATCH_MIN, fold, normalise_space, quote_found, quote_found_exact  # noqa: F401 - re-exported

os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")

KINDS = ("fact", "case_study", "advice", "multi_doc", "out_of_scope", "aggregate", "cases_like_mine")
# why an out-of-scope question is out of scope (the `sort` field; test split, issue 12)
SORTS = ("near_miss", "missing_detail", "off_topic")
CASE_KINDS = ("aggregate", "cases_like_mine")  # questions across case studies, scored by `expected_cases`
# the runs compared on them: the advisor as served, the same advisor with its catalogue off, the tutorial RAG
CASE_RUNS = {"advisor": "advisor (catalogue)", "passages": "passage retrieval (top-k case studies)",
             "baseline": "baseline (top-k case studies)"}
RECORDS = "records.jsonl"
RESULTS = "results.jsonl"
SUMMARY = "summary.json"


class EvalSetError(AdvisorError):
    """A question set file is malformed; the message names the file and line."""


def normalise(text: str) -> str:
    """White space folded: quotes are checked against the corpus this way (hard wraps)."""
    return normalise_space(text)


@dataclass(frozen=True)
class EvalItem:
    """One question of a set, with whatever reference material it carries."""

    id: str
    user_input: str
    reference: str | None = None
    reference_contexts: tuple[str, ...] | None = None
    sources: tuple[str, ...] = ()
    kind: str | None = None
    line: int = 0
    expected_cases: tuple[str, ...] | None = None  # catalogue names of the cases a good answer names
    sort: str | None = None  # out_of_scope rows: near_miss, missing_detail or off_topic


@dataclass
class LoadedSet:
    items: list[EvalItem]
    warnings: list[str] = field(default_factory=list)
    case_names: CaseNames | None = None  # the catalogue's names, when a row has expected_cases


def load_eval_set(path: Path, corpus_dir: Path, lenient: bool = False) -> LoadedSet:
    """Read and validate a set file; strict mode stops at the first problem, naming file:line."""
    path = Path(path)
    if not path.exists():
        raise EvalSetError(f"No such question set: {path}")
    texts: dict[str, str] = {}
    items: list[EvalItem] = []
    warnings: list[str] = []
    seen: set[str] = set()
    catalogue: list[CaseNames] = []

    def case_names() -> CaseNames:
        if not catalogue:
            catalogue.append(CaseNames.from_corpus(corpus_dir))
        return catalogue[0]

    def corpus_text(name: str) -> str | None:
        if name not in texts:
            file = Path(corpus_dir) / name
            texts[name] = normalise(file.read_text(encoding="utf-8")) if file.exists() else ""
        return texts[name] or None

    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip():
            continue
        where = f"{path}:{number}"
        try:
            problem, item = _parse_line(raw, number, corpus_text, seen, case_names)
        except ValueError as exc:
            problem, item = str(exc), None
        if problem:
            if not lenient:
                raise EvalSetError(f"{where}: {problem}")
            warnings.append(f"{where}: {problem} (skipped)")
            continue
        seen.add(item.id)
        items.append(item)
    if not items:
        raise EvalSetError(f"{path}: no usable questions")
    return LoadedSet(items, warnings, catalogue[0] if catalogue else None)


def _parse_line(raw: str, number: int, corpus_text, seen: set[str], case_names) -> tuple[str | None, EvalItem | None]:
    try:
        row = json.loads(raw)
    except json.JSONDecodeError as exc:
        return f"not valid JSON ({exc.msg})", None
    if not isinstance(row, dict):
        return "each line must be a JSON object", None
    for key in ("id", "user_input"):
        if not isinstance(row.get(key), str) or not row[key].strip():
            return f"missing or empty field {key!r}", None
    if row["id"] in seen:
        return f"duplicate id {row['id']!r}", None
    kind = row.get("kind")
    if kind is not None and kind not in KINDS:
        return f"unknown kind {kind!r} (expected one of {', '.join(KINDS)})", None
    sort = row.get("sort")
    if sort is not None:
        if sort not in SORTS:
            return f"unknown sort {sort!r} (expected one of {', '.join(SORTS)})", None
        if kind != "out_of_scope":
            return f"sort is for out_of_scope rows only (this row's kind is {kind!r})", None
    sources = row.get("sources") or []
    contexts = row.get("reference_contexts")
    if contexts is not None:
        if not isinstance(contexts, list) or not all(isinstance(c, str) for c in contexts):
            return "reference_contexts must be a list of strings", None
        for name in sources:
            if corpus_text(name) is None:
                return f"source {name!r} is not in the corpus", None
        for quote in contexts:
            if sources and not any(normalise(quote) in (corpus_text(n) or "") for n in sources):
                return f"quote not found in {', '.join(sources)}: {quote[:80]!r}", None
    expected = row.get("expected_cases")
    if expected is not None:
        if not isinstance(expected, list) or not expected or not all(isinstance(c, str) for c in expected):
            return "expected_cases must be a non-empty list of case study names", None
        names = case_names()
        for name in expected:
            if name not in names.cases:
                hint = names.canonical(name)
                return (f"expected case {name!r} is not in the case-study catalogue"
                        + (f" (its name there is {hint!r})" if hint else "")), None
        if len(set(expected)) != len(expected):
            return "expected_cases names a case twice", None
    return None, EvalItem(
        id=row["id"],
        user_input=row["user_input"],
        reference=row.get("reference") or None,
        reference_contexts=tuple(contexts) if contexts else None,
        sources=tuple(sources),
        kind=kind,
        line=number,
        expected_cases=tuple(expected) if expected else None,
        sort=sort,
    )


# ---- custom ragas metrics -----------------------------------------------------------
@cache  # defined once: `score` and `case_metrics` both ask for them
def _ragas_metric_classes():
    """Our metrics as ragas metric classes (ragas is imported only when evaluating)."""
    from ragas.metrics.base import MetricType, SingleTurnMetric

    @dataclass
    class EvidenceRecallAtK(SingleTurnMetric):
        """Share of the reference quotes found inside the top-k retrieved passages."""

        name: str = "evidence_recall_at_k"
        k: int = 5
        _required_columns: t.Dict[MetricType, t.Set[str]] = field(
            default_factory=lambda: {MetricType.SINGLE_TURN: {"retrieved_contexts", "reference_contexts"}}
        )

        def init(self, run_config) -> None:
            pass

        async def _single_turn_ascore(self, sample, callbacks) -> float:
            return evidence_recall(sample.reference_contexts, sample.retrieved_contexts[: self.k])

    @dataclass
    class CitationFaithfulness(SingleTurnMetric):
        """Share of answer sentences supported by the passages their markers cite."""

        name: str = "citation_faithfulness"
        records: dict[str, dict] = field(default_factory=dict)
        _required_columns: t.Dict[MetricType, t.Set[str]] = field(
            default_factory=lambda: {MetricType.SINGLE_TURN: {"user_input", "response"}}
        )

        def init(self, run_config) -> None:
            pass

        async def _single_turn_ascore(self, sample, callbacks) -> float:
            return citation_faithfulness(self.records[sample.user_input])

    @dataclass
    class RefusalAccuracy(SingleTurnMetric):
        """1 when the advisor refused exactly the questions the reports do not cover."""

        name: str = "refusal_accuracy"
        records: dict[str, dict] = field(default_factory=dict)
        kinds: dict[str, str | None] = field(default_factory=dict)
        needs_kind: t.ClassVar[bool] = True  # rows without a kind are skipped and counted
        _required_columns: t.Dict[MetricType, t.Set[str]] = field(
            default_factory=lambda: {MetricType.SINGLE_TURN: {"user_input"}}
        )

        def init(self, run_config) -> None:
            pass

        async def _single_turn_ascore(self, sample, callbacks) -> float:
            kind = self.kinds.get(sample.user_input)
            if kind is None:
                return math.nan
            refused = bool(self.records[sample.user_input]["refused"])
            return float(refused == (kind == "out_of_scope"))

    @dataclass
    class CaseMetric(SingleTurnMetric):
        """One of CASE_METRICS: the cases an answer named against the row's expected cases."""

        name: str = "case_recall"
        named: dict[str, list[str]] = field(default_factory=dict)  # question -> cases named, in order
        expected: dict[str, tuple[str, ...]] = field(default_factory=dict)
        kinds: tuple[str, ...] = CASE_KINDS  # rows of other kinds are skipped
        _required_columns: t.Dict[MetricType, t.Set[str]] = field(
            default_factory=lambda: {MetricType.SINGLE_TURN: {"user_input"}}
        )

        def init(self, run_config) -> None:
            pass

        def wants(self, item: EvalItem) -> bool:
            return bool(item.expected_cases) and item.kind in self.kinds

        async def _single_turn_ascore(self, sample, callbacks) -> float:
            score, _ = _CASE_SCORES[self.name]
            return score(self.named[sample.user_input], self.expected[sample.user_input])

    @dataclass
    class EvidenceRecallExact(EvidenceRecallAtK):
        """Share of the reference quotes found word for word (case and punctuation folded) in the top k."""

        name: str = "evidence_recall_exact"

        async def _single_turn_ascore(self, sample, callbacks) -> float:
            quotes = sample.reference_contexts
            passages = sample.retrieved_contexts[: self.k]
            return sum(quote_found_exact(q, passages) for q in quotes) / len(quotes)

    @dataclass
    class RecordMetric(SingleTurnMetric):
        """A metric computed from the row and the advisor's whole record (the answer-level metrics)."""

        name: str = "key_fact_recall"
        fn: Callable[[EvalItem, dict], float] = lambda item, record: math.nan
        rows: dict[str, tuple[EvalItem, dict]] = field(default_factory=dict)  # question -> (row, record)
        needs: frozenset[str] = frozenset({"reference"})
        _required_columns: t.Dict[MetricType, t.Set[str]] = field(
            default_factory=lambda: {MetricType.SINGLE_TURN: {"user_input"}}
        )

        def init(self, run_config) -> None:
            pass

        def wants(self, item: EvalItem) -> bool:
            has = {"reference": bool(item.reference), "reference_contexts": bool(item.reference_contexts)}
            return item.kind != "out_of_scope" and all(has[n] for n in self.needs)

        async def _single_turn_ascore(self, sample, callbacks) -> float:
            item, record = self.rows[sample.user_input]
            return self.fn(item, record)

    return EvidenceRecallAtK, CitationFaithfulness, RefusalAccuracy, CaseMetric, EvidenceRecallExact, RecordMetric


def answer_metrics(items: list[EvalItem], records: dict[str, dict], corpus_dir: Path | None) -> list:
    """key_fact_recall, cited_evidence_hit and filler_share (`advisor.answer_metrics`) as ragas metrics.

    Rows the reports answer only (out-of-scope rows are scored by refusal); a refusal of such a
    row carries no fact and cites no evidence, so it scores 0 on the first two, and has no
    sentences for filler.
    """
    from advisor import answer_metrics as am

    *_, RecordMetric = _ragas_metric_classes()
    rows = {item.user_input: (item, records[item.id]) for item in items}

    def key_facts(item: EvalItem, record: dict) -> float:
        value = am.key_fact_recall(item.reference or "", item.user_input, record.get("answer") or "", corpus_dir)
        return 0.0 if record.get("refused") and not math.isnan(value) else value

    def cited(item: EvalItem, record: dict) -> float:
        return am.cited_evidence_hit(record, item.reference_contexts or (), quote_found)

    def filler(item: EvalItem, record: dict) -> float:
        return am.filler_share(record, item.user_input, item.reference, item.reference_contexts, corpus_dir)

    return [
        RecordMetric(name="key_fact_recall", fn=key_facts, rows=rows, needs=frozenset({"reference"})),
        RecordMetric(name="cited_evidence_hit", fn=cited, rows=rows, needs=frozenset({"reference_contexts"})),
        RecordMetric(name="filler_share", fn=filler, rows=rows, needs=frozenset({"reference"})),
    ]


def evidence_recall(reference_contexts: t.Sequence[str], passages: t.Sequence[str]) -> float:
    """Share of the reference quotes found in the passages (nan without references)."""
    if not reference_contexts:
        return math.nan
    return sum(quote_found(q, passages) for q in reference_contexts) / len(reference_contexts)


def citation_faithfulness(record: dict) -> float:
    """Share of the answer's sentences supported by their cited passages.

    Sentences carry their verdict when an LLM wrote them (issue 6's verifier); for the
    extractive answerer a sentence is supported when it is a verbatim quote of the passage
    its citation names; a catalogue row when every quote it cites is in its cited passage.
    A refusal has no sentences to check (nan).
    """
    sentences = record.get("sentences") or []
    if record.get("refused") or not sentences:
        return math.nan
    passages = {p["chunk_id"]: p["text"] for p in record.get("passages", [])}
    citations = {c["marker"]: c for c in record.get("citations", [])}
    supported = 0
    for sentence in sentences:
        if record.get("route", "passages") != "passages":
            # a catalogue row rests on the quotes its markers cite: each must be in its cited passage
            supported += bool(sentence.get("markers")) and all(
                m in citations and normalise(citations[m]["quote"]) in normalise(passages.get(citations[m]["chunk_id"], ""))
                for m in sentence["markers"]
            )
            continue
        if record.get("backend", "extractive") != "extractive":
            supported += sentence.get("verdict") == "supported"
            continue
        ok = bool(sentence.get("markers")) and all(
            m in citations
            and citations[m]["quote"] == sentence["text"]
            and sentence["text"] in passages.get(citations[m]["chunk_id"], "")
            for m in sentence["markers"]
        )
        supported += ok
    return supported / len(sentences)


# ---- questions across case studies ---------------------------------------------------
_QUOTED = re.compile(r"“[^”]*”|\"[^\"]*\"")  # the report's words inside an answer row, not the answer naming a case


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
    def from_corpus(cls, corpus_dir: Path) -> "CaseNames":
        """The names in `corpus/case_studies.yaml` (EvalSetError if the catalogue does not load)."""
        from advisor.cases import load_catalogue

        try:
            cases, _ = load_catalogue(Path(corpus_dir))
        except AdvisorError as exc:
            raise EvalSetError(f"expected_cases need the case-study catalogue, which does not load: {exc}") from exc
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


# metric -> (score of the cases named against the expected ones, the kinds of row it is measured on)
_CASE_SCORES: dict[str, tuple[Callable[[t.Sequence[str], t.Sequence[str]], float], tuple[str, ...]]] = {
    "case_recall": (case_recall, CASE_KINDS),
    "case_precision": (case_precision, CASE_KINDS),
    "case_hit_at_3": (lambda named, expected: case_hit_at(named, expected, 3), ("cases_like_mine",)),
    "case_recall_at_5": (lambda named, expected: case_recall(named[:5], expected), ("cases_like_mine",)),
}
CASE_METRICS = tuple(_CASE_SCORES)


@contextmanager
def catalogue_off(advisor):
    """The same advisor with its case-study catalogue switched off: every question goes to the passages."""
    loader = advisor.case_catalogue
    advisor.case_catalogue = _NoCatalogue()
    try:
        yield advisor
    finally:
        advisor.case_catalogue = loader


class _NoCatalogue:
    """Stands in for `CatalogueLoader`: serves no catalogue, and an index reload does not bring one back."""

    current = None
    error = None

    def reload(self):
        return None


class CaseLocator:
    """Which case study a raw-text passage (the baseline's) comes from, by its place in the report."""

    def __init__(self, corpus_dir: Path) -> None:
        from advisor.chunking import locate_case_studies
        from advisor.corpus import Manifest

        manifest = Manifest.load(Path(corpus_dir))
        self.reports: dict[str, tuple[str, list[tuple[int, int, str]]]] = {}
        for source in manifest.entries:
            file = Path(corpus_dir) / source
            if not file.is_file():
                continue
            text = file.read_text(encoding="utf-8")
            lines = text.split("\n")
            starts = [0]
            for line in lines:
                starts.append(starts[-1] + len(line) + 1)
            spans = [
                (starts[first], starts[end], spec.name)
                for spec, first, end in locate_case_studies(lines, manifest.case_studies_for(source))
            ]
            self.reports[source] = (text, spans)

    def case_of(self, source: str, text: str) -> str | None:
        """The case study whose part of the report holds the middle of the passage, or None."""
        report, spans = self.reports.get(source, ("", []))
        at = report.find(text.strip()) if text.strip() else -1
        if at < 0:
            return None
        middle = at + len(text.strip()) // 2
        return next((name for a, b, name in spans if a <= middle < b), None)

    def annotate(self, records: dict[str, dict]) -> dict[str, dict]:
        """Records whose passages carry no case study metadata, given it (others unchanged)."""
        out = {}
        for key, record in records.items():
            passages = record.get("passages", [])
            if all("case_study" in p for p in passages):
                out[key] = record
                continue
            out[key] = {**record, "passages": [
                p if "case_study" in p else {**p, "case_study": self.case_of(p.get("source", ""), p.get("text", ""))}
                for p in passages
            ]}
        return out


# ---- running ------------------------------------------------------------------------
AnswerFn = Callable[[str], dict]


def answer_all(
    items: list[EvalItem], answer: AnswerFn, out_dir: Path, name: str = RECORDS, progress=None
) -> dict[str, dict]:
    """Answer every question not answered yet, appending each record as soon as it exists."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / name
    done: dict[str, dict] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by an interruption: answered again below
            done[row["id"]] = row
    with path.open("a", encoding="utf-8") as f:
        for item in items:
            if item.id not in done or done[item.id].get("question", item.user_input) != item.user_input:
                # new, or its question was edited since the interrupted run: answered (again)
                record = {"id": item.id, **answer(item.user_input)}
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
                f.flush()
                done[item.id] = record
            if progress:
                progress(item)
    return {item.id: done[item.id] for item in items}


def score(
    items: list[EvalItem],
    records: dict[str, dict],
    embeddings,
    k: int,
    judge_metrics=(),
    case_names: CaseNames | None = None,
    named_by: str = "answer",
    corpus_dir: Path | None = None,
    answer_level: bool = True,
) -> tuple[dict, dict]:
    """Per-question metric values via ragas `evaluate()`, and how many rows each metric skipped.

    `answer_level` adds key-fact recall, cited-evidence hit and filler share (`answer_metrics`);
    `corpus_dir` lets them tell names from ordinary words and topic words from content.

    With `case_names`, rows with `expected_cases` are also scored on the case metrics, the
    cases counted as named by the answer's cited sentences (`named_by="answer"`) or by the
    top-k passages' case studies (`"passages"`).
    """
    from ragas.embeddings import LangchainEmbeddingsWrapper
    from ragas.metrics import (
        NonLLMContextPrecisionWithReference,
        NonLLMContextRecall,
        RougeScore,
        SemanticSimilarity,
    )

    EvidenceRecallAtK, CitationFaithfulness, RefusalAccuracy, _, EvidenceRecallExact, _ = _ragas_metric_classes()
    by_question = {item.user_input: records[item.id] for item in items}
    kinds = {item.user_input: item.kind for item in items}
    metrics = [
        NonLLMContextRecall(),
        NonLLMContextPrecisionWithReference(),
        SemanticSimilarity(embeddings=LangchainEmbeddingsWrapper(embeddings)),
        RougeScore(),
        EvidenceRecallAtK(k=k),
        EvidenceRecallExact(k=k),
        *(answer_metrics(items, records, corpus_dir) if answer_level else ()),
        CitationFaithfulness(records=by_question),
        RefusalAccuracy(records=by_question, kinds=kinds),
        *(case_metrics(items, records, case_names, named_by, k) if case_names else ()),
        *judge_metrics,
    ]
    return _evaluate(items, records, metrics)


def score_cases(
    items: list[EvalItem], records: dict[str, dict], case_names: CaseNames, k: int, named_by: str = "passages"
) -> tuple[dict, dict]:
    """Only the case metrics (for the passage-retrieval side of the comparison)."""
    return _evaluate(items, records, case_metrics(items, records, case_names, named_by, k))


def case_metrics(items: list[EvalItem], records: dict[str, dict], case_names: CaseNames, named_by: str, k: int) -> list:
    """The case metrics as ragas metrics, hit@3 and recall@5 for "cases like mine" only."""
    CaseMetric = _ragas_metric_classes()[3]
    if named_by == "answer":
        named = {item.user_input: cases_named(records[item.id], case_names) for item in items}
    elif named_by == "passages":
        named = {item.user_input: cases_retrieved(records[item.id], k) for item in items}
    else:
        raise ValueError(f"named_by must be 'answer' or 'passages', got {named_by!r}")
    expected = {item.user_input: item.expected_cases or () for item in items}
    return [
        CaseMetric(name=name, named=named, expected=expected, kinds=kinds)
        for name, (_, kinds) in _CASE_SCORES.items()
    ]


def _evaluate(items: list[EvalItem], records: dict[str, dict], metrics: list) -> tuple[dict, dict]:
    from ragas import EvaluationDataset, SingleTurnSample, evaluate

    values: dict[str, dict[str, float]] = {item.id: {} for item in items}
    skipped: dict[str, int] = {}
    for metric in metrics:
        needed = set().union(*metric._required_columns.values())
        rows = [
            item
            for item in items
            if _has(item, records[item.id], needed)
            and (item.kind or not getattr(metric, "needs_kind", False))
            and (not hasattr(metric, "wants") or metric.wants(item))
        ]
        skipped[metric.name] = len(items) - len(rows)
        if not rows:
            continue
        dataset = EvaluationDataset(samples=[_sample(item, records[item.id], SingleTurnSample) for item in rows])
        result = evaluate(dataset, metrics=[metric], show_progress=False, raise_exceptions=True)
        for item, scores in zip(rows, result.scores):
            (name, value), = scores.items()  # one metric per run; ragas may decorate its name
            values[item.id][name] = None if value is None or _isnan(value) else float(value)
            if name != metric.name:
                skipped[name] = skipped.pop(metric.name, skipped.get(name, 0))
    return values, skipped


def _isnan(value) -> bool:
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return True


def _has(item: EvalItem, record: dict, needed: set[str]) -> bool:
    available = {"user_input", "response", "retrieved_contexts"}
    if item.reference:
        available.add("reference")
    if item.reference_contexts:
        available.add("reference_contexts")
    if record.get("refused"):
        available -= {"response"}  # a refusal is scored by refusal accuracy only
    if item.kind == "out_of_scope":
        available -= {"reference", "reference_contexts"}  # its reference says why there is no answer
    return needed <= available


def _sample(item: EvalItem, record: dict, cls):
    return cls(
        user_input=item.user_input,
        response=record.get("answer") or "",
        retrieved_contexts=[p["text"] for p in record.get("passages", [])],
        reference=item.reference,
        reference_contexts=list(item.reference_contexts) if item.reference_contexts else None,
    )


def summarise(items: list[EvalItem], records: dict[str, dict], values: dict, skipped: dict) -> dict:
    """Means per metric, by kind and by report, refusal figures and skipped counts."""
    names = sorted({m for v in values.values() for m in v})

    def mean(ids: list[str], metric: str) -> float | None:
        xs = [values[i].get(metric) for i in ids]
        xs = [x for x in xs if x is not None]
        return round(statistics.fmean(xs), 4) if xs else None

    ids = [item.id for item in items]
    by_kind = {}
    for kind in sorted({item.kind or "unlabelled" for item in items}):
        group = [i.id for i in items if (i.kind or "unlabelled") == kind]
        by_kind[kind] = {"n": len(group), **{m: mean(group, m) for m in names}}
    by_report = {}
    for source in sorted({s for item in items for s in item.sources}):
        group = [i.id for i in items if source in i.sources]
        by_report[source] = {"n": len(group), **{m: mean(group, m) for m in names}}
    out_of_scope = [i for i in items if i.kind == "out_of_scope"]
    in_scope = [i for i in items if i.kind and i.kind != "out_of_scope"]
    refusal = {
        "out_of_scope": len(out_of_scope),
        "refused_out_of_scope": sum(records[i.id]["refused"] for i in out_of_scope),
        "in_scope": len(in_scope),
        "false_refusals": sum(records[i.id]["refused"] for i in in_scope),
    }
    refusal["refusal_accuracy_out_of_scope"] = (
        round(refusal["refused_out_of_scope"] / len(out_of_scope), 4) if out_of_scope else None
    )
    refusal["false_refusal_rate"] = round(refusal["false_refusals"] / len(in_scope), 4) if in_scope else None
    for kind, row in by_kind.items():
        group = [i for i in items if (i.kind or "unlabelled") == kind]
        row["refused"] = sum(bool(records[i.id]["refused"]) for i in group)
        row["answered"] = len(group) - row["refused"]
    by_sort = {}
    for sort in sorted({i.sort or "unlabelled" for i in out_of_scope}):
        group = [i for i in out_of_scope if (i.sort or "unlabelled") == sort]
        refused = sum(bool(records[i.id]["refused"]) for i in group)
        by_sort[sort] = {"n": len(group), "refused": refused, "answered": len(group) - refused,
                         "refused_rate": round(refused / len(group), 4)}
    refusal["by_sort"] = by_sort
    confusion = {
        "in_scope": {"answered": refusal["in_scope"] - refusal["false_refusals"], "refused": refusal["false_refusals"]},
        "out_of_scope": {"answered": refusal["out_of_scope"] - refusal["refused_out_of_scope"],
                         "refused": refusal["refused_out_of_scope"]},
    }
    curve = coverage_curve(items, records)
    latencies = [records[i]["timings_ms"]["total"] for i in ids if records[i].get("timings_ms")]
    backends = {records[i].get("backend", "extractive") for i in ids if not records[i].get("refused")}
    return {
        "n": len(items),
        "metrics": {m: mean(ids, m) for m in names},
        "skipped": skipped,
        "refusal": refusal,
        "confusion": confusion,
        "by_kind": by_kind,
        "by_report": by_report,
        "guards": {m: GUARDS[m] for m in GUARDS if m in names and backends <= GUARDED_BACKENDS},
        **({"coverage_curve": curve} if curve else {}),
        "latency_ms_p50": round(statistics.median(latencies), 1) if latencies else None,
    }


def coverage_curve(items: list[EvalItem], records: dict[str, dict], steps: int = 10) -> list[dict]:
    """Precision / recall of the coverage decision over this run's labelled rows, at several thresholds.

    Each record's `analysis.coverage.not_covered_probability` (the calibrated model's) is read;
    a refusal at a threshold is probability >= threshold, and out-of-scope rows are the positives.
    Rows answered from the catalogue, or refused before the model ran, carry no probability and
    are left out. Empty when no row carries one.
    """
    scored = [
        (float(p), i.kind == "out_of_scope")
        for i in items
        if i.kind and (p := ((records[i.id].get("analysis") or {}).get("coverage") or {}).get("not_covered_probability"))
        is not None
    ]
    if not scored or not any(y for _, y in scored):
        return []
    curve = []
    for t in [round(x / steps, 2) for x in range(1, steps)]:
        refused = [(p >= t, y) for p, y in scored]
        tp = sum(r and y for r, y in refused)
        curve.append({
            "threshold": t,
            "precision": round(tp / max(sum(r for r, _ in refused), 1), 3),
            "recall": round(tp / sum(y for _, y in scored), 3),
            "false_refusal_rate": round(sum(r and not y for r, y in refused) / max(sum(not y for _, y in scored), 1), 3),
        })
    return curve


# Metrics that hold by construction for some answerers: reported as guards, not as results.
GUARDS = {
    "citation_faithfulness": "true by construction for the extractive answerer and the catalogue: every "
    "sentence is a verbatim quote of the passage it cites; kept as a guard against a broken citation map",
}
GUARDED_BACKENDS = {"extractive"}  # answers that quote (every route of the extractive answerer)
PAIRED = ("semantic_similarity", "rouge_score(mode=fmeasure)")  # compared with the baseline on the same rows


def paired(values: dict[str, dict], base_values: dict[str, dict], metrics: t.Sequence[str] = PAIRED) -> dict:
    """Advisor and baseline means over the rows both were scored on: {metric: {n, advisor, baseline}}.

    The advisor's refusals have no answer to score, the baseline never refuses: comparing each
    run's own mean would compare different questions.
    """
    out = {}
    for metric in metrics:
        both = [(v[metric], base_values[i][metric]) for i, v in values.items()
                if v.get(metric) is not None and base_values.get(i, {}).get(metric) is not None]
        out[metric] = {
            "n": len(both),
            "advisor": round(statistics.fmean(a for a, _ in both), 4) if both else None,
            "baseline": round(statistics.fmean(b for _, b in both), 4) if both else None,
        }
    return out


def compare_cases(summaries: dict[str, dict | None]) -> dict:
    """Case metrics by kind side by side: {kind: {"n": n, metric: {run: value}}} for the runs given."""
    out: dict[str, dict] = {}
    for run, summary in summaries.items():
        if not summary:
            continue
        for kind in CASE_KINDS:
            row = summary.get("by_kind", {}).get(kind)
            if not row:
                continue
            entry = out.setdefault(kind, {"n": row["n"]})
            for metric in CASE_METRICS:
                if row.get(metric) is not None:  # hit@3 and recall@5 are measured for cases like mine only
                    entry.setdefault(metric, {})[run] = row[metric]
    return out


def check_thresholds(summary: dict, thresholds: dict) -> list[str]:
    """The gate: every threshold the summary falls below, as readable lines.

    `[min]` and `[max]` are thresholds (a few points under the measured value); `[guard.min]` and
    `[guard.max]` are checks that hold by construction and fail only when something is broken.
    """
    failures = []
    for label, table in (("threshold", thresholds), ("guard", thresholds.get("guard", {}))):
        for name, minimum in table.get("min", {}).items():
            value = _lookup(summary, name)
            if value is None or value < minimum:
                failures.append(f"{name} = {value} is below the {label} {minimum}")
        for name, maximum in table.get("max", {}).items():
            value = _lookup(summary, name)
            if value is None or value > maximum:
                failures.append(f"{name} = {value} is above the {label} {maximum}")
    return failures


def thresholds_for(gate: dict, set_file: Path) -> dict:
    """The part of a thresholds file for this set: the table named after the set's file, if there is one."""
    table = gate.get(Path(set_file).stem)
    if isinstance(table, dict):
        return table
    if "min" in gate or "max" in gate or "guard" in gate:
        return gate  # a file for one set only
    raise AdvisorError(
        f"the thresholds file has no table for {Path(set_file).stem!r} (it has {', '.join(sorted(gate)) or 'none'})"
    )


def _lookup(summary: dict, dotted: str) -> Any:
    node: Any = summary
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def write_results(out_dir: Path, items: list[EvalItem], records: dict, values: dict, name: str = RESULTS) -> None:
    """results.jsonl: one line per question, its record plus its metric values."""
    with (out_dir / name).open("w", encoding="utf-8") as f:
        for item in items:
            row = {**records[item.id], "kind": item.kind, "sources": list(item.sources), "metrics": values[item.id]}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def build_judge_metrics(llm, embeddings) -> list:
    """ragas' LLM metrics around a LangChain chat model (the judge)."""
    from ragas.embeddings import LangchainEmbeddingsWrapper
    from ragas.llms import LangchainLLMWrapper
    from ragas.metrics import FactualCorrectness, Faithfulness, LLMContextRecall, ResponseRelevancy

    judge = LangchainLLMWrapper(llm)
    wrapped = LangchainEmbeddingsWrapper(embeddings)
    return [
        Faithfulness(llm=judge),
        ResponseRelevancy(llm=judge, embeddings=wrapped),
        LLMContextRecall(llm=judge),
        FactualCorrectness(llm=judge),
    ]


def judge_llm_from_settings(settings):
    """The judge: an OpenAI-compatible endpoint from ADVISOR_JUDGE_* (or the LLM settings)."""
    base_url = settings.judge_base_url or settings.llm_base_url
    model = settings.judge_model or settings.llm_model
    if not base_url or not model:
        raise AdvisorError(
            "--judge needs a judge LLM: set ADVISOR_JUDGE_BASE_URL and ADVISOR_JUDGE_MODEL "
            "(an OpenAI-compatible endpoint), or ADVISOR_LLM_BASE_URL and ADVISOR_LLM_MODEL"
        )
    from langchain_openai import ChatOpenAI

    key = settings.judge_api_key or settings.llm_api_key
    return ChatOpenAI(
        base_url=base_url,
        model=model,
        api_key=key.get_secret_value() if key else "not-needed",
        timeout=settings.llm_timeout,
        max_retries=settings.llm_max_retries,
        temperature=0,
    )
