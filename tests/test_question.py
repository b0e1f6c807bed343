"""Question analysis: parts, answer type, named things, everyday vs domain words."""

from __future__ import annotations

import pytest

from advisor.question import MAX_PARTS, analyse, answer_type, is_everyday, split_parts

NAMES = {
    "KardiaMobile": ("AliveCor", "Kardia"),
    "Patients Know Best": ("PKB",),
    "ERAS+": ("Enhanced Recovery After Surgery Plus",),
    "ERAS": (),
    "Schwartz Rounds (Point of Care Foundation)": ("Schwartz Rounds", "Point of Care Foundation"),
}


@pytest.mark.parametrize(
    "question,kind",
    [
        ("How many sites use it?", "number"),
        ("Roughly how much did the pilot cost?", "amount"),
        ("What does Lantum charge per month?", "amount"),
        ("How much time did it save?", "number"),
        ("What percentage of trusts adopted it?", "number"),
        ("When did the programme start?", "date"),
        ("Who paid for the first nurses?", "who"),
        ("Which of the examples were led by a charity?", "list"),
        ("Is it worth running a pilot first?", "yes_no"),
        ("How do I win over a sceptical finance director?", "how"),
        ("Why did the rollout stall?", "how"),
    ],
)
def test_answer_type_follows_the_question_s_grammar(question, kind):
    assert answer_type(question) == kind


def test_a_question_is_split_into_its_parts():
    assert split_parts("How many sites use PKB, and how long did it take to get there?") == [
        "How many sites use PKB",
        "how long did it take to get there?",
    ]
    assert split_parts("Who paid for it? When did it start?") == ["Who paid for it?", "When did it start?"]
    # "and" inside one question does not split it
    assert split_parts("How do champions and managers help?") == ["How do champions and managers help?"]


def test_parts_are_capped_and_the_rest_counted():
    question = (
        "When did ERAS+ start? Who paid for it? How many patients? What was the outcome? Did it spread? "
        "Which trusts use it today?"
    )
    analysis = analyse(question, NAMES)
    assert len(analysis.parts) == MAX_PARTS
    assert analysis.dropped_parts == 2
    assert analysis.part_types == ("date", "who", "number", "how")


def test_named_things_are_cases_acronyms_and_names():
    analysis = analyse("Our CEO asked: did the Point of Care Foundation charge trusts, as PKB does?", NAMES)
    assert set(analysis.cases) == {"Schwartz Rounds (Point of Care Foundation)", "Patients Know Best"}
    assert "CEO" in analysis.named and "Point of Care Foundation" in analysis.named
    # the longer name wins: ERAS+ is not also read as ERAS
    assert analyse("Did ERAS+ spread?", NAMES).cases == ("ERAS+",)


def test_everyday_words_are_told_from_domain_terms_by_word_frequency():
    for word in ("worried", "realistically", "whoever", "tweak", "collapsing", "several", "brilliant"):
        assert is_everyday(word), word
    for word in ("ukca", "dtac", "paracetamol", "kardiamobile"):
        assert not is_everyday(word), word
    analysis = analyse("I'm worried whoever signs off will want a tweak: is UKCA marking needed?", NAMES)
    assert "ukca" in analysis.domain_terms
    assert {"worried", "tweak"} <= set(analysis.everyday_terms)
    assert not {"worried", "whoever", "tweak"} & set(analysis.domain_terms)


def test_another_language_is_recognised():
    assert analyse("¿Cómo puedo escalar mi innovación en el sistema de salud?", NAMES).language == "other"
    assert analyse("How do I scale my innovation in the NHS?", NAMES).language == "en"
    assert analyse("KardiaMobile", NAMES).language == "en"  # a lone name is not another language
