"""report.md and report.html: the figures, guards, the answered / refused table, the case comparison."""

from __future__ import annotations

from advisor.evaluation.report import case_runs, fmt, metric_label, worst, write_reports
from advisor.evaluation.summary import compare_cases
from tests.evaluation.samples import case_summary


def test_report_shows_catalogue_vs_passage_retrieval(tmp_path):
    cases = compare_cases({"advisor": case_summary(0.875), "passages": case_summary(0.125), "baseline": None})
    write_reports(tmp_path, case_summary(0.875), [], None, cases)
    md = (tmp_path / "report.md").read_text()
    assert "## Case studies: catalogue vs passage retrieval" in md
    assert "| aggregate | 2 | case_recall | 0.875 | 0.125 |" in md
    page = (tmp_path / "report.html").read_text()
    assert "catalogue vs passage retrieval" in page and "<td>0.875</td><td>0.125</td>" in page
    assert case_runs(cases) == ["advisor", "passages"]


def test_figures_guards_and_the_baseline_column(tmp_path):
    summary = {
        **case_summary(0.5),
        "metrics": {"citation_faithfulness": 1.0, "key_fact_recall": 0.25},
        "skipped": {"key_fact_recall": 1},
        "guards": {"citation_faithfulness": "true by construction"},
        "confusion": {
            "in_scope": {"answered": 2, "refused": 0},
            "out_of_scope": {"answered": 0, "refused": 0},
        },
    }
    baseline = {**summary, "metrics": {"key_fact_recall": 0.125}, "by_kind": {}, "by_report": {}}
    paired = {"semantic_similarity": {"n": 2, "advisor": 0.5, "baseline": 0.25}}
    write_reports(tmp_path, summary, [], baseline, None, paired)
    md = (tmp_path / "report.md").read_text()
    assert md.index("key_fact_recall") < md.index("citation_faithfulness")  # the answer-level metrics first
    assert "| key_fact_recall | 0.250 | 0.125 | 1 |" in md
    assert "| citation_faithfulness (guard: true by construction) | 1.000 | - | 0 |" in md
    assert "| semantic_similarity, same 2 rows | 0.500 | 0.250 | |" in md
    assert "citation_faithfulness is a guard, not a result: true by construction." in md
    assert "| in scope | 2 | 0 |" in md
    assert (
        "Advisor vs baseline (LangChain tutorial RAG), same questions"
        in (tmp_path / "report.html").read_text()
    )


def test_formatting_and_the_worst_questions():
    assert fmt(None) == "-" and fmt(0.12345) == "0.123"
    assert metric_label("x", {"guards": {"x": "why"}}) == "x (guard: true by construction)"
    assert metric_label("y", {"guards": {"x": "why"}}) == "y"
    rows = [
        {"id": "ok", "metrics": {"evidence_recall_at_k": 1.0}},
        {"id": "unmeasured", "metrics": {}},
        {"id": "missed", "metrics": {"evidence_recall_at_k": 0.0}},
    ]
    assert [r["id"] for r in worst(rows, n=2)] == ["missed", "ok"]
