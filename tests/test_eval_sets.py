"""The curated question sets: well-formed, quotes verbatim in their reports, full coverage."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from advisor.config import PROJECT_ROOT
from advisor.corpus import Manifest
from advisor.cases import load_catalogue
from advisor.evaluation import CASE_KINDS, KINDS, load_eval_set, normalise

CORPUS = PROJECT_ROOT / "corpus"
SETS = PROJECT_ROOT / "eval_sets"


def _rows(name):
    return [json.loads(line) for line in (SETS / name).read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.mark.parametrize("name", ["full.jsonl", "smoke.jsonl"])
def test_every_reference_quote_is_verbatim_in_a_named_report(name):
    texts = {p.name: normalise(p.read_text(encoding="utf-8")) for p in CORPUS.glob("*.txt")}
    for row in _rows(name):
        assert set(row.get("sources", [])) <= set(texts), row["id"]
        for quote in row.get("reference_contexts") or []:
            assert any(normalise(quote) in texts[s] for s in row["sources"]), (row["id"], quote)
    assert load_eval_set(SETS / name, CORPUS).items  # the loader's own validation agrees


def test_full_set_size_kinds_and_ids():
    rows = _rows("full.jsonl")
    assert len(rows) >= 80
    assert len({r["id"] for r in rows}) == len(rows)
    kinds = Counter(r["kind"] for r in rows)
    assert set(kinds) == set(KINDS) and kinds["out_of_scope"] >= 12
    assert all(10 <= kinds[k] <= 15 for k in CASE_KINDS), kinds
    for r in rows:
        if r["kind"] in CASE_KINDS:  # scored on the cases they name, not on quotes
            assert r["expected_cases"] and "reference_contexts" not in r, r["id"]
        else:
            assert (r["kind"] == "out_of_scope") == (not r["reference_contexts"])


@pytest.mark.parametrize("name", ["full.jsonl", "smoke.jsonl"])
def test_expected_cases_are_catalogue_names(name):
    catalogue = {c.name for c in load_catalogue(CORPUS)[0]}
    rows = [r for r in _rows(name) if "expected_cases" in r]
    assert rows
    for r in rows:
        assert set(r["expected_cases"]) <= catalogue, (r["id"], set(r["expected_cases"]) - catalogue)
    cases_like_mine = [r for r in rows if r["kind"] == "cases_like_mine"]
    assert all(len(r["expected_cases"]) <= 5 for r in cases_like_mine)  # recall@5 can reach 1


def test_full_set_covers_every_report_and_case_study():
    rows = _rows("full.jsonl")
    covered = {s for r in rows for s in r.get("sources", [])}
    assert covered == {p.name for p in CORPUS.glob("*.txt")}
    manifest = Manifest.load(CORPUS)
    text = " ".join(
        r["user_input"] + " " + r.get("reference", "") + " " + " ".join(r.get("reference_contexts") or []) for r in rows
    ).lower()
    for entry in manifest.entries.values():
        for case in entry.case_studies:
            names = [case.name, *case.aliases]
            assert any(n.lower() in text for n in names), f"no question on {case.name}"


def test_smoke_set_is_a_subset_of_the_full_set():
    full = {r["id"]: r for r in _rows("full.jsonl")}
    smoke = _rows("smoke.jsonl")
    assert 10 <= len(smoke) <= 25
    assert all(full[r["id"]] == r for r in smoke)
    assert {r["kind"] for r in smoke} == set(KINDS)
