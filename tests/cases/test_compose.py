"""Catalogue answers: one cited row per case for lists, counts, comparisons and "cases like mine"."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from advisor.cases import NO_SIMILAR_CASE, CaseQuery, normalise_space
from advisor.cases.reading import Reading
from advisor.types import Filters
from tests.cases.helpers import CHAMPIONS, MENTAL_HEALTH, NUFFIELD, TARIFF, TRIALS, assert_cited, rows


def test_tariff_question_is_answered_from_the_catalogue(built_advisor):
    answer = built_advisor.ask("Which innovations used a national tariff or payment to spread?")
    assert_cited(answer)
    cited = rows(answer)
    assert {name for name, _ in cited} == TARIFF
    assert len(cited) == 6  # one cited row per matching case
    record = answer.to_record()
    assert record["route"] == "catalogue" and len(record["citations"]) == 6
    assert [r["case"] for r in record["rows"]] == [r.case for r in answer.rows]


def test_champions_question_lists_one_row_per_case(built_advisor, advisor_catalogue):
    answer = built_advisor.ask("Which ones spread through clinical champions?")
    assert_cited(answer)
    expected = {c.name for c in advisor_catalogue.filter(mechanism="clinical champions")}
    cited = rows(answer)
    assert [n for n, _ in cited] == [c.name for c in advisor_catalogue.cases if c.name in expected]
    assert len(expected) >= 10
    for name, sentence in cited:
        assert "clinical champions" in sentence.text


def test_how_many_question_counts(built_advisor):
    answer = built_advisor.ask("How many case studies are digital tools?")
    assert_cited(answer)
    assert answer.text.startswith(
        "8 of the 23 case studies in the catalogue match innovation type digital tool"
    )
    assert len(rows(answer)) == 8


def test_compare_named_cases(built_advisor, advisor_catalogue):
    # a question read as across cases that names two catalogued cases is a comparison; the fitted
    # model has seen no comparison on dev, so the reading is given here (README, issue 15 note)
    reading = Reading({"list": 1.0}, query=CaseQuery("compare", names=("IAPT", "RAID")))
    answer = advisor_catalogue.answer_reading("Compare IAPT and RAID", reading, built_advisor.index)
    assert_cited(answer)
    assert {name for name, _ in rows(answer)} == {"IAPT", "RAID"}


def test_filters_restrict_the_cases(built_advisor):
    answer = built_advisor.ask(
        "Which innovations used a national tariff or payment to spread?", filters=Filters(sources=(NUFFIELD,))
    )
    assert_cited(answer)
    assert {name for name, _ in rows(answer)} == {"KardiaMobile", "my mhealth (myCOPD)"}


@pytest.mark.parametrize(
    "question, expected",
    [
        ("Which innovations used champions to persuade their peers?", CHAMPIONS),
        ("How many innovations are used in mental health services?", MENTAL_HEALTH),
        pytest.param(
            "Which cases had trial evidence behind them?",
            TRIALS,
            # the span "cases" is closest to "case studies and testimony": a known misreading
            marks=pytest.mark.xfail(strict=True, reason="conditions read by meaning misread 'cases'"),
        ),
    ],
)
def test_paraphrased_questions_are_answered_with_one_cited_row_per_case(built_advisor, question, expected):
    answer = built_advisor.ask(question)
    assert_cited(answer)
    assert {name for name, _ in rows(answer)} == expected and len(rows(answer)) == len(expected)


# ---- cases like mine -------------------------------------------------------------------
@pytest.mark.parametrize(
    "description",
    [
        "a recipe for chocolate cake with strawberries",
        "my cat likes sleeping on the sofa all afternoon",
        "zxqv blorp",
    ],
)
def test_nothing_in_common_says_so(built_advisor, advisor_catalogue, description):
    assert advisor_catalogue.like(description) == []
    answer = built_advisor.ask(f"Show me cases like mine: {description}")
    assert answer.refused and answer.route == "cases_like_mine"
    assert "None of the case studies" in answer.text and not answer.citations


def test_one_similar_case_is_answered_as_one(built_advisor):
    answer = built_advisor.ask(
        "Cases like mine: a structured education course for adults with type 1 diabetes"
    )
    assert_cited(answer)
    assert answer.text.startswith("The 1 case study most like yours")
    assert {name for name, _ in rows(answer)} == {"DAFNE"}


def test_cases_like_mine_through_the_advisor(built_advisor):
    answer = built_advisor.ask("Show me cases like mine: a digital tool for primary care, a small company")
    assert_cited(answer)
    assert "most like yours" in answer.text
    assert "How " in answer.text and "spread:" in answer.text


def test_a_row_whose_quote_is_not_indexed_is_left_out_and_said_so(built_advisor, advisor_catalogue):
    catalogue = advisor_catalogue
    lantum = {e.quote for e in catalogue.get("Lantum").evidence}
    chunks = [c for c in built_advisor.index.chunks if not any(q in normalise_space(c.text) for q in lantum)]

    index = SimpleNamespace(generation="without Lantum", chunks=chunks)
    answer = catalogue.answer("Which ones spread through clinical champions?", index)
    assert_cited(answer)
    assert {name for name, _ in rows(answer)} == CHAMPIONS - {"Lantum"}
    assert answer.notes[0].endswith("(run `advisor ingest`): Lantum.")
    assert answer.heading.startswith(
        f"The case studies recorded with spread through clinical champions ({len(CHAMPIONS)} of 23)"
    )


def test_a_criterion_no_case_has_is_answered_with_none(built_advisor, advisor_catalogue):
    query = CaseQuery(
        "list", tags={"innovation_type": frozenset({"treatment"}), "setting": frozenset({"primary care"})}
    )
    answer = advisor_catalogue.answer_reading(
        "Which case studies were treatments in primary care?",
        Reading({"list": 1.0}, query=query),
        built_advisor.index,
    )
    assert answer.route == "catalogue" and not answer.citations and not answer.rows
    assert answer.text == (
        "None of the 23 case studies in the catalogue is recorded with "
        "innovation type treatment and setting primary care."
    )
    assert answer.notes == ("Answered from the case-study catalogue: no case matched.",)


def test_nothing_like_it_is_the_no_similar_case_refusal(built_advisor, catalogue):
    answer = catalogue.like_answer("zxqv blorp", built_advisor.index)
    assert answer.refused and answer.text == NO_SIMILAR_CASE and answer.route == "cases_like_mine"
