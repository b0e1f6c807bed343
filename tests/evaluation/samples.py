"""Rows, records and set files the evaluation tests share."""

from __future__ import annotations

import json
from pathlib import Path

from advisor.config import PROJECT_ROOT
from advisor.evaluation.cases import CaseNames

CORPUS = PROJECT_ROOT / "corpus"
NUFFIELD = "nuffield-2020-achieving-scale-and-spread.txt"
QUOTE = "KardiaMobile is marketed directly to patients, health care professionals and NHS organisations."
GOOD = {
    "id": "a",
    "user_input": "How did KardiaMobile spread?",
    "reference_contexts": [QUOTE],
    "sources": [NUFFIELD],
    "kind": "case_study",
}
NAMES = CaseNames(
    {
        "KardiaMobile": ["AliveCor"],
        "ERAS": ["Enhanced Recovery After Surgery"],
        "ERAS+": [],
        "DAFNE": [],
        "Schwartz Rounds (UK)": ["Schwartz Rounds"],
        "Schwartz Rounds (Point of Care Foundation)": ["Schwartz Rounds"],
    }
)


def write_set(tmp_path: Path, rows) -> Path:
    """A set file of the rows given (a string row is written as it is: a malformed line)."""
    path = tmp_path / "set.jsonl"
    path.write_text(
        "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n", encoding="utf-8"
    )
    return path


def record(answer_sentences, quote_in_passage=True, refused=False) -> dict:
    """An extractive answer whose sentences all cite marker 1, a passage holding QUOTE (or not)."""
    passage = QUOTE if quote_in_passage else "Something else entirely."
    return {
        "question": "q",
        "answer": " ".join(s for s in answer_sentences),
        "refused": refused,
        "backend": "extractive",
        "sentences": [{"text": s, "markers": [1], "verdict": "supported"} for s in answer_sentences],
        "citations": [
            {"marker": 1, "chunk_id": "c1", "quote": answer_sentences[0] if answer_sentences else ""}
        ],
        "passages": [{"rank": 1, "chunk_id": "c1", "source": NUFFIELD, "text": passage}],
        "timings_ms": {"total": 10.0},
    }


def listing(
    rows: list[tuple[str, list[int]]], cited_cases: dict[int, str] | None = None, refused=False
) -> dict:
    """A catalogue answer's record, one sentence per (text, markers) row."""
    markers = sorted({m for _, ms in rows for m in ms})
    cited_cases = cited_cases or {}
    return {
        "question": "q",
        "answer": "\n".join(t for t, _ in rows),
        "refused": refused,
        "backend": "extractive",
        "route": "catalogue",
        "sentences": [{"text": t, "markers": ms, "verdict": "supported"} for t, ms in rows],
        "citations": [
            {"marker": m, "chunk_id": f"c{m}", "quote": "a quote here", "case_study": cited_cases.get(m)}
            for m in markers
        ],
        "passages": [
            {"rank": m, "chunk_id": f"c{m}", "text": "so a quote here.", "case_study": cited_cases.get(m)}
            for m in markers
        ],
    }


def case_summary(recall: float) -> dict:
    """A run's summary with one aggregate row scored on the case metrics."""
    return {
        "n": 2,
        "metrics": {"case_recall": recall},
        "skipped": {},
        "by_report": {},
        "refusal": {
            "refused_out_of_scope": 0,
            "out_of_scope": 0,
            "refusal_accuracy_out_of_scope": None,
            "false_refusals": 0,
            "in_scope": 2,
            "false_refusal_rate": 0.0,
        },
        "by_kind": {"aggregate": {"n": 2, "case_recall": recall, "case_precision": recall / 2}},
    }
