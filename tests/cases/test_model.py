"""The catalogue's data classes: field values, tags, the report's short name and JSON records."""

from __future__ import annotations

from advisor.cases import TAG_FIELDS, CaseMatch, CaseStudy, Evidence

DESCRIPTION = Evidence("description", "A staff bank.", "Lantum is a staff bank", 10)
SETTING = Evidence("setting", "primary care", "used by GP practices across", 12)
SETTING_AGAIN = Evidence("setting", "primary care", "in general practice since", 14)
SCALE = Evidence("scale", "Used in 50 sites.", "in use in 50 sites by 2019", 20, year=2019)
CASE = CaseStudy(
    name="Lantum",
    source="nuffield.txt",
    section="Case studies > Lantum",
    evidence=(DESCRIPTION, SETTING, SETTING_AGAIN, SCALE),
    aliases=("Lantum Ltd",),
    title="Achieving scale and spread",
    publisher="Nuffield Trust (for the Health Foundation)",
    year=2020,
    lines=(5, 30),
)


def test_values_are_distinct_and_in_catalogue_order():
    assert CASE.values("setting") == ("primary care",)
    assert CASE.tags == {f: (("primary care",) if f == "setting" else ()) for f in TAG_FIELDS}
    assert CASE.description == "A staff bank."
    assert CASE.evidence_for("setting") == [SETTING, SETTING_AGAIN]
    assert CASE.evidence_for("setting", "acute care") == []


def test_the_report_is_named_by_publisher_and_year():
    assert CASE.report == "Nuffield Trust 2020"
    undated = CaseStudy("X", "x.txt", "s", (DESCRIPTION,), publisher="The King's Fund")
    assert undated.report == "The King's Fund"
    assert CaseStudy("X", "x.txt", "s", (DESCRIPTION,)).report == "x.txt"


def test_records_carry_every_value_with_its_quote():
    record = CASE.to_record()
    assert record["tags"]["setting"] == ["primary care"] and record["lines"] == [5, 30]
    assert record["evidence"][3] == {
        "field": "scale",
        "value": "Used in 50 sites.",
        "quote": "in use in 50 sites by 2019",
        "line": 20,
        "year": 2019,
    }
    assert "year" not in record["evidence"][0]


def test_a_match_record_cites_its_report():
    match = CaseMatch(
        CASE, 0.81234, ("setting: primary care",), (SETTING,), ("organisation: charity (not NHS)",)
    )
    record = match.to_record()
    assert record["score"] == 0.8123 and record["reasons"] == ["setting: primary care"]
    assert record["citations"] == [{**SETTING.to_record(), "source": "nuffield.txt"}]
