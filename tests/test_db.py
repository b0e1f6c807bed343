"""The shared database: schema creation under concurrent starts, SQLite and PostgreSQL; the
shared Slack de-duplication and answer records; feedback kept when the database refuses it;
export from a read-only folder."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect
from sqlalchemy.exc import OperationalError

from advisor import db, feedback
from advisor.db import SharedAnswers, SharedDeduper, open_database
from advisor.feedback import FeedbackStore

RECORD = {"question": "q", "answer": "a [1]", "citations": [{"n": 1, "source": "x.txt"}]}

# Several processes open the store at the same instant, as the web page and the Slack bot do
# when started together on a fresh machine.
STARTER = textwrap.dedent(
    """
    import sys, time
    start = float(sys.argv[2])
    time.sleep(max(0.0, start - time.time()))
    from advisor.feedback import FeedbackStore
    store = FeedbackStore(sys.argv[1])
    store.record("web", "q", {"answer": "a", "citations": []}, "up")
    """
)


def start_together(url: str, n: int = 5) -> list[tuple[int, str]]:
    start = time.time() + 3.0  # every process imported and waiting before the moment
    procs = [
        subprocess.Popen([sys.executable, "-c", STARTER, url, str(start)], stderr=subprocess.PIPE, text=True)
        for _ in range(n)
    ]
    return [(p.wait(timeout=120), p.stderr.read()[-400:]) for p in procs]


def test_processes_creating_the_sqlite_schema_at_once_all_start(tmp_path):
    for trial in range(3):
        url = f"sqlite:///{tmp_path / f'fresh-{trial}.sqlite3'}"
        outcomes = start_together(url)
        assert [code for code, _ in outcomes] == [0] * 5, [e for c, e in outcomes if c]
        assert len(FeedbackStore(url).list()) == 5


def test_processes_creating_the_postgres_schema_at_once_all_start(fresh_postgres):
    outcomes = start_together(fresh_postgres)
    assert [code for code, _ in outcomes] == [0] * 5, [e for c, e in outcomes if c]
    assert len(FeedbackStore(fresh_postgres).list()) == 5
    assert {"feedback", "seen_keys", "answers"} <= set(
        inspect(create_engine(fresh_postgres)).get_table_names()
    )


def test_creating_the_schema_twice_changes_nothing(tmp_path):
    url = f"sqlite:///{tmp_path / 'twice.sqlite3'}"
    first = FeedbackStore(url)
    first.record("web", "q", RECORD, "down", "kept")
    FeedbackStore(url)  # a restart
    assert [f.comment for f in FeedbackStore(url).list()] == ["kept"]


def test_sqlite_busy_timeout_is_set_before_wal(tmp_path, monkeypatch):
    """Switching to WAL needs the write lock: without the timeout first, a second process
    switching at the same moment fails at once with "database is locked"."""
    seen: list[str] = []

    class Cursor:
        def execute(self, sql):
            seen.append(sql.split("=")[0])

        def close(self):
            pass

    class Conn:
        def cursor(self):
            return Cursor()

    db._sqlite_pragmas(Conn(), None)
    assert seen.index("PRAGMA busy_timeout") < seen.index("PRAGMA journal_mode")


# ---------------------------------------------------------------------------- de-duplication
@pytest.fixture(params=["sqlite", "postgres"])
def shared_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    return request.getfixturevalue("fresh_postgres")


def test_shared_deduper_lets_one_of_many_threads_take_a_key(shared_url):
    engines = [open_database(shared_url) for _ in range(2)]  # as two replicas
    dedupers = [SharedDeduper(e) for e in engines]
    results: list[bool] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def take(i: int) -> None:
        barrier.wait()
        got = dedupers[i % 2].first_time("event:Ev1", "message:C1:1.0")
        with lock:
            results.append(got)

    threads = [threading.Thread(target=take, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(results) == [False] * 7 + [True]
    # a retry of the same message under a new event id is seen; a new message is not
    assert dedupers[1].first_time("event:Ev2", "message:C1:1.0") is False
    assert dedupers[0].first_time("event:Ev3", "message:C1:2.0") is True


def test_shared_deduper_forgets_keys_after_the_ttl(tmp_path):
    deduper = SharedDeduper(open_database(f"sqlite:///{tmp_path / 'ttl.sqlite3'}"), ttl_seconds=0.5)
    assert deduper.first_time("command:T1") is True
    assert deduper.first_time("command:T1") is False
    time.sleep(0.7)
    assert deduper.first_time("command:T1") is True


def test_shared_answers_are_read_by_another_replica(shared_url):
    SharedAnswers(open_database(shared_url)).put("a1", {**RECORD, "when": object()})
    got = SharedAnswers(open_database(shared_url)).get("a1")
    assert got is not None and got["answer"] == "a [1]" and got["citations"] == RECORD["citations"]
    assert SharedAnswers(open_database(shared_url)).get("unknown") is None


# ---------------------------------------------------------------------------- kept feedback
@pytest.fixture
def short_busy(monkeypatch):
    """A 0.2 s busy timeout stands for "locked for longer than the 30 s timeout"."""
    monkeypatch.setattr(db, "SQLITE_BUSY_MS", 200)
    monkeypatch.setattr(feedback, "RETRY_DELAYS", (0.2,))


def hold_write_lock(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    return conn


def test_feedback_refused_by_a_locked_database_is_kept_and_stored_later(tmp_path, short_busy):
    path = tmp_path / "fb.sqlite3"
    store = FeedbackStore(f"sqlite:///{path}", outbox=tmp_path / "outbox.jsonl")
    lock = hold_write_lock(path)
    try:
        assert store.submit("web", "q", RECORD, "down", "the cost was missing") is None
        assert store.submit("web", "q2", RECORD, "up") is None
        assert store.outbox.pending() == 2
        assert (tmp_path / "outbox.jsonl").read_text().count("\n") == 2
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    deadline = time.monotonic() + 30
    while store.outbox.pending() and time.monotonic() < deadline:
        time.sleep(0.1)
    items = FeedbackStore(f"sqlite:///{path}").list()
    assert [(i.question, i.comment) for i in items] == [("q", "the cost was missing"), ("q2", "")]
    assert (tmp_path / "outbox.jsonl").read_text() == ""


def test_kept_feedback_survives_a_restart(tmp_path, short_busy):
    path, outbox = tmp_path / "fb.sqlite3", tmp_path / "outbox.jsonl"
    store = FeedbackStore(f"sqlite:///{path}", outbox=outbox)

    def down(row):  # this process never reaches the database again: busy, not refused
        raise OperationalError("INSERT ...", {}, ConnectionError("the database is down"))

    store.outbox.insert_row = down
    lock = hold_write_lock(path)
    try:
        assert store.submit("slack", "q", RECORD, "up", "x") is None
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    restarted = FeedbackStore(f"sqlite:///{path}", outbox=outbox)  # stores what was kept
    deadline = time.monotonic() + 30
    while restarted.outbox.pending() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [(i.channel, i.comment) for i in restarted.list()] == [("slack", "x")]


# ---------------------------------------------------------------------------- read-only export
def respecting_permissions(command: list[str]) -> list[str]:
    """Root writes anywhere: without its capability to override file permissions (util-linux's
    setpriv), a read-only folder is read-only to it too."""
    if os.geteuid() != 0:
        return command
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--", *command]


def test_export_works_from_a_read_only_data_folder(tmp_path):
    data = tmp_path / "ro-data"
    store = FeedbackStore(f"sqlite:///{data / 'feedback.sqlite3'}")
    store.record("web", "q1", RECORD, "up", "great")
    store.record("slack", "q2", RECORD, "down")
    store.engine.dispose()
    for p in (tmp_path, data, *data.iterdir()):
        p.chmod(0o755 if p.is_dir() else 0o644)
    data.chmod(0o555)
    env = {**os.environ, "ADVISOR_DATA_DIR": str(data), "HOME": str(tmp_path)}
    try:
        result = subprocess.run(
            respecting_permissions(
                [sys.executable, "-m", "advisor", "feedback", "export", "--format", "jsonl"]
            ),
            env=env,
            cwd="/",
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        data.chmod(0o755)
    assert result.returncode == 0, result.stderr[-800:]
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["question"], r["verdict"]) for r in rows] == [("q1", "up"), ("q2", "down")]
    assert "Traceback" not in result.stderr


def test_export_of_a_missing_database_says_so(tmp_path):
    env = {**os.environ, "ADVISOR_DATA_DIR": str(tmp_path / "none")}
    result = subprocess.run(
        [sys.executable, "-m", "advisor", "feedback", "export"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert "no feedback database" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "none").exists()  # an export creates nothing


def test_read_only_store_refuses_writes(tmp_path):
    url = f"sqlite:///{tmp_path / 'fb.sqlite3'}"
    FeedbackStore(url).record("web", "q", RECORD, "up")
    ro = FeedbackStore(url, read_only=True)
    assert len(ro.list()) == 1
    with pytest.raises(feedback.AdvisorError, match="read-only"):
        ro.record("web", "q", RECORD, "up")


def test_read_only_store_on_a_database_never_written_lists_nothing(tmp_path, fresh_postgres):
    sqlite_url = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    create_engine(sqlite_url).connect().close()  # the file exists, without tables
    for url in (sqlite_url, fresh_postgres):
        assert FeedbackStore(url, read_only=True).list() == []


def test_a_nul_in_a_comment_is_stored_on_postgres_not_kept_forever(fresh_postgres):
    """psycopg refuses NUL in text: before, such a row went to the outbox, failed every retry
    and held up all feedback behind it."""
    store = FeedbackStore(fresh_postgres)
    assert isinstance(store.submit("web", "q\x00", RECORD, "down", "bad\x00comment"), int)
    assert [(f.question, f.comment) for f in store.list()] == [("q", "badcomment")]
    assert store.outbox.pending() == 0


def test_rows_refused_for_themselves_and_broken_lines_are_set_aside(tmp_path, short_busy):
    from sqlalchemy.exc import DataError

    url, outbox = f"sqlite:///{tmp_path / 'fb.sqlite3'}", tmp_path / "outbox.jsonl"
    store = FeedbackStore(url, outbox=outbox)
    insert_row = store.outbox.insert_row

    def refuse_bad(row):
        if row["question"] == "bad":
            raise DataError("INSERT ...", {}, ValueError("value out of range"))
        return insert_row(row)

    store.outbox.insert_row = refuse_bad
    lock = hold_write_lock(tmp_path / "fb.sqlite3")
    try:
        for question in ("first", "bad", "last"):
            assert store.submit("web", question, RECORD, "up") is None
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    with outbox.open("a") as f:
        f.write("{not json\n")
    store.submit("web", "after", RECORD, "up")  # queued behind the kept rows
    store.outbox.retry_now()
    deadline = time.monotonic() + 30
    while store.outbox.pending() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [f.question for f in store.list()] == ["first", "last", "after"]
    rejected = (tmp_path / "outbox.rejected.jsonl").read_text().splitlines()
    assert len(rejected) == 2 and json.loads(rejected[0])["question"] == "bad" and rejected[1] == "{not json"


def test_shared_deduper_falls_back_to_memory_when_the_database_is_unreachable(tmp_path):
    deduper = SharedDeduper(open_database(f"sqlite:///{tmp_path / 'x.sqlite3'}"))
    deduper.engine = create_engine(f"sqlite:///{tmp_path / 'missing' / 'nowhere.sqlite3'}")
    assert deduper.first_time("event:E1") is True
    assert deduper.first_time("event:E1") is False  # remembered by this replica meanwhile
