"""Reading questions across cases: which are (list, count, compare, like) and which are left to the passages."""

from __future__ import annotations

import pytest

from advisor.cases import CaseQuery
from tests.cases.helpers import (
    AHSN_SUPPORT,
    CHAMPIONS,
    COMPANIES,
    DIGITAL_IN_PRIMARY_CARE,
    FUNDING_ENDED,
    MENTAL_HEALTH,
    NATIONAL_PROGRAMME,
    NICE,
    SPIN_OUT,
    TARIFF,
    TRIALS,
)


@pytest.mark.parametrize(
    "question",
    [
        "How did KardiaMobile reach patients?",
        "What are the three core pillars for adopting a proven innovation?",
        "Which innovations failed to spread?",  # a criterion the catalogue does not record
        "Which digital tools struggled with interoperability?",
        "What barriers did innovators face?",
        # advice questions that mention a vocabulary value without asking for cases
        "What role do clinical champions play in spreading an innovation?",
        "How do I find a clinical champion for my innovation?",
        "How many clinical champions does an innovation need?",
        "Why do national programmes matter for spread?",
        "How can a tariff help an innovation spread?",
        "Is a randomised controlled trial necessary before spreading a digital tool?",
        "Should I set up a spin-out to spread my innovation?",
        "What should a private company know about selling to the NHS?",
        "What do GP practices look for in a digital tool?",
        "How does NICE guidance affect adoption?",
        "What happens when funding ends for an innovation?",
        "What national programmes are there?",  # asks about programmes, not cases
        # "innovations" as the object of an advice question, not what is asked for
        "What funding helps innovations spread?",
        "What grant funding helps innovations spread?",
        "What evidence convinces adopters of innovations?",
        # asking for cases, but by something the catalogue does not record
        "Which innovations reduced hospital admissions?",
        "Which digital tools improved patient outcomes in primary care?",
        "What innovations should I consider for primary care?",
        "Which innovations helped patients?",
    ],
)
def test_other_questions_are_left_to_the_passages(catalogue, question):
    assert catalogue.read(question) is None


@pytest.mark.parametrize(
    "question, kind, expected",
    [
        ("Name the cases where a clinical champion drove adoption.", "list", CHAMPIONS),
        ("Which innovations used champions to persuade their peers?", "list", CHAMPIONS),
        ("Which of the case studies were part of an NHS England programme?", "list", NATIONAL_PROGRAMME),
        # the examples after "for example" are examples of the criterion, not criteria of their own
        # (else "NHS England" would also ask for a national body as the organisation)
        (
            (
                "Which innovations were boosted by a national initiative, for example the NHS Innovation "
                "Accelerator or NHS England's Test Beds?"
            ),
            "list",
            NATIONAL_PROGRAMME,
        ),
        (
            "Are there any cases that were paid for through the Quality and Outcomes Framework?",
            "list",
            TARIFF,
        ),
        ("Which innovations were reimbursed through a payment incentive?", "list", TARIFF),
        ("Give me examples of innovations backed by randomised trials.", "list", TRIALS),
        ("Which cases had trial evidence behind them?", "list", TRIALS),
        ("Which innovations were spun off into an independent organisation?", "list", SPIN_OUT),
        ("How many of the case studies came from start-ups or SMEs?", "count", COMPANIES),
        ("Which innovations were made by a commercial company?", "list", COMPANIES),
        ("What digital tools are used in GP surgeries?", "list", DIGITAL_IN_PRIMARY_CARE),
        ("How many apps have been adopted by general practices?", "count", DIGITAL_IN_PRIMARY_CARE),
        ("Which innovations were recommended by NICE?", "list", NICE),
        ("Which innovations struggled once their funding ended?", "list", FUNDING_ENDED),
        ("Which case studies were supported by AHSNs?", "list", AHSN_SUPPORT),
        # "developed by" names the organisation, not the support it had
        (
            "Which innovations were developed by an AHSN?",
            "list",
            {"FeNO testing", "Ambient Voice Technology in London"},
        ),
        # "services" is the head noun of "mental health services", not the innovation type "service model"
        ("How many innovations are used in mental health services?", "count", MENTAL_HEALTH),
    ],
)
def test_paraphrased_questions_across_cases_are_read(catalogue, question, kind, expected):
    query = catalogue.read(question)
    assert query is not None and query.kind == kind, query
    assert {c.name for c in catalogue.matching(query)} == expected, query.tags


def test_a_comparison_names_two_cases_by_name_or_alias(catalogue):
    assert catalogue.read("Compare IAPT and RAID") == CaseQuery("compare", names=("IAPT", "RAID"))
    query = catalogue.read("How does PKB differ from Kardia?")
    assert query.kind == "compare" and set(query.names) == {"Patients Know Best", "KardiaMobile"}


def test_cases_like_mine_carries_the_description(catalogue):
    query = catalogue.read("Show me cases like mine: a digital tool for primary care")
    assert query == CaseQuery("like", text="a digital tool for primary care")


def test_values_joined_by_or_ask_for_any_of_them(catalogue):
    query = catalogue.read("Which innovations used a national tariff or payment to spread?")
    assert query.kind == "list" and not query.any_of
    query = catalogue.read("Which innovations were digital tools or products?")
    assert query.tags == {"innovation_type": frozenset({"digital tool", "product"})} and query.any_of
    either = catalogue.filter(innovation_type="digital tool") + catalogue.filter(innovation_type="product")
    assert {c.name for c in catalogue.matching(query)} == {c.name for c in either}
    assert len(catalogue.matching(query)) > len(catalogue.filter(innovation_type="digital tool"))
