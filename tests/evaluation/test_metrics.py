"""Our metrics as functions: evidence recall (near and exact quote matching), citation faithfulness."""

from __future__ import annotations

import math

from advisor.evaluation.metrics import (
    citation_faithfulness,
    evidence_recall,
    evidence_recall_exact,
    refusal_right,
)
from advisor.text import quote_found, quote_found_exact
from tests.evaluation.samples import QUOTE, listing, record


def test_quote_matching_forgives_cleaning_but_not_other_text():
    cleaned = (
        "Today there are 71 centres across the UK delivering DAFNE, covering approximately 147 localities."
    )
    assert quote_found("Today there are 71 centres across the UK delivering DAFNE courses.", [cleaned])
    assert quote_found(
        "today there are 71 centres across the UK", ["Today there are 71\ncentres across the UK."]
    )
    assert not quote_found("Today there are 17 hospitals in Wales delivering DAFNE courses.", [cleaned])
    assert not quote_found("KardiaMobile is marketed directly to patients.", [cleaned])
    assert evidence_recall([QUOTE, "Lantum sells staffing software to GP practices."], [QUOTE]) == 0.5
    assert math.isnan(evidence_recall([], [QUOTE]))


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
    near = "The Foundation was set up in 2015 and supported 71 organisations"
    assert evidence_recall_exact(["the foundation was established in 2015", near], [passage]) == 0.5
    assert math.isnan(evidence_recall_exact([], [passage]))


def test_citation_faithfulness_catches_an_unquoted_sentence():
    assert citation_faithfulness(record([QUOTE])) == 1.0
    assert citation_faithfulness(record([QUOTE], quote_in_passage=False)) == 0.0
    assert math.isnan(citation_faithfulness(record([], refused=True)))


def test_citation_faithfulness_checks_catalogue_rows_against_their_passages():
    catalogue = listing([("KardiaMobile (Nuffield 2020)", [1])])
    assert citation_faithfulness(catalogue) == 1.0
    catalogue["passages"][0]["text"] = "A passage without it."
    assert citation_faithfulness(catalogue) == 0.0


def test_citation_faithfulness_takes_an_llm_answer_s_own_verdicts():
    answer = {**record([QUOTE, "An unsupported claim."], quote_in_passage=False), "backend": "llamacpp"}
    answer["sentences"][1]["verdict"] = "unsupported"
    assert citation_faithfulness(answer) == 0.5


def test_refusal_is_right_when_it_matches_the_row_s_scope():
    assert refusal_right(True, "out_of_scope") == 1.0 and refusal_right(False, "fact") == 1.0
    assert refusal_right(False, "out_of_scope") == 0.0 and refusal_right(True, "advice") == 0.0
