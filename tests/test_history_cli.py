"""`advisor history list|show|export|purge` on a real SQLite database in the test's data folder."""

from __future__ import annotations

import io
import json
import sqlite3
from datetime import UTC, datetime

import pytest
from docx import Document
from sqlalchemy import delete
from typer.testing import CliRunner

from advisor.brief import references, report_urls
from advisor.cli import app
from advisor.config import Settings
from advisor.db import sqlite_path, turns
from advisor.history import ConversationStore, NotFoundError, Owner
from tests.conftest import CORPUS
from tests.conversations import NUFFIELD_URL, QUESTIONS, REFUSAL, store_conversation

runner = CliRunner()


@pytest.fixture
def settings(tmp_path, monkeypatch) -> Settings:
    monkeypatch.setenv("ADVISOR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ADVISOR_CORPUS_DIR", str(CORPUS))
    return Settings()


@pytest.fixture
def store(settings) -> ConversationStore:
    return ConversationStore.open(settings.database_url)


def history(*args: str):
    return runner.invoke(app, ["history", *args])


def one_line(text: str) -> str:
    """Rich wraps its output to the console's width: compare words, not line breaks."""
    return " ".join(text.split())


def test_list_with_nothing_stored_is_an_empty_json_list(settings):
    result = history("list", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == []
    assert "No conversations stored yet." in result.stderr
    assert not sqlite_path(settings.database_url).exists()  # reading created no database


def test_list_json_has_every_conversation_with_its_owner_and_answers(store):
    web = store_conversation(store)
    slack_turn = store.add_turn(
        Owner.slack("T1", "U2"), {"question": "What is ERAS+?", "answer": "…"}, channel="slack"
    )
    result = history("list", "--json")
    assert result.exit_code == 0, result.output
    listed = {c["id"]: c for c in json.loads(result.stdout)}
    assert set(listed) == {web.id, slack_turn.conversation_id}
    assert listed[web.id] | {"created": None, "updated": None} == {
        "id": web.id,
        "user": "ann",
        "channel": "web",
        "title": QUESTIONS[0],
        "created": None,
        "updated": None,
        "turns": 4,
    }
    assert listed[web.id]["created"].startswith("2025-03-01T12:00:00")
    assert listed[slack_turn.conversation_id]["user"] == "U2"
    assert listed[slack_turn.conversation_id]["turns"] == 1


def test_list_as_a_table_shows_whole_ids(store):
    conversation = store_conversation(store)
    result = history("list")
    assert result.exit_code == 0, result.output
    assert conversation.id in result.stdout
    assert "ann" in result.stdout and "web" in result.stdout and "2025-03-01 12:00" in result.stdout


def test_list_and_show_print_markup_in_peoples_words_as_text(store):
    tricky = "What about [/] closing tags and [bold]this[/bold]?"
    turn = store.add_turn(Owner.user("[/bold]alice"), {"question": tricky, "answer": "x", "refused": True})
    listed = runner.invoke(app, ["history", "list"], env={"COLUMNS": "250"})  # no cell cut short
    assert listed.exit_code == 0, listed.output
    assert "[/bold]alice" in listed.stdout and tricky in listed.stdout
    shown = history("show", turn.conversation_id)
    assert shown.exit_code == 0, shown.output
    assert "[bold]this[/bold]" in one_line(shown.stdout)


def test_a_database_without_the_conversations_table_has_none_stored(settings):
    path = sqlite_path(settings.database_url)
    path.parent.mkdir(parents=True)
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE feedback (id INTEGER PRIMARY KEY)")
    assert json.loads(history("list", "--json").stdout) == []
    shown = history("show", "abc")
    assert shown.exit_code == 2 and "No conversations stored yet" in shown.stderr


def test_show_prints_questions_answers_and_citations(store):
    conversation = store_conversation(store)
    result = history("show", conversation.id)
    assert result.exit_code == 0, result.output
    shown = one_line(result.stdout)
    for question in QUESTIONS:
        assert question in shown
    for turn in conversation.turns:
        assert turn.id in shown
    assert "Achieving scale and spread: learning for innovators and policy-makers" in shown
    assert 'Section: "Dose Adjustment for Normal Eating (DAFNE)", p. 31.' in shown
    assert "[3, 1]" in shown and one_line(REFUSAL) in shown


def test_show_json_is_the_stored_conversation(store):
    conversation = store_conversation(store)
    result = history("show", conversation.id, "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert [a["question"] for a in record["answers"]] == list(QUESTIONS)
    assert record["answers"][0]["answer"]["citations"][0]["page"] == 45
    assert record == json.loads(json.dumps(conversation.to_record()))


def test_show_an_unknown_id_says_so(store):
    store_conversation(store)
    result = history("show", "not-a-conversation")
    assert result.exit_code == 2
    assert "There is no such conversation here" in result.stderr
    as_json = history("show", "not-a-conversation", "--json")
    assert as_json.exit_code == 2
    assert json.loads(as_json.stdout)["kind"] == "NotFoundError"


def test_export_markdown_writes_the_brief(store, tmp_path):
    conversation = store_conversation(store)
    out = tmp_path / "brief.md"
    result = history("export", conversation.id, "--format", "md", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert f"Wrote the brief of 4 answers to {out}." in one_line(result.stderr)
    text = out.read_text(encoding="utf-8")
    assert text.startswith(f"# Brief: {QUESTIONS[0]}")
    for n, question in enumerate(QUESTIONS, start=1):
        assert f"## {n}. {question}" in text
    for reference in references(conversation.turns):
        assert f"[{reference.number}] " in text and reference.title in text
    assert f"Available at: <{NUFFIELD_URL}>" in text
    assert list(tmp_path.glob(".*.part")) == []


def test_export_docx_writes_a_word_document(store, tmp_path):
    conversation = store_conversation(store)
    out = tmp_path / "brief.docx"  # --format from the file's name
    result = history("export", conversation.id, "--out", str(out))
    assert result.exit_code == 0, result.output
    paragraphs = [p.text for p in Document(io.BytesIO(out.read_bytes())).paragraphs]
    for n, question in enumerate(QUESTIONS, start=1):
        assert f"{n}. {question}" in paragraphs
    refs = references(conversation.turns, report_urls(CORPUS))
    assert len(refs) == 4
    for reference in refs:
        assert f"[{reference.number}] {reference.text()}" in paragraphs


@pytest.mark.parametrize("fmt", ["md", "docx"])
def test_export_of_an_unknown_id_writes_nothing(store, tmp_path, fmt):
    store_conversation(store)
    out = tmp_path / f"brief.{fmt}"
    result = history("export", "not-a-conversation", "--format", fmt, "--out", str(out))
    assert result.exit_code == 2
    assert "There is no such conversation here" in result.stderr
    assert not out.exists()


def test_export_of_an_empty_conversation_writes_nothing_and_keeps_an_earlier_file(store, tmp_path):
    conversation = store_conversation(store)
    with store.engine.begin() as conn:
        conn.execute(delete(turns).where(turns.c.conversation_id == conversation.id))
    out = tmp_path / "brief.md"
    out.write_text("an earlier brief", encoding="utf-8")
    result = history("export", conversation.id, "--format", "md", "--out", str(out))
    assert result.exit_code == 2
    assert "no answers to export yet" in one_line(result.stderr)
    assert out.read_text(encoding="utf-8") == "an earlier brief"


def test_export_with_nothing_stored_says_so(settings, tmp_path):
    out = tmp_path / "brief.docx"
    result = history("export", "abc", "--out", str(out))
    assert result.exit_code == 2
    assert "No conversations stored yet" in result.stderr and not out.exists()


def test_export_into_a_missing_folder_is_a_message_not_a_traceback(store, tmp_path):
    conversation = store_conversation(store)
    result = history("export", conversation.id, "--out", str(tmp_path / "no" / "brief.md"))
    assert result.exit_code == 2  # an uncaught OSError would be exit code 1
    assert "Cannot write" in one_line(result.stderr)


def test_purge_without_retention_says_it_is_off(store):
    store_conversation(store)
    result = history("purge")
    assert result.exit_code == 0, result.output
    assert "Retention is off" in result.stdout
    assert len(store.list()) == 1


def test_purge_deletes_the_conversations_older_than_the_retention(store, monkeypatch):
    old = store_conversation(store)  # last answered 1 March 2025
    new = store_conversation(store, Owner.user("bo"), now=datetime.now(UTC))
    monkeypatch.setenv("ADVISOR_RETENTION_DAYS", "30")
    result = history("purge")
    assert result.exit_code == 0, result.output
    assert "Deleted 1 conversation untouched for more than 30 days." in one_line(result.stdout)
    assert [c.id for c in store.list()] == [new.id]
    with pytest.raises(NotFoundError):
        store.turn(old.turns[0].id)  # its share links went with it
    again = history("purge")
    assert "Deleted 0 conversations" in one_line(again.stdout)
