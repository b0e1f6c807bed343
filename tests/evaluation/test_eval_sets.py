"""The question sets: well-formed, quotes verbatim in their reports, the frozen test split unchanged."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter

import pytest

from advisor.cases import load_catalogue
from advisor.config import PROJECT_ROOT
from advisor.corpus import Manifest
from advisor.evaluation.cases import CASE_KINDS
from advisor.evaluation.datasets import KINDS, SORTS, load_eval_set
from advisor.text import normalise_space

CORPUS = PROJECT_ROOT / "corpus"
SETS = PROJECT_ROOT / "eval_sets"
ALL_SETS = ["dev.jsonl", "test.jsonl", "dev_smoke.jsonl", "test_smoke.jsonl"]


def _rows(name):
    return [
        json.loads(line) for line in (SETS / name).read_text(encoding="utf-8").splitlines() if line.strip()
    ]


@pytest.mark.parametrize("name", ALL_SETS)
def test_every_reference_quote_is_verbatim_in_a_named_report(name):
    texts = {p.name: normalise_space(p.read_text(encoding="utf-8")) for p in CORPUS.glob("*.txt")}
    for row in _rows(name):
        assert set(row.get("sources", [])) <= set(texts), row["id"]
        for quote in row.get("reference_contexts") or []:
            assert any(normalise_space(quote) in texts[s] for s in row["sources"]), (row["id"], quote)
    assert load_eval_set(SETS / name, CORPUS).items  # the loader's own validation agrees


def test_the_test_split_is_frozen():
    """test.jsonl is what eval_sets/README.md says it is: rows are added (with a new hash), never edited to fit."""
    recorded = re.search(
        r"test\.jsonl` sha256: `([0-9a-f]{64})`", (SETS / "README.md").read_text(encoding="utf-8")
    )
    assert recorded, "eval_sets/README.md must record the test split's sha256"
    assert hashlib.sha256((SETS / "test.jsonl").read_bytes()).hexdigest() == recorded.group(1)


def test_test_split_size_and_mix():
    rows = _rows("test.jsonl")
    assert len(rows) >= 150
    kinds = Counter(r["kind"] for r in rows)
    minimum = {
        "advice": 45,
        "case_study": 25,
        "fact": 20,
        "multi_doc": 10,
        "out_of_scope": 35,
        "aggregate": 20,
    }
    assert all(kinds[k] >= n for k, n in minimum.items()), kinds
    sorts = Counter(r.get("sort") for r in rows if r["kind"] == "out_of_scope")
    assert set(sorts) == set(SORTS) and min(sorts.values()) >= 10, sorts
    for r in rows:
        assert r.get("reference"), r["id"]  # every row has a reference answer
        assert (r["kind"] == "out_of_scope") == (not r["reference_contexts"]), r["id"]
        if r["kind"] == "multi_doc":
            assert len(set(r["sources"])) >= 2, r["id"]
        if r["kind"] == "aggregate":
            assert r["expected_cases"], r["id"]


def test_no_question_is_in_both_splits():
    dev = {normalise_space(r["user_input"]).lower() for r in _rows("dev.jsonl")}
    test = [r for r in _rows("test.jsonl") if normalise_space(r["user_input"]).lower() in dev]
    assert not test, [r["id"] for r in test]
    assert not {r["id"] for r in _rows("dev.jsonl")} & {r["id"] for r in _rows("test.jsonl")}


def test_dev_split_size_kinds_and_ids():
    rows = _rows("dev.jsonl")
    assert len(rows) >= 80
    assert len({r["id"] for r in rows}) == len(rows)
    kinds = Counter(r["kind"] for r in rows)
    assert set(kinds) == set(KINDS) and kinds["out_of_scope"] >= 35
    assert all(kinds[k] >= 10 for k in CASE_KINDS), kinds
    sorts = Counter(r.get("sort") for r in rows if r["kind"] == "out_of_scope")
    assert set(sorts) == set(SORTS), sorts
    for r in rows:
        if r["kind"] in CASE_KINDS:  # scored on the cases they name
            assert r["expected_cases"], r["id"]
        else:
            assert (r["kind"] == "out_of_scope") == (not r["reference_contexts"])
        assert ("sort" in r) == (r["kind"] == "out_of_scope"), r["id"]


@pytest.mark.parametrize("name", ALL_SETS)
def test_expected_cases_are_catalogue_names(name):
    catalogue = {c.name for c in load_catalogue(CORPUS)[0]}
    rows = [r for r in _rows(name) if "expected_cases" in r]
    assert rows
    for r in rows:
        assert set(r["expected_cases"]) <= catalogue, (r["id"], set(r["expected_cases"]) - catalogue)
    cases_like_mine = [r for r in rows if r["kind"] == "cases_like_mine"]
    assert all(len(r["expected_cases"]) <= 5 for r in cases_like_mine)  # recall@5 can reach 1


@pytest.mark.parametrize("name", ["dev.jsonl", "test.jsonl"])
def test_each_split_covers_every_report_and_case_study(name):
    rows = _rows(name)
    covered = {s for r in rows for s in r.get("sources", [])}
    assert covered == {p.name for p in CORPUS.glob("*.txt")}
    if name == "test.jsonl":
        return  # written from the reports by readers, not to a coverage list; see eval_sets/README.md
    manifest = Manifest.load(CORPUS)
    text = " ".join(
        r["user_input"] + " " + r.get("reference", "") + " " + " ".join(r.get("reference_contexts") or [])
        for r in rows
    ).lower()
    for entry in manifest.entries.values():
        for case in entry.case_studies:
            names = [case.name, *case.aliases]
            assert any(n.lower() in text for n in names), f"no question on {case.name}"


@pytest.mark.parametrize("split", ["dev", "test"])
def test_each_smoke_slice_is_a_subset_of_its_split(split):
    full = {r["id"]: r for r in _rows(f"{split}.jsonl")}
    smoke = _rows(f"{split}_smoke.jsonl")
    assert 10 <= len(smoke) <= 25
    assert all(full[r["id"]] == r for r in smoke)
    kinds = {r["kind"] for r in smoke}
    assert kinds == ({k for k in KINDS if k in {r["kind"] for r in full.values()}})
