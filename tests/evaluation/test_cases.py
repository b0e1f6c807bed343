"""Questions across case studies: which cases an answer names, and the case metrics."""

from __future__ import annotations

import math

import pytest

from advisor.evaluation.cases import (
    CaseNames,
    case_hit_at,
    case_precision,
    case_recall,
    cases_named,
    cases_retrieved,
)
from tests.evaluation.samples import CORPUS, NAMES, listing


def test_a_case_counts_only_when_named_with_a_citation():
    record = listing(
        [
            ("KardiaMobile (Nuffield 2020): tariff or payment: “paid through the ERAS CQUIN”", [1]),
            ("DAFNE was also mentioned, but without a citation.", []),
            ("ERAS+ (Nuffield 2020): pathway", [2]),
        ]
    )
    named = cases_named(record, NAMES)
    assert named == [
        "KardiaMobile",
        "ERAS+",
    ]  # not DAFNE (no marker), not ERAS (inside the quotation, or in ERAS+)
    expected = ["KardiaMobile", "DAFNE"]
    assert case_recall(named, expected) == 0.5
    assert case_precision(named, expected) == 0.5  # the unexpected ERAS+ halves precision
    assert (
        case_recall(["KardiaMobile"], expected) == 0.5 and case_precision(["KardiaMobile"], expected) == 1.0
    )
    assert math.isnan(case_precision([], expected))
    assert case_hit_at(["ERAS+", "ERAS", "DAFNE"], expected, 3) == 1.0
    assert case_hit_at(["ERAS+", "ERAS", "ERAS", "DAFNE"], expected, 3) == 0.0
    unresolved = listing([("KardiaMobile is listed.", [1])])
    unresolved["citations"] = []  # a marker that maps to no citation names nothing
    assert cases_named(unresolved, NAMES) == []
    assert cases_named({**record, "refused": True}, NAMES) == []


def test_a_shared_alias_counts_for_the_case_its_citation_supports():
    record = listing(
        [("Schwartz Rounds spread through pilots.", [1])], cited_cases={1: "Schwartz Rounds (UK)"}
    )
    assert cases_named(record, NAMES) == ["Schwartz Rounds (UK)"]
    uncited_case = listing([("Schwartz Rounds spread through pilots.", [1])])
    assert set(cases_named(uncited_case, NAMES)) == {
        "Schwartz Rounds (UK)",
        "Schwartz Rounds (Point of Care Foundation)",
    }


def test_passage_retrieval_names_the_top_k_case_studies():
    passages = [
        {"rank": r, "case_study": c, "text": ""}
        for r, c in [(2, "DAFNE"), (1, "ERAS"), (3, None), (4, "ERAS"), (5, "KardiaMobile"), (6, "ERAS+")]
    ]
    assert cases_retrieved({"passages": passages}, k=5) == ["ERAS", "DAFNE", "KardiaMobile"]


def test_an_alias_gives_its_catalogue_name_only_when_one_case_goes_by_it():
    assert NAMES.canonical("AliveCor") == "KardiaMobile"
    assert NAMES.canonical(" enhanced recovery after surgery ") == "ERAS"
    assert NAMES.canonical("Schwartz Rounds") is None  # two cases share it
    assert NAMES.canonical("Theranos") is None


def test_case_names_come_from_the_catalogue():
    names = CaseNames.from_corpus(CORPUS)
    assert "my mhealth (myCOPD)" in names.cases
    assert names.canonical("myCOPD") == "my mhealth (myCOPD)"


def test_passage_only_mode_bypasses_the_catalogue(built_advisor, monkeypatch):
    """The passage side of the comparison: the same advisor asked with its catalogue off."""
    question = "Which innovations used a national tariff or payment to spread?"
    served = built_advisor.ask(question)
    assert served.route == "catalogue"
    catalogue = type(built_advisor.case_catalogue.current)  # any catalogue, the one a reload brings too
    with monkeypatch.context() as patch:
        patch.setattr(catalogue, "answer", lambda *a, **kw: pytest.fail("the catalogue must not be asked"))
        built_advisor.load()  # an index reload inside the comparison does not bring the catalogue back
        plain = built_advisor.ask(question, use_catalogue=False)
    assert plain.route == "passages" and len(plain.passages) == 5
    assert cases_retrieved(plain.to_record(), k=5)  # the passages carry their case studies
    assert built_advisor.ask(question).route == "catalogue"  # still served with it otherwise
