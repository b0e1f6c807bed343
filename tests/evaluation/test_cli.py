"""`advisor eval`: the CI gate on a slice of each split, and a bad set or judge stopping it early."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from advisor.config import PROJECT_ROOT
from tests.evaluation.samples import CORPUS, GOOD, write_set


@pytest.mark.parametrize("split", ["dev", "test"])
def test_cli_smoke_gate_passes_and_fails_below_thresholds(built_advisor, built_settings, tmp_path, split):
    """The CI gate on a slice of each split: every figure the gate reads, then a gate that fails."""
    env = {**os.environ, "ADVISOR_DATA_DIR": str(built_settings.data_dir), "ADVISOR_CORPUS_DIR": str(CORPUS)}
    out = tmp_path / "run"
    smoke = PROJECT_ROOT / f"eval_sets/{split}_smoke.jsonl"

    def gate(thresholds: Path, *extra: str) -> subprocess.CompletedProcess:
        cmd = [
            str(Path(sys.executable).with_name("advisor")),
            "eval",
            "--set",
            str(smoke),
            "--out",
            str(out),
            "--check",
            "--thresholds",
            str(thresholds),
            *extra,
        ]
        return subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=900)

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
    assert (
        summary["confusion"]["out_of_scope"]["answered"] + summary["confusion"]["out_of_scope"]["refused"]
        == summary["refusal"]["out_of_scope"]
    )
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
    strict.write_text(
        f'[{split}_smoke.min]\n"metrics.evidence_recall_at_k" = 1.01\n'
        f'[{split}_smoke.guard.max]\n"metrics.citation_faithfulness" = 0.5\n'
    )
    result = gate(strict)  # the same --out: every answer is resumed, only scoring runs again
    assert result.returncode == 1
    assert "below the threshold 1.01" in " ".join(result.stderr.split())
    assert "above the guard 0.5" in " ".join(result.stderr.split())
    assert len((out / "advisor.records.jsonl").read_text().splitlines()) == summary["n"]


def test_cli_stops_on_a_bad_set_or_a_missing_judge_before_loading_anything(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from advisor import cli
    from advisor.cli import common

    monkeypatch.setenv("ADVISOR_CORPUS_DIR", str(CORPUS))
    monkeypatch.setenv("ADVISOR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(
        common, "open_advisor", lambda *a, **kw: pytest.fail("the advisor must not be loaded")
    )
    bad = write_set(tmp_path, [GOOD, {"id": "b", "user_input": "q", "kind": "trivia"}])
    out = tmp_path / "run"
    result = CliRunner().invoke(cli.app, ["eval", "--set", str(bad), "--out", str(out)])
    assert result.exit_code == 2
    assert f"{bad}:2:" in " ".join(result.output.split()) and not out.exists()
    good = write_set(tmp_path, [GOOD])
    result = CliRunner().invoke(cli.app, ["eval", "--set", str(good), "--out", str(out), "--judge"])
    assert result.exit_code == 2 and "ADVISOR_JUDGE_BASE_URL" in " ".join(result.output.split())
    result = CliRunner().invoke(
        cli.app,
        ["eval", "--set", str(good), "--out", str(out), "--check", "--thresholds", str(tmp_path / "no.toml")],
    )
    assert result.exit_code == 2 and "needs a thresholds file" in " ".join(result.output.split())
