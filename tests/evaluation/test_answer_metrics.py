"""Answer-level metrics: key facts, cited evidence, filler."""

from __future__ import annotations

import math

import pytest

from advisor.config import PROJECT_ROOT
from advisor.evaluation.answer_metrics import (
    cited_evidence_hit,
    content_words,
    fact_carried,
    filler_share,
    key_fact_recall,
    key_facts,
)
from advisor.text import numbers, quote_found

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


def test_a_fact_is_carried_as_the_same_number_or_the_name_as_a_phrase():
    assert fact_carried("200", "It is in 200 sites.") and fact_carried("12.5", "12.5% of them")
    assert not fact_carried("200", "It is in 2000 sites.")
    assert fact_carried("nhs england", "They worked with NHS England's team.")
    assert not fact_carried("pkb", "PKBX is another product.")


def test_content_words_are_stemmed_without_stop_words_or_exclusions():
    assert content_words("The staff and the pilots of it, in 2019") == {"staf", "pilot", "2019"}
    assert content_words("The staff and the pilots", exclude={"pilot"}) == {"staf"}
