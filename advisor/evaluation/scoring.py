"""Scoring a run: every metric through ragas' `evaluate()`, one metric at a time, skipped rows counted.

ragas' non-LLM context recall and precision, semantic similarity with the local embedding model
and ROUGE; our evidence recall@k (fuzzy and exact), citation faithfulness, refusal accuracy, the
answer-level metrics (`answer_metrics`) and, for questions across case studies, the case metrics.
A metric that needs a field a row lacks is skipped for that row and counted. Nothing reaches the
network unless judge metrics (ragas' LLM metrics around a judge model) are passed in.
"""

from __future__ import annotations

import math
from pathlib import Path

from advisor.config import force_offline
from advisor.errors import AdvisorError
from advisor.evaluation.answer_metrics import cited_evidence_hit, filler_share, key_fact_recall
from advisor.evaluation.cases import CASE_SCORES, CaseNames, cases_named, cases_retrieved
from advisor.evaluation.datasets import EvalItem
from advisor.evaluation.metrics import metric_classes
from advisor.text import quote_found


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
    force_offline()
    from ragas.embeddings import LangchainEmbeddingsWrapper
    from ragas.metrics import (
        NonLLMContextPrecisionWithReference,
        NonLLMContextRecall,
        RougeScore,
        SemanticSimilarity,
    )

    ours = metric_classes()
    by_question = {item.user_input: records[item.id] for item in items}
    kinds = {item.user_input: item.kind for item in items}
    metrics = [
        NonLLMContextRecall(),
        NonLLMContextPrecisionWithReference(),
        SemanticSimilarity(embeddings=LangchainEmbeddingsWrapper(embeddings)),
        RougeScore(),
        ours.EvidenceRecallAtK(k=k),
        ours.EvidenceRecallExact(k=k),
        ours.EvidenceHitAtK(k=k),
        *(answer_level_metrics(items, records, corpus_dir) if answer_level else ()),
        ours.CitationFaithfulness(records=by_question),
        ours.RefusalAccuracy(records=by_question, kinds=kinds),
        *(case_metrics(items, records, case_names, named_by, k) if case_names else ()),
        *judge_metrics,
    ]
    return _evaluate(items, records, metrics)


def score_cases(
    items: list[EvalItem], records: dict[str, dict], case_names: CaseNames, k: int, named_by: str = "passages"
) -> tuple[dict, dict]:
    """Only the case metrics (for the passage-retrieval side of the comparison)."""
    force_offline()
    return _evaluate(items, records, case_metrics(items, records, case_names, named_by, k))


def case_metrics(
    items: list[EvalItem], records: dict[str, dict], case_names: CaseNames, named_by: str, k: int
) -> list:
    """The case metrics as ragas metrics, hit@3 and recall@5 for "cases like mine" only."""
    if named_by == "answer":
        named = {item.user_input: cases_named(records[item.id], case_names) for item in items}
    elif named_by == "passages":
        named = {item.user_input: cases_retrieved(records[item.id], k) for item in items}
    else:
        raise ValueError(f"named_by must be 'answer' or 'passages', got {named_by!r}")
    expected = {item.user_input: item.expected_cases or () for item in items}
    return [
        metric_classes().CaseMetric(name=name, named=named, expected=expected, kinds=kinds)
        for name, (_, kinds) in CASE_SCORES.items()
    ]


def answer_level_metrics(items: list[EvalItem], records: dict[str, dict], corpus_dir: Path | None) -> list:
    """key_fact_recall, cited_evidence_hit and filler_share (`answer_metrics`) as ragas metrics.

    Rows the reports answer only (out-of-scope rows are scored by refusal); a refusal of such a
    row carries no fact and cites no evidence, so it scores 0 on the first two, and has no
    sentences for filler.
    """
    RecordMetric = metric_classes().RecordMetric
    rows = {item.user_input: (item, records[item.id]) for item in items}

    def key_facts(item: EvalItem, record: dict) -> float:
        value = key_fact_recall(item.reference or "", item.user_input, record.get("answer") or "", corpus_dir)
        return 0.0 if record.get("refused") and not math.isnan(value) else value

    def cited(item: EvalItem, record: dict) -> float:
        return cited_evidence_hit(record, item.reference_contexts or (), quote_found)

    def filler(item: EvalItem, record: dict) -> float:
        return filler_share(record, item.user_input, item.reference, item.reference_contexts, corpus_dir)

    return [
        RecordMetric(name="key_fact_recall", fn=key_facts, rows=rows, needs=frozenset({"reference"})),
        RecordMetric(name="cited_evidence_hit", fn=cited, rows=rows, needs=frozenset({"reference_contexts"})),
        RecordMetric(name="filler_share", fn=filler, rows=rows, needs=frozenset({"reference"})),
    ]


def _evaluate(items: list[EvalItem], records: dict[str, dict], metrics: list) -> tuple[dict, dict]:
    """Each metric over the rows that have its columns (and that it wants), through ragas `evaluate()`."""
    from ragas import EvaluationDataset, SingleTurnSample, evaluate

    values: dict[str, dict[str, float]] = {item.id: {} for item in items}
    skipped: dict[str, int] = {}
    for metric in metrics:
        needed = set().union(*metric._required_columns.values())
        rows = [
            item
            for item in items
            if _has(item, records[item.id], needed) and (not hasattr(metric, "wants") or metric.wants(item))
        ]
        skipped[metric.name] = len(items) - len(rows)
        if not rows:
            continue
        dataset = EvaluationDataset(
            samples=[_sample(item, records[item.id], SingleTurnSample) for item in rows]
        )
        result = evaluate(dataset, metrics=[metric], show_progress=False, raise_exceptions=True)
        for item, scores in zip(rows, result.scores):
            ((name, value),) = scores.items()  # one metric per run; ragas may decorate its name
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
    """Whether the row and its record give every column a metric needs."""
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


# ---- the judge ------------------------------------------------------------------------------
def build_judge_metrics(llm, embeddings) -> list:
    """ragas' LLM metrics around a LangChain chat model (the judge)."""
    force_offline()
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
