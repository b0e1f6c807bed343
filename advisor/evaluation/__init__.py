"""The evaluation: a question set -> the advisor's answers -> ragas metrics -> a summary and a report.

- `datasets`: question sets (JSONL) validated row by row (`EvalItem`, `load_eval_set`, `EvalSetError`);
- `cases`: which case studies an answer names, and the case metrics (`CaseNames`, `case_recall`, ...);
- `metrics`: evidence recall, citation faithfulness, and our metrics as ragas metric classes;
- `answer_metrics`: key-fact recall, cited-evidence hit and filler share of an answer;
- `scoring`: every metric through ragas' `evaluate()` (`score`, `score_cases`), the judge metrics;
- `run`: answering a set resumably (`answer_all`) and writing results.jsonl;
- `summary`: `summarise`, the coverage curve, guards, `paired`, `compare_cases`, the threshold gate;
- `report`: report.md and report.html;
- `cli`: `advisor eval`; `calibrate`: `advisor calibrate` (fits the coverage model on dev);
- `baseline`: the LangChain-tutorial RAG it is compared with (imports the vector store stack,
  so it is not imported here).

Nothing here reaches the network unless `advisor eval --judge` asks for a judge model; the
offline switches are set when scoring starts, not on import.
"""

from advisor.evaluation.cases import (
    CASE_KINDS,
    CASE_METRICS,
    CaseNames,
    case_hit_at,
    case_precision,
    case_recall,
    cases_named,
    cases_retrieved,
)
from advisor.evaluation.datasets import KINDS, SORTS, EvalItem, EvalSetError, LoadedSet, load_eval_set
from advisor.evaluation.metrics import citation_faithfulness, evidence_recall, evidence_recall_exact
from advisor.evaluation.run import RECORDS, RESULTS, SUMMARY, answer_all, write_results
from advisor.evaluation.scoring import (
    build_judge_metrics,
    case_metrics,
    judge_llm_from_settings,
    score,
    score_cases,
)
from advisor.evaluation.summary import (
    GUARDS,
    PAIRED,
    check_thresholds,
    compare_cases,
    coverage_curve,
    paired,
    summarise,
    thresholds_for,
)

__all__ = [
    "CASE_KINDS",
    "CASE_METRICS",
    "GUARDS",
    "KINDS",
    "PAIRED",
    "RECORDS",
    "RESULTS",
    "SORTS",
    "SUMMARY",
    "CaseNames",
    "EvalItem",
    "EvalSetError",
    "LoadedSet",
    "answer_all",
    "build_judge_metrics",
    "case_hit_at",
    "case_metrics",
    "case_precision",
    "case_recall",
    "cases_named",
    "cases_retrieved",
    "check_thresholds",
    "citation_faithfulness",
    "compare_cases",
    "coverage_curve",
    "evidence_recall",
    "evidence_recall_exact",
    "judge_llm_from_settings",
    "load_eval_set",
    "paired",
    "score",
    "score_cases",
    "summarise",
    "thresholds_for",
    "write_results",
]
