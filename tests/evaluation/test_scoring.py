"""Scoring through ragas: our metrics and ragas' own, rows skipped and counted, the judge, offline switches."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from advisor.errors import AdvisorError
from advisor.evaluation.datasets import EvalItem
from advisor.evaluation.scoring import build_judge_metrics, judge_llm_from_settings, score, score_cases
from advisor.evaluation.summary import check_thresholds, summarise
from tests.evaluation.samples import NAMES, NUFFIELD, QUOTE, listing, record


def test_metrics_through_ragas_score_and_skip(built_advisor):
    items = [
        EvalItem(
            id="hit",
            user_input="How did KardiaMobile spread?",
            reference="Marketed to patients.",
            reference_contexts=(QUOTE,),
            sources=(NUFFIELD,),
            kind="case_study",
        ),
        EvalItem(
            id="miss",
            user_input="What else?",
            reference="Nothing.",
            reference_contexts=(QUOTE,),
            sources=(NUFFIELD,),
            kind="fact",
        ),
        EvalItem(id="oos", user_input="Who won the World Cup?", kind="out_of_scope"),
        EvalItem(id="bare", user_input="A team's own question"),
    ]
    records = {
        "hit": record([QUOTE]),
        "miss": {**record(["Something else entirely."], quote_in_passage=False)},
        "oos": record([], refused=True),
        "bare": record([QUOTE]),
    }
    values, skipped = score(items, records, built_advisor.embedder, k=5)
    assert values["hit"]["evidence_recall_at_k"] == 1.0
    assert values["miss"]["evidence_recall_at_k"] == 0.0
    assert values["hit"]["evidence_recall_exact"] == 1.0 and values["miss"]["evidence_recall_exact"] == 0.0
    assert values["hit"]["refusal_accuracy"] == 1.0 and values["oos"]["refusal_accuracy"] == 1.0
    assert values["miss"]["citation_faithfulness"] == 1.0
    assert "evidence_recall_at_k" not in values["bare"] and "refusal_accuracy" not in values["bare"]
    assert skipped["evidence_recall_at_k"] == 2  # the out-of-scope and the unreferenced question
    assert skipped["refusal_accuracy"] == 1  # the question without a kind
    assert values["hit"]["semantic_similarity"] > values["miss"]["semantic_similarity"]
    summary = summarise(items, records, values, skipped)
    assert summary["metrics"]["evidence_recall_at_k"] == 0.5
    assert summary["refusal"]["refusal_accuracy_out_of_scope"] == 1.0
    assert summary["refusal"]["false_refusal_rate"] == 0.0
    assert check_thresholds(summary, {"min": {"metrics.evidence_recall_at_k": 0.9}}) == [
        "metrics.evidence_recall_at_k = 0.5 is below the threshold 0.9"
    ]
    assert check_thresholds(summary, {"max": {"refusal.false_refusal_rate": 0.05}}) == []


def test_judge_metrics_wrap_a_langchain_model(built_advisor, make_settings):
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    fake = FakeListChatModel(responses=["{}"])
    metrics = build_judge_metrics(fake, built_advisor.embedder)
    assert len(metrics) == 4
    assert {m.name.split("(")[0] for m in metrics} == {
        "faithfulness",
        "answer_relevancy",
        "context_recall",
        "factual_correctness",
    }
    assert all(m.llm.langchain_llm is fake for m in metrics)
    with pytest.raises(AdvisorError, match="ADVISOR_JUDGE_BASE_URL"):
        judge_llm_from_settings(make_settings())


def test_a_judge_metric_scores_through_evaluate_with_a_fake_model(built_advisor):
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    verdicts = {
        "classifications": [
            {"statement": "It is marketed to patients.", "reason": "in the passage", "attributed": 1},
            {"statement": "It cures strokes.", "reason": "not in the passage", "attributed": 0},
        ]
    }
    fake = FakeListChatModel(responses=[json.dumps(verdicts)])
    recall = next(m for m in build_judge_metrics(fake, built_advisor.embedder) if m.name == "context_recall")
    items = [
        EvalItem(
            id="ref",
            user_input="How did KardiaMobile spread?",
            reference="It is marketed to patients. It cures strokes.",
            reference_contexts=(QUOTE,),
            sources=(NUFFIELD,),
            kind="case_study",
        ),
        EvalItem(id="bare", user_input="A team's own question"),
    ]
    records = {"ref": record([QUOTE]), "bare": record([QUOTE])}
    values, skipped = score(items, records, built_advisor.embedder, k=5, judge_metrics=[recall])
    assert values["ref"]["context_recall"] == 0.5
    assert "context_recall" not in values["bare"] and skipped["context_recall"] == 1


def test_case_metrics_through_ragas_score_skip_other_kinds(built_advisor):
    items = [
        EvalItem(
            id="agg",
            user_input="Which used a tariff?",
            kind="aggregate",
            expected_cases=("KardiaMobile", "DAFNE"),
        ),
        EvalItem(
            id="like",
            user_input="Cases like mine: surgery",
            kind="cases_like_mine",
            expected_cases=("ERAS", "ERAS+"),
        ),
        EvalItem(id="fact", user_input="How many DAFNE centres?", kind="fact"),
    ]
    records = {
        "agg": listing([("KardiaMobile (Nuffield 2020)", [1]), ("ERAS (Against the Odds)", [2])]),
        "like": listing(
            [("DAFNE (Against the Odds)", [1]), ("ERAS+ (Nuffield)", [2]), ("KardiaMobile", [3])]
        ),
        "fact": listing([("DAFNE has 71 centres.", [1])]),
    }
    values, skipped = score(items, records, built_advisor.embedder, k=5, case_names=NAMES)
    assert values["agg"]["case_recall"] == 0.5 and values["agg"]["case_precision"] == 0.5
    assert "case_hit_at_3" not in values["agg"]  # ranking metrics are for cases like mine only
    assert values["like"]["case_hit_at_3"] == 1.0 and values["like"]["case_recall_at_5"] == 0.5
    assert values["like"]["case_precision"] == pytest.approx(1 / 3)
    assert not any(m.startswith("case_") for m in values["fact"])
    assert skipped["case_recall"] == 1 and skipped["case_hit_at_3"] == 2
    by_passages = {
        "agg": {
            "passages": [
                {"rank": 1, "case_study": "DAFNE", "text": "x"},
                {"rank": 2, "case_study": None, "text": "y"},
            ]
        },
        "like": {"passages": []},
        "fact": {"passages": []},
    }
    values, _ = score_cases(items, {k: {**v, "refused": False} for k, v in by_passages.items()}, NAMES, k=5)
    assert values["agg"]["case_recall"] == 0.5 and values["agg"]["case_precision"] == 1.0
    assert values["like"]["case_recall"] == 0.0 and values["like"].get("case_precision") is None


def test_importing_sets_no_environment_and_scoring_sets_the_offline_switches():
    code = (
        "import os\n"
        "import advisor.evaluation\n"
        "from advisor.evaluation.cases import CaseNames\n"
        "print(os.environ.get('RAGAS_DO_NOT_TRACK'))\n"
        "advisor.evaluation.score_cases([], {}, CaseNames({}), k=5)\n"
        "print(os.environ.get('RAGAS_DO_NOT_TRACK'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "RAGAS_DO_NOT_TRACK"}
    result = subprocess.run(
        [sys.executable, "-c", code], check=False, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["None", "true"]
