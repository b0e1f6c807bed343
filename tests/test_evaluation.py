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
from advisor.eval_report import write_reports
from advisor.evaluation import (
    CaseLocator,
    CaseNames,
    EvalItem,
    EvalSetError,
    answer_all,
    build_judge_metrics,
    case_hit_at,
    case_precision,
    case_recall,
    cases_named,
    cases_retrieved,
    catalogue_off,
    check_thresholds,
    citation_faithfulness,
    compare_cases,
    judge_llm_from_settings,
    evidence_recall,
    load_eval_set,
    quote_found,
    score,
    score_cases,
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


@pytest.mark.parametrize("split", ["dev", "test"])
def test_cli_smoke_gate_passes_and_fails_below_thresholds(built_advisor, built_settings, tmp_path, split):
    """The CI gate on a slice of each split: every figure issue 12 asks for, then a gate that fails."""
    env = {**os.environ, "ADVISOR_DATA_DIR": str(built_settings.data_dir), "ADVISOR_CORPUS_DIR": str(CORPUS)}
    out = tmp_path / "run"
    smoke = PROJECT_ROOT / f"eval_sets/{split}_smoke.jsonl"

    def gate(thresholds: Path, *extra: str) -> subprocess.CompletedProcess:
        cmd = [str(Path(sys.executable).with_name("advisor")), "eval", "--set", str(smoke),
               "--out", str(out), "--check", "--thresholds", str(thresholds), *extra]
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)

    result = gate(PROJECT_ROOT / "eval_sets/thresholds.toml", *(["--baseline"] if split == "test" else []))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All thresholds met." in result.stdout
    report = json.loads((out / "summary.json").read_text())
    summary = report["advisor"]
    assert summary["metrics"]["citation_faithfulness"] == 1.0
    assert "citation_faithfulness" in summary["guards"]
    for metric in ("key_fact_recall", "cited_evidence_hit", "filler_share", "evidence_recall_exact"):
        assert summary["metrics"][metric] is not None, metric
    refused = summary["confusion"]["in_scope"]["refused"] + summary["confusion"]["out_of_scope"]["refused"]
    assert refused == sum(row["refused"] for row in summary["by_kind"].values())
    assert summary["confusion"]["out_of_scope"]["answered"] + summary["confusion"]["out_of_scope"]["refused"] == \
        summary["refusal"]["out_of_scope"]
    if split == "test":
        assert set(summary["refusal"]["by_sort"]) == {"near_miss", "missing_detail", "off_topic"}
        pair = report["paired"]["semantic_similarity"]
        assert pair["n"] == summary["confusion"]["in_scope"]["answered"]  # the baseline answers every row
        assert "same" in result.stdout and "baseline" in result.stdout
    md = (out / "report.md").read_text()
    assert "## Answered or refused" in md and "guard, not a result" in md
    assert "catalogue vs passage retrieval" in md
    assert (out / "report.html").read_text().startswith("<!doctype html>")
    assert len((out / "results.jsonl").read_text().splitlines()) == summary["n"]

    strict = tmp_path / "strict.toml"
    strict.write_text(f'[{split}_smoke.min]\n"metrics.evidence_recall_at_k" = 1.01\n'
                      f'[{split}_smoke.guard.max]\n"metrics.citation_faithfulness" = 0.5\n')
    result = gate(strict)  # the same --out: every answer is resumed, only scoring runs again
    assert result.returncode == 1
    assert "below the threshold 1.01" in " ".join(result.stderr.split())
    assert "above the guard 0.5" in " ".join(result.stderr.split())
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


# ---- questions across case studies (issue 8) ------------------------------------------
NAMES = CaseNames({
    "KardiaMobile": ["AliveCor"], "ERAS": ["Enhanced Recovery After Surgery"], "ERAS+": [], "DAFNE": [],
    "Schwartz Rounds (UK)": ["Schwartz Rounds"], "Schwartz Rounds (Point of Care Foundation)": ["Schwartz Rounds"],
})


def _listing(rows: list[tuple[str, list[int]]], cited_cases: dict[int, str] | None = None, refused=False) -> dict:
    """A record shaped like the advisor's, one sentence per (text, markers) row."""
    markers = sorted({m for _, ms in rows for m in ms})
    cited_cases = cited_cases or {}
    return {
        "question": "q", "answer": "\n".join(t for t, _ in rows), "refused": refused, "backend": "extractive", "route": "catalogue",
        "sentences": [{"text": t, "markers": ms, "verdict": "supported"} for t, ms in rows],
        "citations": [{"marker": m, "chunk_id": f"c{m}", "quote": "a quote here", "case_study": cited_cases.get(m)}
                      for m in markers],
        "passages": [{"rank": m, "chunk_id": f"c{m}", "text": "so a quote here.", "case_study": cited_cases.get(m)}
                     for m in markers],
    }


def test_a_case_counts_only_when_named_with_a_citation():
    record = _listing([
        ("KardiaMobile (Nuffield 2020): tariff or payment: “paid through the ERAS CQUIN”", [1]),
        ("DAFNE was also mentioned, but without a citation.", []),
        ("ERAS+ (Nuffield 2020): pathway", [2]),
    ])
    named = cases_named(record, NAMES)
    assert named == ["KardiaMobile", "ERAS+"]  # not DAFNE (no marker), not ERAS (inside the quotation, or in ERAS+)
    expected = ["KardiaMobile", "DAFNE"]
    assert case_recall(named, expected) == 0.5
    assert case_precision(named, expected) == 0.5  # the unexpected ERAS+ halves precision
    assert case_recall(["KardiaMobile"], expected) == 0.5 and case_precision(["KardiaMobile"], expected) == 1.0
    assert math.isnan(case_precision([], expected))
    assert case_hit_at(["ERAS+", "ERAS", "DAFNE"], expected, 3) == 1.0
    assert case_hit_at(["ERAS+", "ERAS", "ERAS", "DAFNE"], expected, 3) == 0.0
    unresolved = _listing([("KardiaMobile is listed.", [1])])
    unresolved["citations"] = []  # a marker that maps to no citation names nothing
    assert cases_named(unresolved, NAMES) == []
    assert cases_named({**record, "refused": True}, NAMES) == []


def test_a_shared_alias_counts_for_the_case_its_citation_supports():
    record = _listing([("Schwartz Rounds spread through pilots.", [1])], cited_cases={1: "Schwartz Rounds (UK)"})
    assert cases_named(record, NAMES) == ["Schwartz Rounds (UK)"]
    uncited_case = _listing([("Schwartz Rounds spread through pilots.", [1])])
    assert set(cases_named(uncited_case, NAMES)) == {"Schwartz Rounds (UK)", "Schwartz Rounds (Point of Care Foundation)"}


def test_passage_retrieval_names_the_top_k_case_studies():
    passages = [{"rank": r, "case_study": c, "text": ""} for r, c in
                [(2, "DAFNE"), (1, "ERAS"), (3, None), (4, "ERAS"), (5, "KardiaMobile"), (6, "ERAS+")]]
    assert cases_retrieved({"passages": passages}, k=5) == ["ERAS", "DAFNE", "KardiaMobile"]


def test_case_metrics_through_ragas_score_skip_other_kinds(built_advisor):
    items = [
        EvalItem(id="agg", user_input="Which used a tariff?", kind="aggregate", expected_cases=("KardiaMobile", "DAFNE")),
        EvalItem(id="like", user_input="Cases like mine: surgery", kind="cases_like_mine", expected_cases=("ERAS", "ERAS+")),
        EvalItem(id="fact", user_input="How many DAFNE centres?", kind="fact"),
    ]
    records = {
        "agg": _listing([("KardiaMobile (Nuffield 2020)", [1]), ("ERAS (Against the Odds)", [2])]),
        "like": _listing([("DAFNE (Against the Odds)", [1]), ("ERAS+ (Nuffield)", [2]), ("KardiaMobile", [3])]),
        "fact": _listing([("DAFNE has 71 centres.", [1])]),
    }
    values, skipped = score(items, records, built_advisor.embedder, k=5, case_names=NAMES)
    assert values["agg"]["case_recall"] == 0.5 and values["agg"]["case_precision"] == 0.5
    assert "case_hit_at_3" not in values["agg"]  # ranking metrics are for cases like mine only
    assert values["like"]["case_hit_at_3"] == 1.0 and values["like"]["case_recall_at_5"] == 0.5
    assert values["like"]["case_precision"] == pytest.approx(1 / 3)
    assert not any(m.startswith("case_") for m in values["fact"])
    assert skipped["case_recall"] == 1 and skipped["case_hit_at_3"] == 2
    by_passages = {"agg": {"passages": [{"rank": 1, "case_study": "DAFNE", "text": "x"}, {"rank": 2, "case_study": None, "text": "y"}]},
                   "like": {"passages": []}, "fact": {"passages": []}}
    values, _ = score_cases(items, {k: {**v, "refused": False} for k, v in by_passages.items()}, NAMES, k=5)
    assert values["agg"]["case_recall"] == 0.5 and values["agg"]["case_precision"] == 1.0
    assert values["like"]["case_recall"] == 0.0 and values["like"].get("case_precision") is None


def test_citation_faithfulness_checks_catalogue_rows_against_their_passages():
    record = _listing([("KardiaMobile (Nuffield 2020)", [1])])
    assert citation_faithfulness(record) == 1.0
    record["passages"][0]["text"] = "A passage without it."
    assert citation_faithfulness(record) == 0.0


def test_expected_cases_must_be_catalogue_names(tmp_path):
    good = {"id": "c", "user_input": "Which used a tariff?", "kind": "aggregate", "expected_cases": ["my mhealth (myCOPD)"]}
    assert load_eval_set(_write(tmp_path, [good]), CORPUS).items[0].expected_cases == ("my mhealth (myCOPD)",)
    alias = {**good, "expected_cases": ["myCOPD"]}
    with pytest.raises(EvalSetError, match=r"'myCOPD' is not in the case-study catalogue \(its name there is 'my mhealth \(myCOPD\)'\)"):
        load_eval_set(_write(tmp_path, [alias]), CORPUS)
    with pytest.raises(EvalSetError, match="'Theranos' is not in the case-study catalogue"):
        load_eval_set(_write(tmp_path, [{**good, "expected_cases": ["Theranos"]}]), CORPUS)
    with pytest.raises(EvalSetError, match="non-empty list"):
        load_eval_set(_write(tmp_path, [{**good, "expected_cases": []}]), CORPUS)


def test_passage_only_mode_bypasses_the_catalogue(built_advisor, monkeypatch):
    question = "Which innovations used a national tariff or payment to spread?"
    served = built_advisor.ask(question)
    assert served.route == "catalogue"
    catalogue = built_advisor.case_catalogue.current
    monkeypatch.setattr(catalogue, "answer", lambda *a, **kw: pytest.fail("the catalogue must not be asked"))
    with catalogue_off(built_advisor) as advisor:
        advisor.load()  # an index reload inside the comparison does not bring the catalogue back
        plain = advisor.ask(question)
    assert plain.route == "passages" and len(plain.passages) == 5
    assert cases_retrieved(plain.to_record(), k=5)  # the passages carry their case studies
    assert built_advisor.case_catalogue.current is catalogue  # switched back on afterwards


def test_baseline_passages_are_located_in_their_case_study():
    locator = CaseLocator(CORPUS)
    text = (CORPUS / NUFFIELD).read_text(encoding="utf-8")
    at = text.index("KardiaMobile is marketed directly")
    records = locator.annotate({"q": {"passages": [
        {"rank": 1, "source": NUFFIELD, "text": text[at - 300: at + 600]},
        {"rank": 2, "source": NUFFIELD, "text": text[:800]},
        {"rank": 3, "source": NUFFIELD, "text": "not in the report at all"},
    ]}})
    assert [p["case_study"] for p in records["q"]["passages"]] == ["KardiaMobile", None, None]


def test_report_shows_catalogue_vs_passage_retrieval(tmp_path):
    def summary(recall):
        return {"n": 2, "metrics": {"case_recall": recall}, "skipped": {}, "by_report": {},
                "refusal": {"refused_out_of_scope": 0, "out_of_scope": 0, "refusal_accuracy_out_of_scope": None,
                            "false_refusals": 0, "in_scope": 2, "false_refusal_rate": 0.0},
                "by_kind": {"aggregate": {"n": 2, "case_recall": recall, "case_precision": recall / 2}}}
    cases = compare_cases({"advisor": summary(0.875), "passages": summary(0.125), "baseline": None})
    assert cases == {"aggregate": {"n": 2, "case_recall": {"advisor": 0.875, "passages": 0.125},
                                   "case_precision": {"advisor": 0.4375, "passages": 0.0625}}}
    write_reports(tmp_path, summary(0.875), [], None, cases)
    md = (tmp_path / "report.md").read_text()
    assert "## Case studies: catalogue vs passage retrieval" in md
    assert "| aggregate | 2 | case_recall | 0.875 | 0.125 |" in md
    page = (tmp_path / "report.html").read_text()
    assert "catalogue vs passage retrieval" in page and "<td>0.875</td><td>0.125</td>" in page
