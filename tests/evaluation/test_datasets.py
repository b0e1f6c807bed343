"""Loading question sets: every problem named by file, line and field; lenient mode skips and counts."""

from __future__ import annotations

import pytest

from advisor.evaluation.datasets import EvalItem, EvalSetError, load_eval_set
from tests.evaluation.samples import CORPUS, GOOD, NUFFIELD, QUOTE, write_set


@pytest.mark.parametrize(
    "bad,message",
    [
        ("{not json", "not valid JSON"),
        ({"id": "b"}, "user_input: missing or empty"),
        ({"id": "b", "user_input": "q", "kind": "trivia"}, "kind: unknown kind 'trivia'"),
        (
            {
                "id": "b",
                "user_input": "q",
                "reference_contexts": ["words never written"],
                "sources": [NUFFIELD],
            },
            "reference_contexts: quote not found",
        ),
        ({"id": "a", "user_input": "again"}, "id: duplicate id"),
    ],
)
def test_malformed_lines_name_the_file_and_line(tmp_path, bad, message):
    path = write_set(tmp_path, [GOOD, bad])
    with pytest.raises(EvalSetError, match=message) as info:
        load_eval_set(path, CORPUS)
    assert f"{path}:2:" in str(info.value)


@pytest.mark.parametrize(
    "bad,message",
    [
        ({"id": "b", "user_input": "   "}, "user_input: missing or empty"),
        ({"id": 7, "user_input": "q"}, "id: must be a string"),
        ([1, 2], "each line must be a JSON object"),
        (
            {"id": "b", "user_input": "q", "reference_contexts": [QUOTE, 3], "sources": [NUFFIELD]},
            "reference_contexts[1]: must be a string",
        ),
        (
            {"id": "b", "user_input": "q", "reference_contexts": QUOTE, "sources": [NUFFIELD]},
            "reference_contexts: must be a list",
        ),
        (
            {"id": "b", "user_input": "q", "sources": ["no-such-report.txt"], "reference_contexts": [QUOTE]},
            "sources: source 'no-such-report.txt' is not in the corpus",
        ),
        ({"id": "b", "user_input": "q", "kind": "out_of_scope", "sort": "rude"}, "sort: unknown sort 'rude'"),
        (
            {"id": "b", "user_input": "q", "kind": "fact", "sort": "near_miss"},
            "sort: sort is for out_of_scope rows only (this row's kind is 'fact')",
        ),
    ],
)
def test_each_problem_is_located_at_its_field(tmp_path, bad, message):
    path = write_set(tmp_path, [GOOD, bad])
    with pytest.raises(EvalSetError) as info:
        load_eval_set(path, CORPUS)
    assert str(info.value).startswith(f"{path}:2: {message}")


def test_all_problems_of_one_line_in_one_message(tmp_path):
    path = write_set(tmp_path, [{"id": "", "user_input": "q", "kind": "trivia"}])
    with pytest.raises(EvalSetError) as info:
        load_eval_set(path, CORPUS)
    assert str(info.value).startswith(f"{path}:1: id: missing or empty; kind: unknown kind 'trivia'")


def test_lenient_mode_skips_and_counts(tmp_path):
    path = write_set(tmp_path, [GOOD, "{oops", {"id": "c", "user_input": "Only a question"}])
    loaded = load_eval_set(path, CORPUS, lenient=True)
    assert [i.id for i in loaded.items] == ["a", "c"]
    assert [i.line for i in loaded.items] == [1, 3]
    assert len(loaded.warnings) == 1 and ":2:" in loaded.warnings[0]
    assert loaded.warnings[0].endswith("(skipped)")
    assert loaded.case_names is None  # no row asks for the catalogue


def test_a_missing_or_empty_set_is_an_error(tmp_path):
    with pytest.raises(EvalSetError, match="No such question set"):
        load_eval_set(tmp_path / "absent.jsonl", CORPUS)
    with pytest.raises(EvalSetError, match="no usable questions"):
        load_eval_set(write_set(tmp_path, ["{oops"]), CORPUS, lenient=True)


def test_rows_are_read_into_items():
    item = EvalItem.model_validate({**GOOD, "reference": "", "expected_cases": None, "extra": 1})
    assert item.reference is None and item.reference_contexts == (QUOTE,) and item.sources == (NUFFIELD,)
    assert (
        EvalItem.model_validate({"id": "x", "user_input": "q", "reference_contexts": []}).reference_contexts
        is None
    )


def test_expected_cases_must_be_catalogue_names(tmp_path):
    good = {
        "id": "c",
        "user_input": "Which used a tariff?",
        "kind": "aggregate",
        "expected_cases": ["my mhealth (myCOPD)"],
    }
    loaded = load_eval_set(write_set(tmp_path, [good]), CORPUS)
    assert loaded.items[0].expected_cases == ("my mhealth (myCOPD)",)
    assert "my mhealth (myCOPD)" in loaded.case_names.cases
    alias = {**good, "expected_cases": ["myCOPD"]}
    with pytest.raises(
        EvalSetError,
        match=r"'myCOPD' is not in the case-study catalogue \(its name there is 'my mhealth \(myCOPD\)'\)",
    ):
        load_eval_set(write_set(tmp_path, [alias]), CORPUS)
    with pytest.raises(EvalSetError, match="'Theranos' is not in the case-study catalogue"):
        load_eval_set(write_set(tmp_path, [{**good, "expected_cases": ["Theranos"]}]), CORPUS)
    with pytest.raises(EvalSetError, match="non-empty list"):
        load_eval_set(write_set(tmp_path, [{**good, "expected_cases": []}]), CORPUS)
    twice = {**good, "expected_cases": ["my mhealth (myCOPD)", "my mhealth (myCOPD)"]}
    with pytest.raises(EvalSetError, match="expected_cases: expected_cases names a case twice"):
        load_eval_set(write_set(tmp_path, [twice]), CORPUS)


def test_a_catalogue_that_does_not_load_stops_even_a_lenient_load(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    row = {"id": "c", "user_input": "Which used a tariff?", "kind": "aggregate", "expected_cases": ["DAFNE"]}
    with pytest.raises(EvalSetError, match="expected_cases need the case-study catalogue"):
        load_eval_set(write_set(tmp_path, [row]), corpus, lenient=True)
