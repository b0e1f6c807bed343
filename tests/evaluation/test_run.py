"""Running a set: resumable answering, results.jsonl."""

from __future__ import annotations

import json

import pytest

from advisor.evaluation.datasets import EvalItem
from advisor.evaluation.run import answer_all, write_results


def test_interrupted_run_keeps_answers_and_resumes(tmp_path):
    items = [EvalItem(id=f"q{i}", user_input=f"question {i}") for i in range(5)]
    calls: list[str] = []

    def flaky(question):
        calls.append(question)
        if question == "question 3" and calls.count(question) == 1:
            raise KeyboardInterrupt
        return {"question": question, "answer": "x", "refused": False, "passages": []}

    with pytest.raises(KeyboardInterrupt):
        answer_all(items, flaky, tmp_path)
    assert len((tmp_path / "records.jsonl").read_text().splitlines()) == 3
    records = answer_all(items, flaky, tmp_path)
    assert list(records) == [i.id for i in items]
    assert calls.count("question 0") == 1 and calls.count("question 3") == 2


def test_resume_answers_an_edited_question_again(tmp_path):
    answers = []

    def answer(question):
        answers.append(question)
        return {"question": question, "answer": "x", "refused": False, "passages": []}

    answer_all([EvalItem(id="q1", user_input="old wording")], answer, tmp_path)
    records = answer_all([EvalItem(id="q1", user_input="new wording")], answer, tmp_path)
    assert records["q1"]["question"] == "new wording" and answers == ["old wording", "new wording"]


def test_a_line_cut_short_is_answered_again(tmp_path):
    (tmp_path / "records.jsonl").write_text('{"id": "q1", "question": "a", "answer": "x"}\n{"id": "q2", "que')
    answered = []
    items = [EvalItem(id="q1", user_input="a"), EvalItem(id="q2", user_input="b")]
    records = answer_all(items, lambda q: answered.append(q) or {"question": q, "answer": "y"}, tmp_path)
    assert answered == ["b"] and records["q1"]["answer"] == "x" and records["q2"]["answer"] == "y"


def test_results_carry_the_record_the_row_s_kind_and_sources_and_the_metrics(tmp_path):
    items = [EvalItem(id="q1", user_input="a", kind="fact", sources=("r.txt",))]
    write_results(tmp_path, items, {"q1": {"id": "q1", "answer": "x"}}, {"q1": {"m": 0.5}}, "out.jsonl")
    (row,) = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert row == {"id": "q1", "answer": "x", "kind": "fact", "sources": ["r.txt"], "metrics": {"m": 0.5}}
