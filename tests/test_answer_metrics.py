"""Answer-level metrics (issue 12): key facts, cited evidence, filler, and honest quote matching."""

from __future__ import annotations

import math

import pytest

from advisor.answer_metrics import cited_evidence_hit, filler_share, key_fact_recall, key_facts, numbers
from advisor.config import PROJECT_ROOT
from advisor.evaluation import (
    EvalItem,
    check_thresholds,
    paired,
    quote_found,
    quote_found_exact,
    summarise,
)

CORPUS = PROJECT_ROOT / "corpus"
PKB = "PKB is currently in use in over 200 sites across seven countries."


def _record(sentences, passages, cited=(1,), refused=False, answer=None):
    """An advisor record: `sentences` cite marker 1 -> the first passage (`cited` chooses markers)."""
    return {
        "question": "q",
        "refused": refused,
        "backend": "extractive",
        "answer": answer if answer is not None else " ".join(sentences),
        "sentences": [{"text": s, "markers": list(cited), "verdict": "supported"} for s in sentences],
        "citations": [{"marker": i, "chunk_id": f"c{i}", "quote": ""} for i in range(1, len(passages) + 1)],
        "passages": [{"rank": i, "chunk_id": f"c{i}", "text": p} for i, p in enumerate(passages, start=1)],
    }


def test_key_facts_are_numbers_and_names_not_the_question_s_own():
    reference = (
        "PKB is in use in over 200 sites across seven countries; "
        "it was founded by Mohammad Al-Ubaydli in 2008."
    )
    facts = key_facts(reference, "In how many sites is Patients Know Best used?", CORPUS)
    assert facts == ["200", "2008", "7", "pkb", "mohammad al ubaydli"]
    # a name or number the question states is not a fact the answer has to carry
    assert "200" not in key_facts(reference, "Is it true PKB has 200 sites?", CORPUS)
    assert "pkb" not in key_facts(reference, "Is it true PKB has 200 sites?", CORPUS)
    # an ordinary word opening a sentence is no name; a possessive is read as the name
    assert key_facts("They worked with NHS England's team.", "How?", CORPUS) == ["nhs england"]


def test_numbers_are_normalised():
    assert numbers("1,200 staff in seven trusts, 12.5% of them") == {"1200", "7", "12.5"}


def test_key_fact_recall_counts_what_the_answer_carries():
    reference = "PKB is in use in over 200 sites across seven countries."
    assert key_fact_recall(reference, "How widely is it used?", PKB, CORPUS) == 1.0
    assert key_fact_recall(reference, "How widely is it used?", "It is used in 20 sites.", CORPUS) == 0.0
    assert key_fact_recall(
        reference, "How widely is it used?", "PKB is in 200 places.", CORPUS
    ) == pytest.approx(2 / 3)
    assert math.isnan(key_fact_recall("It depends on local leaders.", "Why?", "Anything.", CORPUS))


def test_cited_evidence_hit_needs_the_quote_in_a_cited_passage():
    other = "Lantum sells staffing software to GP practices."
    assert cited_evidence_hit(_record([PKB], [PKB, other]), [PKB], quote_found) == 1.0
    # the quote is retrieved (passage 2) but the answer cites passage 1 only
    assert cited_evidence_hit(_record([other], [other, PKB]), [PKB], quote_found) == 0.0
    assert cited_evidence_hit(_record([], [PKB], refused=True), [PKB], quote_found) == 0.0
    assert math.isnan(cited_evidence_hit(_record([PKB], [PKB]), [], quote_found))


def test_filler_is_a_sentence_sharing_only_the_topic_with_the_reference():
    question = "What are the main barriers to spreading innovations in the NHS?"
    reference = "Lack of time and capacity among staff, and funding that ends after the pilot."
    scene = "The NHS undoubtedly offers extensive opportunities for the scale and spread of innovations."
    point = "Staff lacked time and capacity to adopt the change once pilot funding ended."
    record = _record([scene, point], [scene + " " + point])
    assert filler_share(record, question, reference, [], CORPUS) == 0.5
    assert filler_share(_record([point], [point]), question, reference, [], CORPUS) == 0.0
    assert math.isnan(filler_share(_record([], [point], refused=True), question, reference, [], CORPUS))


def test_near_quote_matching_keeps_the_numbers():
    passage = "The Foundation was established in 2015 and supported 71 organisations by the end of the year."
    assert quote_found("The Foundation was established in 2015 and supported 71 organisations", [passage])
    # one digit apart passes an 85 edit-distance match; a changed number is another fact
    assert not quote_found("The Foundation was established in 2007 and supported 71 organisations", [passage])
    assert not quote_found("The Foundation was established in 2015 and supported 17 organisations", [passage])
    # exact matching forgives case and punctuation only
    assert quote_found_exact("the foundation was established in 2015", [passage])
    assert not quote_found_exact("The Foundation was set up in 2015", [passage])
    assert quote_found("The Foundation was set up in 2015 and supported 71 organisations", [passage])


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


def test_the_coverage_curve_is_read_from_the_records():
    from advisor.evaluation import coverage_curve

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
