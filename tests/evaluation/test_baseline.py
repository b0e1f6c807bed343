"""The tutorial baseline: raw text, 1000/200 splits, Chroma with our embeddings, top-k passages, located."""

from __future__ import annotations

import shutil

from advisor.config import PROJECT_ROOT
from advisor.evaluation.baseline import CaseLocator, TutorialBaseline
from tests.evaluation.samples import CORPUS, NUFFIELD

RELEASE = "against-the-odds-2018-news-release.txt"


def test_tutorial_baseline_indexes_raw_text_once_and_returns_top_k(built_advisor, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(PROJECT_ROOT / "corpus" / RELEASE, corpus / RELEASE)
    baseline = TutorialBaseline(corpus, tmp_path / "baseline", built_advisor.embedder, k=3)
    stored = baseline.store.get()
    assert stored["ids"] and all(len(text) <= 1000 for text in stored["documents"])
    assert "Against the Odds" in " ".join(stored["documents"])  # raw text, nothing cleaned away

    record = baseline.ask("What does the Health Foundation ask system leaders to do?")
    assert len(record["passages"]) == 3 and {p["source"] for p in record["passages"]} == {RELEASE}
    assert record["answer"] and record["refused"] is False and record["citations"] == []

    again = TutorialBaseline(corpus, tmp_path / "baseline", built_advisor.embedder, k=3)
    assert len(again.store.get()["ids"]) == len(stored["ids"])  # reused, not added twice
    (corpus / RELEASE).write_text("A changed report.\n", encoding="utf-8")
    changed = TutorialBaseline(corpus, tmp_path / "baseline", built_advisor.embedder, k=3)
    assert changed.store.get()["documents"] == ["A changed report."]


def test_baseline_passages_are_located_in_their_case_study():
    locator = CaseLocator(CORPUS)
    text = (CORPUS / NUFFIELD).read_text(encoding="utf-8")
    at = text.index("KardiaMobile is marketed directly")
    records = locator.annotate(
        {
            "q": {
                "passages": [
                    {"rank": 1, "source": NUFFIELD, "text": text[at - 300 : at + 600]},
                    {"rank": 2, "source": NUFFIELD, "text": text[:800]},
                    {"rank": 3, "source": NUFFIELD, "text": "not in the report at all"},
                ]
            }
        }
    )
    assert [p["case_study"] for p in records["q"]["passages"]] == ["KardiaMobile", None, None]
    located = {"q": {"passages": [{"rank": 1, "source": NUFFIELD, "text": "x", "case_study": "DAFNE"}]}}
    assert locator.annotate(located)["q"] is located["q"]  # passages that carry their case study are kept
