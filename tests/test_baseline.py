"""The tutorial baseline: raw text, 1000/200 splits, Chroma with our embeddings, top-k passages."""

from __future__ import annotations

import shutil

from advisor.baseline import TutorialBaseline
from advisor.config import PROJECT_ROOT

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
