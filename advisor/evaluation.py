"""Evaluation stage: a question set -> the advisor's answers -> ragas metrics -> a summary.

Set files are JSONL with ragas' field names (`id`, `user_input`, `reference`,
`reference_contexts`, `sources`, `kind`); only `id` and `user_input` are required. A metric
that needs a missing field is skipped for that row and counted. Runs are resumable: every
answered question is appended to `records.jsonl` at once, and a re-run with the same output
folder continues where it stopped. Metrics go through ragas' `evaluate()`: its non-LLM
context recall and precision, semantic similarity with the local embedding model, ROUGE,
and three metrics of our own written as ragas metrics (evidence recall@k, citation
faithfulness, refusal accuracy). Nothing reaches the network unless `--judge` is asked for.
"""

from __future__ import annotations

import json
import math
import os
import re
import statistics
import typing as t
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from advisor.errors import AdvisorError

os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")

KINDS = ("fact", "case_study", "advice", "multi_doc", "out_of_scope")
RECORDS = "records.jsonl"
RESULTS = "results.jsonl"
SUMMARY = "summary.json"


class EvalSetError(AdvisorError):
    """A question set file is malformed; the message names the file and line."""


def normalise(text: str) -> str:
    """White space folded: quotes are checked against the corpus this way (hard wraps)."""
    return re.sub(r"\s+", " ", text).strip()


def fold(text: str) -> str:
    """Lower case, punctuation dropped, white space folded: how quotes meet cleaned passages."""
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", " ", text.lower())).strip()


# A reference quote counts as found in a passage when the passage holds it with at most ~15 %
# of its characters edited (rapidfuzz partial_ratio on folded text). Cleaning drops footnote
# markers and page furniture, and the reports repeat a sentence with small wording changes
# (summary vs body); on the full set found quotes score >= 89 and missing ones <= 73.
QUOTE_MATCH_MIN = 85.0


def quote_found(quote: str, passages: t.Iterable[str]) -> bool:
    """Whether any passage holds the quote (exactly, or nearly: see QUOTE_MATCH_MIN)."""
    from rapidfuzz import fuzz

    needle = fold(quote)
    if not needle:
        return False
    folded = [fold(p) for p in passages]
    if any(needle in p for p in folded):
        return True
    return any(fuzz.partial_ratio(needle, p) >= QUOTE_MATCH_MIN for p in folded)


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


@dataclass
class LoadedSet:
    items: list[EvalItem]
    warnings: list[str] = field(default_factory=list)


def load_eval_set(path: Path, corpus_dir: Path, lenient: bool = False) -> LoadedSet:
    """Read and validate a set file; strict mode stops at the first problem, naming file:line."""
    path = Path(path)
    if not path.exists():
        raise EvalSetError(f"No such question set: {path}")
    texts: dict[str, str] = {}
    items: list[EvalItem] = []
    warnings: list[str] = []
    seen: set[str] = set()

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
            problem, item = _parse_line(raw, number, corpus_text, seen)
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
    return LoadedSet(items, warnings)


def _parse_line(raw: str, number: int, corpus_text, seen: set[str]) -> tuple[str | None, EvalItem | None]:
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
    return None, EvalItem(
        id=row["id"],
        user_input=row["user_input"],
        reference=row.get("reference") or None,
        reference_contexts=tuple(contexts) if contexts else None,
        sources=tuple(sources),
        kind=kind,
        line=number,
    )


# ---- custom ragas metrics -----------------------------------------------------------
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

    return EvidenceRecallAtK, CitationFaithfulness, RefusalAccuracy


def evidence_recall(reference_contexts: t.Sequence[str], passages: t.Sequence[str]) -> float:
    """Share of the reference quotes found in the passages (nan without references)."""
    if not reference_contexts:
        return math.nan
    return sum(quote_found(q, passages) for q in reference_contexts) / len(reference_contexts)


def citation_faithfulness(record: dict) -> float:
    """Share of the answer's sentences supported by their cited passages.

    Sentences carry their verdict when an LLM wrote them (issue 6's verifier); for the
    extractive answerer a sentence is supported when it is a verbatim quote of the passage
    its citation names. A refusal has no sentences to check (nan).
    """
    sentences = record.get("sentences") or []
    if record.get("refused") or not sentences:
        return math.nan
    passages = {p["chunk_id"]: p["text"] for p in record.get("passages", [])}
    citations = {c["marker"]: c for c in record.get("citations", [])}
    supported = 0
    for sentence in sentences:
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


def score(items: list[EvalItem], records: dict[str, dict], embeddings, k: int, judge_metrics=()) -> tuple[dict, dict]:
    """Per-question metric values via ragas `evaluate()`, and how many rows each metric skipped."""
    from ragas import EvaluationDataset, SingleTurnSample, evaluate
    from ragas.embeddings import LangchainEmbeddingsWrapper
    from ragas.metrics import (
        NonLLMContextPrecisionWithReference,
        NonLLMContextRecall,
        RougeScore,
        SemanticSimilarity,
    )

    EvidenceRecallAtK, CitationFaithfulness, RefusalAccuracy = _ragas_metric_classes()
    by_question = {item.user_input: records[item.id] for item in items}
    kinds = {item.user_input: item.kind for item in items}
    metrics = [
        NonLLMContextRecall(),
        NonLLMContextPrecisionWithReference(),
        SemanticSimilarity(embeddings=LangchainEmbeddingsWrapper(embeddings)),
        RougeScore(),
        EvidenceRecallAtK(k=k),
        CitationFaithfulness(records=by_question),
        RefusalAccuracy(records=by_question, kinds=kinds),
        *judge_metrics,
    ]
    values: dict[str, dict[str, float]] = {item.id: {} for item in items}
    skipped: dict[str, int] = {}
    for metric in metrics:
        needed = set().union(*metric._required_columns.values())
        rows = [
            item
            for item in items
            if _has(item, records[item.id], needed) and (item.kind or not getattr(metric, "needs_kind", False))
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
    latencies = [records[i]["timings_ms"]["total"] for i in ids if records[i].get("timings_ms")]
    return {
        "n": len(items),
        "metrics": {m: mean(ids, m) for m in names},
        "skipped": skipped,
        "refusal": refusal,
        "by_kind": by_kind,
        "by_report": by_report,
        "latency_ms_p50": round(statistics.median(latencies), 1) if latencies else None,
    }


def check_thresholds(summary: dict, thresholds: dict) -> list[str]:
    """The gate: every threshold the summary falls below, as readable lines."""
    failures = []
    for name, minimum in thresholds.get("min", {}).items():
        value = _lookup(summary, name)
        if value is None or value < minimum:
            failures.append(f"{name} = {value} is below the threshold {minimum}")
    for name, maximum in thresholds.get("max", {}).items():
        value = _lookup(summary, name)
        if value is None or value > maximum:
            failures.append(f"{name} = {value} is above the threshold {maximum}")
    return failures


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
