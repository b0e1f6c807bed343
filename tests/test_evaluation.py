"""The evaluation stage: set validation, resumable runs, metrics that can fail, the gate, the CLI."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from advisor.config import PROJECT_ROOT
from advisor.errors import AdvisorError
from advisor.evaluation import (
    EvalItem,
    EvalSetError,
    answer_all,
    build_judge_metrics,
    check_thresholds,
    citation_faithfulness,
    judge_llm_from_settings,
    evidence_recall,
    load_eval_set,
    quote_found,
    score,
    summarise,
)

CORPUS = PROJECT_ROOT / "corpus"
NUFFIELD = "nuffield-2020-achieving-scale-and-spread.txt"
QUOTE = "KardiaMobile is marketed directly to patients, health care professionals and NHS organisations."


def _write(tmp_path, rows) -> Path:
    path = tmp_path / "set.jsonl"
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


GOOD = {"id": "a", "user_input": "How did KardiaMobile spread?", "reference_contexts": [QUOTE], "sources": [NUFFIELD], "kind": "case_study"}


@pytest.mark.parametrize(
    "bad,message",
    [
        ("{not json", "not valid JSON"),
        ({"id": "b"}, "missing or empty field 'user_input'"),
        ({"id": "b", "user_input": "q", "kind": "trivia"}, "unknown kind 'trivia'"),
        ({"id": "b", "user_input": "q", "reference_contexts": ["words never written"], "sources": [NUFFIELD]}, "quote not found"),
        ({"id": "a", "user_input": "again"}, "duplicate id"),
    ],
)
def test_malformed_lines_name_the_file_and_line(tmp_path, bad, message):
    path = _write(tmp_path, [GOOD, bad])
    with pytest.raises(EvalSetError, match=message) as info:
        load_eval_set(path, CORPUS)
    assert f"{path}:2:" in str(info.value)


def test_lenient_mode_skips_and_counts(tmp_path):
    path = _write(tmp_path, [GOOD, "{oops", {"id": "c", "user_input": "Only a question"}])
    loaded = load_eval_set(path, CORPUS, lenient=True)
    assert [i.id for i in loaded.items] == ["a", "c"]
    assert len(loaded.warnings) == 1 and ":2:" in loaded.warnings[0]


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


def test_quote_matching_forgives_cleaning_but_not_other_text():
    cleaned = "Today there are 71 centres across the UK delivering DAFNE, covering approximately 147 localities."
    assert quote_found("Today there are 71 centres across the UK delivering DAFNE courses.", [cleaned])
    assert quote_found("today there are 71 centres across the UK", ["Today there are 71\ncentres across the UK."])
    assert not quote_found("Today there are 17 hospitals in Wales delivering DAFNE courses.", [cleaned])
    assert not quote_found("KardiaMobile is marketed directly to patients.", [cleaned])
    assert evidence_recall([QUOTE, "Lantum sells staffing software to GP practices."], [QUOTE]) == 0.5
    assert math.isnan(evidence_recall([], [QUOTE]))


def _record(answer_sentences, quote_in_passage=True, refused=False):
    passage = QUOTE if quote_in_passage else "Something else entirely."
    return {
        "question": "q", "answer": " ".join(s for s in answer_sentences), "refused": refused, "backend": "extractive",
        "sentences": [{"text": s, "markers": [1], "verdict": "supported"} for s in answer_sentences],
        "citations": [{"marker": 1, "chunk_id": "c1", "quote": answer_sentences[0] if answer_sentences else ""}],
        "passages": [{"rank": 1, "chunk_id": "c1", "source": NUFFIELD, "text": passage}],
        "timings_ms": {"total": 10.0},
    }


def test_citation_faithfulness_catches_an_unquoted_sentence():
    assert citation_faithfulness(_record([QUOTE])) == 1.0
    assert citation_faithfulness(_record([QUOTE], quote_in_passage=False)) == 0.0
    assert math.isnan(citation_faithfulness(_record([], refused=True)))


def test_metrics_through_ragas_score_and_skip(built_advisor):
    items = [
        EvalItem(id="hit", user_input="How did KardiaMobile spread?", reference="Marketed to patients.",
                 reference_contexts=(QUOTE,), sources=(NUFFIELD,), kind="case_study"),
        EvalItem(id="miss", user_input="What else?", reference="Nothing.", reference_contexts=(QUOTE,),
                 sources=(NUFFIELD,), kind="fact"),
        EvalItem(id="oos", user_input="Who won the World Cup?", kind="out_of_scope"),
        EvalItem(id="bare", user_input="A team's own question"),
    ]
    records = {
        "hit": _record([QUOTE]),
        "miss": {**_record(["Something else entirely."], quote_in_passage=False)},
        "oos": _record([], refused=True),
        "bare": _record([QUOTE]),
    }
    values, skipped = score(items, records, built_advisor.embedder, k=5)
    assert values["hit"]["evidence_recall_at_k"] == 1.0
    assert values["miss"]["evidence_recall_at_k"] == 0.0
    assert values["hit"]["refusal_accuracy"] == 1.0 and values["oos"]["refusal_accuracy"] == 1.0
    assert values["miss"]["citation_faithfulness"] == 1.0
    assert "evidence_recall_at_k" not in values["bare"] and "refusal_accuracy" not in values["bare"]
    assert skipped["evidence_recall_at_k"] == 2  # the out-of-scope and the unreferenced question
    assert skipped["refusal_accuracy"] == 1  # the question without a kind
    assert values["hit"]["semantic_similarity"] > values["miss"]["semantic_similarity"]
    summary = summarise(items, records, values, skipped)
    assert summary["metrics"]["evidence_recall_at_k"] == 0.5
    assert summary["refusal"]["refusal_accuracy_out_of_scope"] == 1.0
    assert summary["refusal"]["false_refusal_rate"] == 0.0
    assert check_thresholds(summary, {"min": {"metrics.evidence_recall_at_k": 0.9}}) == [
        "metrics.evidence_recall_at_k = 0.5 is below the threshold 0.9"
    ]
    assert check_thresholds(summary, {"max": {"refusal.false_refusal_rate": 0.05}}) == []


def test_judge_metrics_wrap_a_langchain_model(built_advisor, make_settings):
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    fake = FakeListChatModel(responses=["{}"])
    metrics = build_judge_metrics(fake, built_advisor.embedder)
    assert len(metrics) == 4
    assert {m.name.split("(")[0] for m in metrics} == {"faithfulness", "answer_relevancy", "context_recall", "factual_correctness"}
    assert all(m.llm.langchain_llm is fake for m in metrics)
    with pytest.raises(AdvisorError, match="ADVISOR_JUDGE_BASE_URL"):
        judge_llm_from_settings(make_settings())


def test_a_judge_metric_scores_through_evaluate_with_a_fake_model(built_advisor):
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    verdicts = {"classifications": [
        {"statement": "It is marketed to patients.", "reason": "in the passage", "attributed": 1},
        {"statement": "It cures strokes.", "reason": "not in the passage", "attributed": 0},
    ]}
    fake = FakeListChatModel(responses=[json.dumps(verdicts)])
    recall = next(m for m in build_judge_metrics(fake, built_advisor.embedder) if m.name == "context_recall")
    items = [
        EvalItem(id="ref", user_input="How did KardiaMobile spread?", reference="It is marketed to patients. It cures strokes.",
                 reference_contexts=(QUOTE,), sources=(NUFFIELD,), kind="case_study"),
        EvalItem(id="bare", user_input="A team's own question"),
    ]
    records = {"ref": _record([QUOTE]), "bare": _record([QUOTE])}
    values, skipped = score(items, records, built_advisor.embedder, k=5, judge_metrics=[recall])
    assert values["ref"]["context_recall"] == 0.5
    assert "context_recall" not in values["bare"] and skipped["context_recall"] == 1


def test_cli_smoke_gate_passes_and_fails_below_thresholds(built_advisor, built_settings, tmp_path):
    env = {**os.environ, "ADVISOR_DATA_DIR": str(built_settings.data_dir), "ADVISOR_CORPUS_DIR": str(CORPUS)}
    out = tmp_path / "run"

    def gate(thresholds: Path) -> subprocess.CompletedProcess:
        cmd = [str(Path(sys.executable).with_name("advisor")), "eval", "--set", str(PROJECT_ROOT / "eval_sets/smoke.jsonl"),
               "--out", str(out), "--check", "--thresholds", str(thresholds)]
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)

    result = gate(PROJECT_ROOT / "eval_sets/thresholds.toml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All thresholds met." in result.stdout
    summary = json.loads((out / "summary.json").read_text())["advisor"]
    assert summary["metrics"]["citation_faithfulness"] == 1.0
    assert (out / "report.html").read_text().startswith("<!doctype html>")
    assert len((out / "results.jsonl").read_text().splitlines()) == summary["n"]

    strict = tmp_path / "strict.toml"
    strict.write_text('[min]\n"metrics.evidence_recall_at_k" = 1.01\n')
    result = gate(strict)  # the same --out: every answer is resumed, only scoring runs again
    assert result.returncode == 1
    assert "below the threshold 1.01" in " ".join(result.stderr.split())
    assert len((out / "advisor.records.jsonl").read_text().splitlines()) == summary["n"]


def test_cli_stops_on_a_bad_set_or_a_missing_judge_before_loading_anything(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from advisor import cli

    monkeypatch.setenv("ADVISOR_CORPUS_DIR", str(CORPUS))
    monkeypatch.setenv("ADVISOR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(cli, "_advisor", lambda *a, **kw: pytest.fail("the advisor must not be loaded"))
    bad = _write(tmp_path, [GOOD, {"id": "b", "user_input": "q", "kind": "trivia"}])
    out = tmp_path / "run"
    result = CliRunner().invoke(cli.app, ["eval", "--set", str(bad), "--out", str(out)])
    assert result.exit_code == 2
    assert f"{bad}:2:" in " ".join(result.output.split()) and not out.exists()
    good = _write(tmp_path, [GOOD])
    result = CliRunner().invoke(cli.app, ["eval", "--set", str(good), "--out", str(out), "--judge"])
    assert result.exit_code == 2 and "ADVISOR_JUDGE_BASE_URL" in " ".join(result.output.split())
