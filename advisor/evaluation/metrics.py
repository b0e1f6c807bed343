"""Our metrics: evidence recall, citation faithfulness, and all of them as ragas metric classes.

ragas' own metrics cover context recall and precision, semantic similarity and ROUGE; these are
the ones it has no equivalent for. Each is a plain function of a row and the advisor's JSON
record (`Answer.to_record()`), and `metric_classes()` wraps them as ragas `SingleTurnMetric`s so
that `scoring.score` runs every metric through ragas' `evaluate()` alike.
"""

from __future__ import annotations

import math
import typing as t
from dataclasses import dataclass, field
from functools import cache
from types import SimpleNamespace

from advisor.evaluation.cases import CASE_KINDS, CASE_SCORES
from advisor.evaluation.datasets import EvalItem
from advisor.text import normalise_space, quote_found, quote_found_exact


def evidence_recall(reference_contexts: t.Sequence[str], passages: t.Sequence[str]) -> float:
    """Share of the reference quotes found in the passages (nan without references)."""
    if not reference_contexts:
        return math.nan
    return sum(quote_found(q, passages) for q in reference_contexts) / len(reference_contexts)


def evidence_hit(reference_contexts: t.Sequence[str], passages: t.Sequence[str]) -> float:
    """1 when any reference quote is found in the passages (nan without references)."""
    if not reference_contexts:
        return math.nan
    return float(any(quote_found(q, passages) for q in reference_contexts))


def evidence_recall_exact(reference_contexts: t.Sequence[str], passages: t.Sequence[str]) -> float:
    """Share of the reference quotes found word for word (case and punctuation folded) in the passages."""
    if not reference_contexts:
        return math.nan
    return sum(quote_found_exact(q, passages) for q in reference_contexts) / len(reference_contexts)


def citation_faithfulness(record: dict) -> float:
    """Share of the answer's sentences supported by their cited passages.

    Sentences carry their verdict when an LLM wrote them (the LLM path's verifier); for the
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
                m in citations
                and normalise_space(citations[m]["quote"])
                in normalise_space(passages.get(citations[m]["chunk_id"], ""))
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


def refusal_right(refused: bool, kind: str) -> float:
    """1 when the advisor refused exactly the questions the reports do not cover."""
    return float(bool(refused) == (kind == "out_of_scope"))


@cache  # defined once, on first use: ragas is imported only when evaluating
def metric_classes() -> SimpleNamespace:
    """Our metrics as ragas metric classes: EvidenceRecallAtK, EvidenceRecallExact, EvidenceHitAtK,
    CitationFaithfulness, RefusalAccuracy, CaseMetric and RecordMetric.

    A metric that wants only some rows says so in `wants(item)`; the others are skipped and counted.
    """
    from ragas.metrics.base import MetricType, SingleTurnMetric

    @dataclass
    class OfflineMetric(SingleTurnMetric):
        """A metric computed here without a model: nothing to initialise, every row with its columns wanted."""

        _required_columns: dict = field(default_factory=lambda: {MetricType.SINGLE_TURN: {"user_input"}})

        def init(self, run_config) -> None:
            pass

        def wants(self, item: EvalItem) -> bool:
            return True

    @dataclass
    class EvidenceRecallAtK(OfflineMetric):
        """Share of the reference quotes found inside the top-k retrieved passages."""

        name: str = "evidence_recall_at_k"
        k: int = 5
        _required_columns: dict = field(
            default_factory=lambda: {MetricType.SINGLE_TURN: {"retrieved_contexts", "reference_contexts"}}
        )

        async def _single_turn_ascore(self, sample, callbacks) -> float:
            return evidence_recall(sample.reference_contexts, sample.retrieved_contexts[: self.k])

    @dataclass
    class EvidenceRecallExact(EvidenceRecallAtK):
        """Share of the reference quotes found word for word (case and punctuation folded) in the top k."""

        name: str = "evidence_recall_exact"

        async def _single_turn_ascore(self, sample, callbacks) -> float:
            return evidence_recall_exact(sample.reference_contexts, sample.retrieved_contexts[: self.k])

    @dataclass
    class EvidenceHitAtK(EvidenceRecallAtK):
        """1 when any reference quote is inside the top-k passages (for a guidance answer, the
        passages its map points are cited from)."""

        name: str = "evidence_hit_at_k"

        async def _single_turn_ascore(self, sample, callbacks) -> float:
            return evidence_hit(sample.reference_contexts, sample.retrieved_contexts[: self.k])

    @dataclass
    class CitationFaithfulness(OfflineMetric):
        """Share of answer sentences supported by the passages their markers cite."""

        name: str = "citation_faithfulness"
        records: dict[str, dict] = field(default_factory=dict)  # question -> record
        _required_columns: dict = field(
            default_factory=lambda: {MetricType.SINGLE_TURN: {"user_input", "response"}}
        )

        async def _single_turn_ascore(self, sample, callbacks) -> float:
            return citation_faithfulness(self.records[sample.user_input])

    @dataclass
    class RefusalAccuracy(OfflineMetric):
        """1 when the advisor refused exactly the questions the reports do not cover (rows with a kind)."""

        name: str = "refusal_accuracy"
        records: dict[str, dict] = field(default_factory=dict)  # question -> record
        kinds: dict[str, str | None] = field(default_factory=dict)  # question -> kind

        def wants(self, item: EvalItem) -> bool:
            return bool(item.kind)

        async def _single_turn_ascore(self, sample, callbacks) -> float:
            kind = self.kinds.get(sample.user_input)
            if kind is None:
                return math.nan
            return refusal_right(self.records[sample.user_input]["refused"], kind)

    @dataclass
    class CaseMetric(OfflineMetric):
        """One of CASE_METRICS: the cases an answer named against the row's expected cases."""

        name: str = "case_recall"
        named: dict[str, list[str]] = field(default_factory=dict)  # question -> cases named, in order
        expected: dict[str, tuple[str, ...]] = field(default_factory=dict)
        kinds: tuple[str, ...] = CASE_KINDS  # rows of other kinds are skipped

        def wants(self, item: EvalItem) -> bool:
            return bool(item.expected_cases) and item.kind in self.kinds

        async def _single_turn_ascore(self, sample, callbacks) -> float:
            score, _ = CASE_SCORES[self.name]
            return score(self.named[sample.user_input], self.expected[sample.user_input])

    @dataclass
    class RecordMetric(OfflineMetric):
        """A metric computed from the row and the advisor's whole record (the answer-level metrics)."""

        name: str = "key_fact_recall"
        fn: t.Callable[[EvalItem, dict], float] = lambda item, record: math.nan
        rows: dict[str, tuple[EvalItem, dict]] = field(default_factory=dict)  # question -> (row, record)
        needs: frozenset[str] = frozenset({"reference"})

        def wants(self, item: EvalItem) -> bool:
            has = {"reference": bool(item.reference), "reference_contexts": bool(item.reference_contexts)}
            return item.kind != "out_of_scope" and all(has[n] for n in self.needs)

        async def _single_turn_ascore(self, sample, callbacks) -> float:
            item, record = self.rows[sample.user_input]
            return self.fn(item, record)

    return SimpleNamespace(
        EvidenceRecallAtK=EvidenceRecallAtK,
        EvidenceRecallExact=EvidenceRecallExact,
        EvidenceHitAtK=EvidenceHitAtK,
        CitationFaithfulness=CitationFaithfulness,
        RefusalAccuracy=RefusalAccuracy,
        CaseMetric=CaseMetric,
        RecordMetric=RecordMetric,
    )
