"""The summary and the gate: refusals by sort, guards, paired rows, the coverage curve, thresholds."""

from __future__ import annotations

from pathlib import Path

import pytest

from advisor.errors import AdvisorError
from advisor.evaluation.datasets import EvalItem
from advisor.evaluation.summary import (
    check_thresholds,
    compare_cases,
    coverage_curve,
    paired,
    summarise,
    thresholds_for,
)
from tests.evaluation.samples import case_summary


def test_summary_has_the_answered_refused_table_by_sort():
    items = [
        EvalItem(id="a", user_input="a", kind="fact"),
        EvalItem(id="b", user_input="b", kind="fact"),
        EvalItem(id="c", user_input="c", kind="out_of_scope", sort="near_miss"),
        EvalItem(id="d", user_input="d", kind="out_of_scope", sort="missing_detail"),
        EvalItem(id="e", user_input="e", kind="out_of_scope", sort="missing_detail"),
    ]
    refused = {"a": False, "b": True, "c": True, "d": False, "e": True}
    records = {i: {"refused": r, "backend": "extractive"} for i, r in refused.items()}
    summary = summarise(items, records, {i: {} for i in refused}, {})
    assert summary["confusion"] == {
        "in_scope": {"answered": 1, "refused": 1},
        "out_of_scope": {"answered": 1, "refused": 2},
    }
    assert summary["refusal"]["by_sort"]["missing_detail"] == {
        "n": 2,
        "refused": 1,
        "answered": 1,
        "refused_rate": 0.5,
    }
    assert summary["by_kind"]["fact"]["refused"] == 1 and summary["by_kind"]["fact"]["answered"] == 1
    assert summary["refusal"]["false_refusal_rate"] == 0.5
    assert summary["refusal"]["refusal_accuracy_out_of_scope"] == pytest.approx(0.6667)


def test_summary_means_by_kind_and_report_skip_unmeasured_rows():
    items = [
        EvalItem(id="a", user_input="a", kind="fact", sources=("r1.txt",)),
        EvalItem(id="b", user_input="b", kind="fact", sources=("r1.txt", "r2.txt")),
        EvalItem(id="c", user_input="c"),
    ]
    records = {
        i: {"refused": False, "timings_ms": {"total": t}} for i, t in (("a", 10.0), ("b", 30.0), ("c", 20.0))
    }
    values = {"a": {"m": 1.0}, "b": {"m": 0.0}, "c": {}}
    summary = summarise(items, records, values, {"m": 1})
    assert summary["metrics"] == {"m": 0.5} and summary["skipped"] == {"m": 1}
    assert summary["by_kind"]["fact"]["m"] == 0.5 and summary["by_kind"]["unlabelled"]["m"] is None
    assert summary["by_report"]["r2.txt"] == {"n": 1, "m": 0.0}
    assert summary["latency_ms_p50"] == 20.0
    assert "coverage_curve" not in summary


def test_citation_faithfulness_is_labelled_a_guard_for_the_extractive_answerer_only():
    items = [EvalItem(id="a", user_input="a", kind="fact")]
    values = {"a": {"citation_faithfulness": 1.0}}
    extractive = summarise(items, {"a": {"refused": False, "backend": "extractive"}}, values, {})
    llm = summarise(items, {"a": {"refused": False, "backend": "llamacpp"}}, values, {})
    assert "citation_faithfulness" in extractive["guards"] and llm["guards"] == {}


def test_paired_compares_the_same_rows_only():
    ours = {"a": {"semantic_similarity": 0.9}, "b": {}, "c": {"semantic_similarity": 0.5}}  # b: refused
    theirs = {
        "a": {"semantic_similarity": 0.3},
        "b": {"semantic_similarity": 0.8},
        "c": {"semantic_similarity": 0.5},
    }
    result = paired(ours, theirs, ["semantic_similarity"])
    assert result == {"semantic_similarity": {"n": 2, "advisor": 0.7, "baseline": 0.4}}


def test_guards_fail_with_their_own_label():
    summary = {"metrics": {"citation_faithfulness": 0.9, "key_fact_recall": 0.6}}
    gate = {"min": {"metrics.key_fact_recall": 0.5}, "guard": {"min": {"metrics.citation_faithfulness": 1.0}}}
    assert check_thresholds(summary, gate) == ["metrics.citation_faithfulness = 0.9 is below the guard 1.0"]


def test_a_missing_figure_fails_the_gate():
    assert check_thresholds({"metrics": {}}, {"max": {"metrics.filler_share": 0.7}}) == [
        "metrics.filler_share = None is above the threshold 0.7"
    ]


def test_thresholds_are_read_from_the_set_s_own_table():
    gate = {"dev_smoke": {"min": {"metrics.a": 0.5}}, "test_smoke": {"min": {"metrics.a": 0.4}}}
    assert thresholds_for(gate, Path("eval_sets/test_smoke.jsonl")) == {"min": {"metrics.a": 0.4}}
    single = {"min": {"metrics.a": 0.5}}
    assert thresholds_for(single, Path("mine.jsonl")) is single
    with pytest.raises(AdvisorError, match="no table for 'dev'"):
        thresholds_for(gate, Path("eval_sets/dev.jsonl"))


def test_the_coverage_curve_is_read_from_the_records():
    items = [
        EvalItem(id=i, user_input=i, kind=k)
        for i, k in (
            ("a", "fact"),
            ("b", "advice"),
            ("c", "out_of_scope"),
            ("d", "out_of_scope"),
            ("e", "aggregate"),
        )
    ]
    p = {"a": 0.1, "b": 0.6, "c": 0.7, "d": 0.3}
    records = {
        i: {"refused": False, "analysis": {"coverage": {"not_covered_probability": v}}} for i, v in p.items()
    }
    records["e"] = {"refused": False}  # answered from the catalogue: no probability, left out
    at = {c["threshold"]: c for c in coverage_curve(items, records)}
    assert at[0.5] == {"threshold": 0.5, "precision": 0.5, "recall": 0.5, "false_refusal_rate": 0.5}
    assert at[0.2] == {"threshold": 0.2, "precision": 0.667, "recall": 1.0, "false_refusal_rate": 0.5}
    assert coverage_curve(items[:2], records) == []  # no out-of-scope row: no curve


def test_case_metrics_are_compared_side_by_side():
    cases = compare_cases({"advisor": case_summary(0.875), "passages": case_summary(0.125), "baseline": None})
    assert cases == {
        "aggregate": {
            "n": 2,
            "case_recall": {"advisor": 0.875, "passages": 0.125},
            "case_precision": {"advisor": 0.4375, "passages": 0.0625},
        }
    }
