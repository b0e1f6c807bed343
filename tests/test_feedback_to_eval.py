"""`advisor feedback to-eval`: the thumbs-down and refused questions as dev rows to complete, each
question once, loading as a question set, and run by `advisor eval` for real."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from advisor import cli
from advisor.config import PROJECT_ROOT
from advisor.db import open_database
from advisor.evaluation.datasets import load_eval_set
from advisor.feedback import FeedbackStore
from advisor.history import ConversationStore, Owner
from advisor.insights import TODO
from tests.evaluation.samples import CORPUS

DEV_QUESTION = json.loads((PROJECT_ROOT / "eval_sets" / "dev.jsonl").read_text().splitlines()[0])[
    "user_input"
]


def record(question: str, refused: bool = False, answer: str = "") -> dict:
    answer = answer or ("The reports do not say." if refused else "An answer [1].")
    return {"question": question, "query": question, "answer": answer, "refused": refused, "citations": []}


def fill(url: str) -> dict[str, object]:
    """Known thumbs-down and turns in the database at `url`; the ids the rows must carry."""
    store = ConversationStore(open_database(url))
    feedback = FeedbackStore(url)
    owner = Owner.user("ann")
    ids: dict[str, object] = {}
    ids["down1"] = feedback.record(
        "web", "How did DAFNE spread?", record("x", answer="First answer."), "down", "Too vague"
    )
    feedback.record("web", "How did DAFNE spread?", record("x"), "up", "Good")  # not a row
    ids["down2"] = feedback.record(
        "slack", "how did  DAFNE spread? ", record("x", answer="Second answer."), "down", "Missing the costs"
    )
    ids["down3"] = feedback.record("web", "How did dafne spread?", record("x"), "down", "Too vague")
    store.add_turn(owner, record("How did DAFNE spread?", refused=True))  # a thumbs-down already has it
    store.add_turn(
        owner,
        record("What does a KardiaMobile cost in 2025?", refused=True),
        now=datetime(2026, 1, 2, tzinfo=UTC),
    )
    ids["gap"] = store.add_turn(
        owner,
        record("what does a  KardiaMobile cost in 2025?", refused=True),
        now=datetime(2026, 2, 3, tzinfo=UTC),
    ).id
    store.add_turn(owner, record("Who runs Schwartz Rounds?"))  # answered, no thumbs-down: not a row
    store.add_turn(owner, record(DEV_QUESTION, refused=True))  # already in dev.jsonl: left out
    return ids


def to_eval(tmp_path: Path, env: dict[str, str], *extra: str):
    out = tmp_path / "from_feedback.jsonl"
    result = CliRunner().invoke(cli.app, ["feedback", "to-eval", "--out", str(out), *extra], env=env)
    return result, out, " ".join(result.output.split())


def test_rows_are_written_once_per_question_and_load_as_a_set(tmp_path):
    url = f"sqlite:///{tmp_path / 'data' / 'feedback.sqlite3'}"
    ids = fill(url)
    result, out, said = to_eval(tmp_path, {"ADVISOR_DATA_DIR": str(tmp_path / "data")})
    assert result.exit_code == 0, result.output
    assert "2 rows written" in said and "1 thumbs-down, 1 refused" in said
    assert "1 questions left out, already in a question set" in said

    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [row["id"] for row in rows] == [f"fb-{ids['down3']}", f"gap-{ids['gap']}"]
    down, gap = rows
    assert down["user_input"] == "How did dafne spread?"  # the latest wording
    assert (down["origin"], down["times"], down["channel"]) == ("thumbs_down", 3, "web")
    assert down["comment"] == "Too vague" and down["comments"] == ["Too vague", "Missing the costs"]
    assert (gap["origin"], gap["times"], gap["asked"]) == ("refused", 2, "2026-02-03")
    assert gap["user_input"] == "what does a KardiaMobile cost in 2025?"
    assert gap["answer"] == "The reports do not say." and "comment" not in gap
    for row in rows:
        assert (row["reference"], row["sources"], row["kind"], row["todo"]) == ("", [], None, TODO)

    loaded = load_eval_set(out, CORPUS)
    assert [item.id for item in loaded.items] == [row["id"] for row in rows]
    assert all(i.reference is None and i.kind is None and i.sources == () for i in loaded.items)
    assert loaded.warnings == []

    dev = str(PROJECT_ROOT / "eval_sets" / "dev.jsonl")
    result, out, said = to_eval(
        tmp_path, {"ADVISOR_DATA_DIR": str(tmp_path / "data")}, "--exclude", str(out), "--exclude", dev
    )
    assert result.exit_code == 2 and "nothing to write" in said  # every question is in the set given
    assert "(3 already in a question set)" in said
    assert out.exists()  # the earlier file is left as it was


def test_nothing_stored_is_an_error_and_writes_nothing(tmp_path):
    data = tmp_path / "data"
    result, out, said = to_eval(tmp_path, {"ADVISOR_DATA_DIR": str(data)})
    assert result.exit_code == 2 and "nothing has been stored" in said and not out.exists()

    feedback = FeedbackStore(f"sqlite:///{data / 'feedback.sqlite3'}")
    feedback.record("web", "How did DAFNE spread?", record("x"), "up", "Good")
    result, out, said = to_eval(tmp_path, {"ADVISOR_DATA_DIR": str(data)})
    assert result.exit_code == 2 and "No thumbs-down or refused questions are stored" in said
    assert not out.exists()


@pytest.mark.slow
def test_advisor_eval_runs_the_rows(built_advisor, built_settings, tmp_path):
    """The written rows through `advisor eval` on the session's index: every row answered, none scored
    against a reference it does not have."""
    db_url = f"sqlite:///{tmp_path / 'advisor.sqlite3'}"
    fill(db_url)
    result, rows_file, _ = to_eval(
        tmp_path, {"ADVISOR_DB_URL": db_url, "ADVISOR_DATA_DIR": str(tmp_path / "d")}
    )
    assert result.exit_code == 0, result.output
    ids = [json.loads(line)["id"] for line in rows_file.read_text().splitlines()]

    env = {**os.environ, "ADVISOR_DATA_DIR": str(built_settings.data_dir), "ADVISOR_CORPUS_DIR": str(CORPUS)}
    out = tmp_path / "run"
    cmd = [str(Path(sys.executable).with_name("advisor")), "eval", "--set", str(rows_file), "--out", str(out)]
    run = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout + run.stderr
    summary = json.loads((out / "summary.json").read_text())["advisor"]
    assert summary["n"] == len(ids) == 2
    assert summary["by_kind"]["unlabelled"]["n"] == 2
    answered, refused = (
        summary["by_kind"]["unlabelled"]["answered"],
        summary["by_kind"]["unlabelled"]["refused"],
    )
    assert answered + refused == 2
    assert summary["skipped"]["key_fact_recall"] == 2  # no reference: skipped, not scored as 0
    results = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["id"] for r in results] == ids and all(r["answer"] for r in results)
