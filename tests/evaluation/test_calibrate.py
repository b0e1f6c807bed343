"""`advisor calibrate`: the coverage features of every labelled dev row, and never the test split."""

from __future__ import annotations

import pytest

from advisor.config import PROJECT_ROOT
from advisor.evaluation.calibrate import collect
from advisor.evaluation.datasets import EvalItem


def test_calibrate_refuses_to_fit_on_the_test_split(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from advisor import cli
    from advisor.cli import common

    monkeypatch.setattr(common, "open_advisor", lambda *a, **kw: pytest.fail("nothing may be loaded"))
    out = tmp_path / "model.json"
    result = CliRunner().invoke(
        cli.app, ["calibrate", "--set", str(PROJECT_ROOT / "eval_sets/test.jsonl"), "--out", str(out)]
    )
    assert result.exit_code == 2 and "fit on dev" in " ".join(result.output.split())
    assert not out.exists()


def test_collect_labels_out_of_scope_rows_and_skips_unlabelled_ones():
    class Extractive:
        def features(self, question, query, vector, passages):
            return {"question": question, "query": query, "passages": len(passages)}

    class FakeAdvisor:
        extractive = Extractive()

        def search(self, question):
            return f"condensed {question}", [0.0], ["p1", "p2"]

    items = [
        EvalItem(id="a", user_input="in scope", kind="fact"),
        EvalItem(id="b", user_input="unlabelled"),
        EvalItem(id="c", user_input="out of scope", kind="out_of_scope"),
    ]
    rows, labels = collect(FakeAdvisor(), items)
    assert labels == [0, 1]
    assert rows == [
        {"question": "in scope", "query": "condensed in scope", "passages": 2},
        {"question": "out of scope", "query": "condensed out of scope", "passages": 2},
    ]
