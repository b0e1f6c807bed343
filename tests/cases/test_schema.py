"""The YAML files' shapes (pydantic): what is wrong is named with the entry and the field."""

from __future__ import annotations

import copy

import pytest
import yaml

from advisor.cases import VOCABULARY_NAME, Vocabulary
from advisor.cases.schema import MAX_REPORTED, parse_catalogue, parse_vocabulary
from advisor.errors import CatalogueError
from tests.conftest import CORPUS

QUOTE = "a quote of several words"


@pytest.fixture(scope="module")
def vocabulary_data() -> dict:
    return yaml.safe_load((CORPUS / VOCABULARY_NAME).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def vocabulary(vocabulary_data) -> Vocabulary:
    return Vocabulary(parse_vocabulary(vocabulary_data, VOCABULARY_NAME))


def _entry(name="Lantum", **changes) -> dict:
    entry = {
        "name": name,
        "source": "report.txt",
        "section": "Case studies > " + name,
        "evidence": [
            {"field": "description", "value": "  A staff bank.  ", "quote": QUOTE, "line": 12},
            {"field": "setting", "value": "primary care", "quote": QUOTE},
            {"field": "scale", "value": "Used widely.", "quote": QUOTE, "year": 2019},
        ],
    }
    entry.update(changes)
    return entry


def _problem(data, vocabulary) -> str:
    with pytest.raises(CatalogueError) as info:
        parse_catalogue(data, vocabulary, "cases.yaml")
    return str(info.value)


# ---- the catalogue ------------------------------------------------------------------------
def test_a_valid_entry_is_read(vocabulary):
    parsed = parse_catalogue({"version": 1, "cases": [_entry(aliases=None)]}, vocabulary, "cases.yaml")
    entry = parsed.cases[0]
    assert (entry.name, entry.source, entry.aliases) == ("Lantum", "report.txt", [])
    assert [(e.field, e.value, e.line, e.year) for e in entry.evidence] == [
        ("description", "A staff bank.", 12, None),  # values are stripped
        ("setting", "primary care", None, None),
        ("scale", "Used widely.", None, 2019),
    ]


@pytest.mark.parametrize(
    "change, expected",
    [
        (
            lambda e: e["evidence"][1].update(value="hospital"),
            (
                "cases.yaml, case 2 ('Lantum'), evidence 2 (field 'setting'): unknown tag 'hospital'; "
                "the vocabulary for setting is: primary care, acute care"
            ),
        ),
        (
            lambda e: e["evidence"].append({"field": "colour", "value": "blue", "quote": QUOTE}),
            "cases.yaml, case 2 ('Lantum'), evidence 4 (field 'colour'): unknown field; expected one of",
        ),
        (lambda e: e.pop("source"), "cases.yaml, case 2 ('Lantum'): field 'source' is missing or empty"),
        (
            lambda e: e.update(section=""),
            "cases.yaml, case 2 ('Lantum'): field 'section' is missing or empty",
        ),
        (
            lambda e: e.update(evidence=[]),
            "cases.yaml, case 2 ('Lantum'): field 'evidence' is missing or empty",
        ),
        (
            lambda e: e.update(aliases="PKB"),
            "cases.yaml, case 2 ('Lantum'): field 'aliases': Input should be a valid list",
        ),
        (lambda e: e.pop("name"), "cases.yaml, case 2: field 'name' is missing or empty"),
        (
            lambda e: e["evidence"].pop(0),
            "cases.yaml, case 2 ('Lantum'): field 'description' is missing (every case needs one)",
        ),
        (
            lambda e: e["evidence"][0].update(value=" "),
            "cases.yaml, case 2 ('Lantum'), evidence 1 (field 'description'): 'value' is missing or empty",
        ),
        (
            lambda e: e["evidence"][0].update(quote="two words"),
            (
                "cases.yaml, case 2 ('Lantum'), evidence 1 (field 'description'): "
                "'quote' must be a verbatim passage of 3+ words"
            ),
        ),
        (
            lambda e: e["evidence"][2].update(year=1066),
            "cases.yaml, case 2 ('Lantum'), evidence 3 (field 'scale'): 'year': Input should be greater than or equal to 1900",
        ),
        (
            lambda e: e["evidence"][2].update(line="12"),
            "cases.yaml, case 2 ('Lantum'), evidence 3 (field 'scale'): 'line': Input should be a valid integer",
        ),
        (
            lambda e: e["evidence"].append("a quote"),
            "cases.yaml, case 2 ('Lantum'), evidence 4: expected a mapping with field, value and quote",
        ),
    ],
)
def test_a_problem_is_named_with_its_entry_and_field(vocabulary, change, expected):
    broken = _entry()
    change(broken)
    assert _problem({"cases": [_entry("KardiaMobile"), broken]}, vocabulary).startswith(expected)


@pytest.mark.parametrize("data", [None, [], {"cases": []}, {"cases": {"Lantum": {}}}, {"version": 1}])
def test_the_file_must_hold_a_list_of_cases(vocabulary, data):
    assert _problem(data, vocabulary) == "cases.yaml: expected a top-level 'cases:' list"


def test_an_entry_must_be_a_mapping(vocabulary):
    assert _problem({"cases": [_entry(), "KardiaMobile"]}, vocabulary) == (
        "cases.yaml, case 2: expected a mapping with name, source, section and evidence"
    )


def test_every_problem_is_listed_up_to_a_limit(vocabulary):
    two = _entry()
    two["evidence"][1]["value"] = "hospital"
    two.pop("section")
    lines = _problem({"cases": [two]}, vocabulary).split("\n")
    assert len(lines) == 2
    assert any("field 'section' is missing" in line for line in lines)
    assert any("unknown tag 'hospital'" in line for line in lines)
    many = [_entry(f"Case {n}", section="") for n in range(MAX_REPORTED + 3)]
    lines = _problem({"cases": many}, vocabulary).split("\n")
    assert len(lines) == MAX_REPORTED + 1 and lines[-1] == "... and 3 more"


# ---- the vocabularies ------------------------------------------------------------------------
def test_the_vocabulary_file_is_read(vocabulary, vocabulary_data):
    assert ("setting", "primary care") in vocabulary
    term = vocabulary.terms["setting"]["primary care"]
    assert term.description.startswith("General practice") and "GP surgery" in term.synonyms
    assert vocabulary.terms["innovation_type"]["digital tool"].generic == ("tool", "tools")
    assert sum(len(v) for v in vocabulary.terms.values()) == sum(len(v) for v in vocabulary_data.values())


@pytest.mark.parametrize(
    "change, expected",
    [
        (
            lambda v: v.update(colour={"blue": {}}),
            "unknown tag field 'colour'; expected one of ['innovation_type'",
        ),
        (lambda v: v.pop("barrier"), "field 'barrier' needs a mapping of values"),
        (lambda v: v.update(barrier={}), "field 'barrier' needs a mapping of values"),
        (
            lambda v: v["setting"].update({"primary care": "GPs"}),
            "setting value 'primary care': expected description",
        ),
        (
            lambda v: v["setting"]["primary care"].update(synonyms="GP"),
            "setting value 'primary care': 'synonyms': Input should be a valid list",
        ),
    ],
)
def test_a_vocabulary_problem_names_the_field_and_value(vocabulary_data, change, expected):
    data = copy.deepcopy(vocabulary_data)
    change(data)
    with pytest.raises(CatalogueError) as info:
        parse_vocabulary(data, VOCABULARY_NAME)
    assert str(info.value).startswith(f"{VOCABULARY_NAME}: {expected}"), str(info.value)


def test_a_value_left_blank_has_no_synonyms(vocabulary_data):
    data = copy.deepcopy(vocabulary_data)
    data["setting"]["primary care"] = None
    term = Vocabulary(parse_vocabulary(data, VOCABULARY_NAME)).terms["setting"]["primary care"]
    assert (term.description, term.synonyms, term.generic) == ("", (), ())


def test_the_vocabulary_file_must_be_a_mapping():
    with pytest.raises(CatalogueError, match="expected a mapping of tag fields to their values"):
        parse_vocabulary(["primary care"], VOCABULARY_NAME)
