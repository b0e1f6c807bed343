"""The durable feedback store: survives a restart, concurrent writers lose nothing, exports."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import textwrap

import pytest

from advisor.errors import AdvisorError
from advisor.feedback import FeedbackStore

RECORD = {
    "question": "How did KardiaMobile spread?",
    "query": "How did KardiaMobile spread?",
    "answer": "It was marketed directly to patients. [1]",
    "citations": [{"marker": 1, "source": "nuffield.txt", "quote": "It was marketed directly to patients."}],
}


def test_record_survives_a_restart_and_reads_back(tmp_path):
    url = f"sqlite:///{tmp_path / 'fb.sqlite3'}"
    first = FeedbackStore(url).record("web", RECORD["question"], RECORD, "down", "missing the cost")
    items = FeedbackStore(url).list()  # a new store: as after a restart
    assert [i.id for i in items] == [first]
    item = items[0]
    assert (item.verdict, item.comment, item.channel) == ("down", "missing the cost", "web")
    assert item.citations == RECORD["citations"] and item.answer == RECORD["answer"]
    assert item.created_at.tzinfo is not None


def test_bad_verdict_is_refused(tmp_path):
    store = FeedbackStore(f"sqlite:///{tmp_path / 'fb.sqlite3'}")
    with pytest.raises(AdvisorError, match="verdict"):
        store.record("web", "q", RECORD, "meh")
    assert store.list() == []


def test_exports_csv_and_jsonl(tmp_path):
    store = FeedbackStore(f"sqlite:///{tmp_path / 'fb.sqlite3'}")
    store.record("web", "q1", RECORD, "up")
    store.record("slack", "q2", RECORD, "down", 'needs more, "quoted", detail')
    rows = list(csv.DictReader(io.StringIO(store.export_text("csv"))))
    assert [r["question"] for r in rows] == ["q1", "q2"]
    assert rows[1]["comment"] == 'needs more, "quoted", detail'
    assert json.loads(rows[0]["citations"]) == RECORD["citations"]
    lines = [json.loads(line) for line in store.export_text("jsonl").splitlines()]
    assert [(r["channel"], r["verdict"]) for r in lines] == [("web", "up"), ("slack", "down")]
    with pytest.raises(AdvisorError, match="format"):
        store.export_text("xml")


WRITER = textwrap.dedent(
    """
    import sys
    from advisor.feedback import FeedbackStore
    url, channel, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = FeedbackStore(url)
    record = {"answer": "a", "citations": []}
    for i in range(n):
        store.record(channel, f"{channel}-{i}", record, "up" if i % 2 else "down")
    """
)


def test_concurrent_writers_in_separate_processes_lose_nothing(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    FeedbackStore(url)  # create the schema once, as the first process would
    n = 150
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, url, channel, str(n)])
        for channel in ("web", "slack", "web2")
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    items = FeedbackStore(url).list()
    assert len(items) == 3 * n
    for channel in ("web", "slack", "web2"):
        assert sorted(int(i.question.split("-")[1]) for i in items if i.channel == channel) == list(range(n))


def test_cli_export(tmp_path, monkeypatch):
    data = tmp_path / "data"
    store = FeedbackStore(f"sqlite:///{data / 'feedback.sqlite3'}")
    store.record("web", "q1", RECORD, "up", "great")
    out = tmp_path / "fb.jsonl"
    env = {"ADVISOR_DATA_DIR": str(data)}
    import os

    result = subprocess.run(
        [sys.executable, "-m", "advisor", "feedback", "export", "--format", "jsonl", "--out", str(out)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "1 feedback rows exported (1 up, 0 down)" in result.stderr
    assert json.loads(out.read_text().strip())["comment"] == "great"
