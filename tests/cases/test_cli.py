"""`advisor cases`: the catalogue as JSON, the cases like a description, a broken catalogue."""

from __future__ import annotations

import json

from tests.cases.helpers import BROKEN, mutate, run_cli
from tests.conftest import CORPUS


def test_cli_cases_json():
    out = run_cli(["cases", "--json"])
    assert out.returncode == 0, out.stderr
    cases = json.loads(out.stdout)
    assert len(cases) == 23
    for case in cases:
        assert {"name", "source", "section", "evidence"} <= set(case)
        assert (CORPUS / case["source"]).is_file()
        assert all({"field", "value", "quote"} <= set(e) for e in case["evidence"])
    kardia = next(c for c in cases if c["name"] == "KardiaMobile")
    assert {"field": "setting", "value": "primary care"}.items() <= next(
        e for e in kardia["evidence"] if e["field"] == "setting" and e["value"] == "primary care"
    ).items()


def test_cli_cases_like_json():
    out = run_cli(
        ["cases", "--like", "a mental health liaison team in an acute hospital", "--json", "-k", "3"]
    )
    assert out.returncode == 0, out.stderr
    matches = json.loads(out.stdout)
    assert matches[0]["name"] == "RAID" and len(matches) <= 3
    assert {"name", "score", "reasons", "citations", "source", "section"} <= set(matches[0])
    assert all({"field", "value", "quote"} <= set(c) for c in matches[0]["citations"])


def test_cli_broken_catalogue_exits_2_naming_the_entry(corpus_copy):
    mutate(corpus_copy, BROKEN["unknown tag"][0])
    out = run_cli(["cases"], corpus=corpus_copy)
    assert out.returncode == 2
    assert (
        "'Lantum'" in out.stderr and "unknown tag 'hospital'" in out.stderr and "Traceback" not in out.stderr
    )


def test_cli_cases_table_filtered_by_tag():
    out = run_cli(["cases", "--tag", "mechanism=spin-out organisation"], COLUMNS="200")  # no wrapped names
    assert out.returncode == 0, out.stderr
    assert "Florence (Flo)" in out.stdout and "3 of 23 case studies" in out.stdout
    assert "KardiaMobile" not in out.stdout


def test_cli_a_malformed_tag_is_refused():
    out = run_cli(["cases", "--tag", "setting"])
    assert out.returncode == 2 and "--tag must look like FIELD=VALUE" in out.stderr
