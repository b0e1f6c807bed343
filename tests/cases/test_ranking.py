"""Choosing cases: by tags, by the question's filters, and "cases like mine" (shared tags and meaning)."""

from __future__ import annotations

import pytest

from advisor.cases import LIKE_MARGIN, normalise_space
from advisor.cases.ranking import allowed, profile
from advisor.errors import CatalogueError
from advisor.types import Filters
from tests.cases.helpers import DIGITAL_IN_PRIMARY_CARE, NUFFIELD, ODDS
from tests.conftest import CORPUS


def test_filter_by_tags(catalogue):
    names = {c.name for c in catalogue.filter(innovation_type="digital tool", setting="primary care")}
    assert names == {
        "KardiaMobile",
        "Lantum",
        "my mhealth (myCOPD)",
        "Florence (Flo)",
        "Ambient Voice Technology in London",
    }
    assert {c.name for c in catalogue.filter(mechanism="spin-out organisation")} == {
        "Schwartz Rounds (Point of Care Foundation)",
        "Florence (Flo)",
        "Schwartz Rounds (UK)",
    }
    assert all(c.source == ODDS for c in catalogue.filter(source=ODDS))
    assert len(catalogue.filter(source=[ODDS, NUFFIELD])) == 18
    with pytest.raises(CatalogueError, match="unknown setting 'hospital'"):
        catalogue.filter(setting="hospital")
    with pytest.raises(CatalogueError, match="unknown tag field 'colour'"):
        catalogue.filter(colour="blue")


def test_the_question_filters_restrict_the_cases(catalogue):
    kardia, raid = catalogue.get("KardiaMobile"), catalogue.get("RAID")
    assert allowed(kardia, None) and allowed(kardia, Filters())
    assert allowed(kardia, Filters(sources=(NUFFIELD,))) and not allowed(raid, Filters(sources=(NUFFIELD,)))
    assert allowed(raid, Filters(case_studies=("RAID",))) and not allowed(
        kardia, Filters(case_studies=("RAID",))
    )
    assert not allowed(raid, Filters(sources=(ODDS,), case_studies=("DAFNE",)))


# ---- cases like mine -------------------------------------------------------------------
@pytest.mark.parametrize(
    "description, top, among",
    [
        (
            "a digital tool for primary care, a small company",
            None,
            {"my mhealth (myCOPD)", "Lantum", "KardiaMobile"},
        ),
        ("a mental health liaison team in an acute hospital", "RAID", set()),
        (
            "a specialist nurse role for people with cancer, funded by a charity",
            "Macmillan Cancer Nurse Specialists",
            set(),
        ),
        ("an education course that helps people with diabetes manage their condition", "DAFNE", set()),
    ],
)
def test_cases_like_mine_ranking(advisor_catalogue, description, top, among):
    matches = advisor_catalogue.like(description, k=5)
    assert matches, description
    names = [m.case.name for m in matches]
    if top:
        assert names[0] == top, names
    if among:
        assert set(names[:3]) == among, names
    assert [m.score for m in matches] == sorted((m.score for m in matches), reverse=True)
    best = matches[0]
    assert best.reasons and best.citations
    for e in best.citations:
        assert e.quote in normalise_space((CORPUS / best.case.source).read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    "description, expected",
    [
        (
            "a specialist nurse role for people with cancer, funded by a charity",
            ["Macmillan Cancer Nurse Specialists"],
        ),
        ("a mental health liaison team in an acute hospital", ["RAID"]),
        (
            "a digital tool for primary care, a small company",
            ["my mhealth (myCOPD)", "Lantum", "KardiaMobile"],
        ),
    ],
)
def test_cases_like_mine_stops_where_similarity_falls_off(advisor_catalogue, description, expected):

    matches = advisor_catalogue.like(description, k=5)
    assert [m.case.name for m in matches] == expected
    assert all(m.score >= matches[0].score - LIKE_MARGIN for m in matches)
    everything = advisor_catalogue.like(description, k=5, margin=None)  # without the cut, five would be shown
    assert len(everything) == 5 and everything[: len(matches)] == matches
    assert everything[len(matches)].score < matches[0].score - LIKE_MARGIN


def test_cases_like_mine_keeps_cases_that_tie(advisor_catalogue):
    matches = advisor_catalogue.like(
        "", k=5, tags={"innovation_type": ["digital tool"], "setting": ["primary care"]}
    )
    assert {m.case.name for m in matches} == DIGITAL_IN_PRIMARY_CARE and {m.score for m in matches} == {1.0}


def test_without_an_embedder_cases_are_ranked_by_tags_alone(catalogue):
    matches = catalogue.like("a digital tool for primary care", k=10)
    # every tag shared, nothing known of meaning: the tags' share of the score
    assert {m.case.name for m in matches} == DIGITAL_IN_PRIMARY_CARE and {m.score for m in matches} == {0.65}
    assert all("similar in meaning" not in r for m in matches for r in m.reasons)
    assert catalogue.like("my cat likes sleeping on the sofa") == []  # no shared tag and no meaning to go by


def test_a_match_says_why_and_where_it_differs(catalogue):
    match = catalogue.like(
        "", tags={"setting": ["primary care"], "organisation_type": ["charity"]}, margin=None, k=30
    )
    lantum = next(m for m in match if m.case.name == "Lantum")
    assert "setting: primary care" in lantum.reasons
    assert lantum.differences == ("organisation: private company (not charity)",)
    assert lantum.citations[0].field == "description"
    assert {e.field for e in lantum.citations} >= {"setting", "organisation_type", "mechanism"}


def test_a_profile_names_the_case_its_description_and_tags(catalogue):
    text = profile(catalogue.get("RAID"))
    assert text.startswith("RAID. ") and "setting: " in text and "evidence used" not in text
