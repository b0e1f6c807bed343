"""Slack answers kept as saved conversations (advisor/slack/app.py with advisor.history), and their
"Open in the web page" link, end to end over loopback HTTP."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import create_engine

from advisor.history import ConversationStore, Owner
from advisor.slack.blocks import OPEN_WEB_ACTION
from tests.slack.helpers import QUESTION, wait_answers
from tests.slack.slack_mock import TEAM, direct_message, mention

PUBLIC_URL = "https://intranet.example.nhs.uk/spread/"  # a path prefix and a trailing slash
ASKER = Owner.slack(TEAM, "U0ASKER")


@pytest.fixture
def conversations(tmp_path):
    return ConversationStore.open(f"sqlite:///{tmp_path / 'history.sqlite3'}")


@pytest.fixture
def linked(make_slack, conversations, monkeypatch):
    """The Slack app keeping answers in `conversations`, with ADVISOR_PUBLIC_URL set."""
    monkeypatch.setenv("ADVISOR_PUBLIC_URL", PUBLIC_URL)
    return make_slack(conversations=conversations)


def send_ok(status_body_time) -> None:
    """The request was acked (how fast is test_app's and test_server's business)."""
    status, body, _ = status_body_time
    assert status == 200, body


def _buttons(message) -> dict[str, dict]:
    """The answer's last (actions) block's buttons by action id."""
    actions = message.params["blocks"][-1]
    assert actions["type"] == "actions"
    return {e["action_id"]: e for e in actions["elements"]}


def _answer_id(message) -> str:
    return json.loads(_buttons(message)["advisor_feedback_up"]["value"])["a"]


def test_answers_are_kept_with_the_slack_owner_and_no_link_without_a_public_url(
    make_slack, conversations, monkeypatch
):
    monkeypatch.delenv("ADVISOR_PUBLIC_URL", raising=False)
    slack = make_slack(conversations=conversations)
    assert slack.settings.public_url is None
    send_ok(slack.sender.send_event(mention(QUESTION, ts="1700000101.000100")))
    [answer] = wait_answers(slack, "C0GENERAL", "1700000101.000100")
    send_ok(slack.sender.send_event(direct_message("What helped RAID spread?", ts="1700000102.000100")))
    [in_dm] = wait_answers(slack, "D0ASKER", "1700000102.000100")

    kept = conversations.list(ASKER)
    assert sorted(c.title for c in kept) == sorted([QUESTION, "What helped RAID spread?"])
    assert {(c.channel, c.user, c.turns) for c in kept} == {("slack", "U0ASKER", 1)}
    for message, question in ((answer, QUESTION), (in_dm, "What helped RAID spread?")):
        turn, summary = conversations.turn(_answer_id(message))  # the feedback id is the turn's id
        assert summary.owner == f"slack:{TEAM}/U0ASKER" and summary.channel == "slack"
        assert turn.position == 0 and turn.question == question == turn.record["question"]
        assert turn.record == slack.app.bot.answers.get(turn.id)  # what a feedback click stores
        assert turn.generation == slack.app.bot.advisor.index.generation != ""
        assert set(_buttons(message)) == {"advisor_feedback_up", "advisor_feedback_down"}  # no link
    assert not conversations.list(Owner.slack(TEAM, "U0OTHER"))


def test_a_follow_up_in_the_thread_joins_its_conversation_one_per_user(linked, conversations):
    root = mention(QUESTION, ts="1700000103.000100")
    linked.mock.seed_thread("C0GENERAL", root["ts"], [root])
    send_ok(linked.sender.send_event(root))
    wait_answers(linked, "C0GENERAL", root["ts"])
    follow_up = mention("What about in primary care?", ts="1700000103.000900", thread_ts=root["ts"])
    send_ok(linked.sender.send_event(follow_up))
    wait_answers(linked, "C0GENERAL", root["ts"], n=2)
    other = mention("And in mental health?", ts="1700000103.001500", thread_ts=root["ts"], user="U0OTHER")
    send_ok(linked.sender.send_event(other))
    answers = wait_answers(linked, "C0GENERAL", root["ts"], n=3)

    [mine] = conversations.list(ASKER)
    conversation = conversations.get(mine.id, ASKER)
    assert conversation.title == QUESTION
    assert [(t.position, t.question) for t in conversation.turns] == [
        (0, QUESTION),
        (1, "What about in primary care?"),
    ]
    assert [t.id for t in conversation.turns] == [_answer_id(a) for a in answers[:2]]
    # another person's question in the same thread is their own conversation, not a turn of this one
    [theirs] = conversations.list(Owner.slack(TEAM, "U0OTHER"))
    assert theirs.id != mine.id and theirs.turns == 1
    assert conversations.get(theirs.id, Owner.slack(TEAM, "U0OTHER")).turns[0].id == _answer_id(answers[2])


def test_the_answer_links_to_its_web_page_and_a_click_is_only_acked(linked, conversations):
    send_ok(linked.sender.send_event(mention(QUESTION, ts="1700000104.000100")))
    [answer] = wait_answers(linked, "C0GENERAL", "1700000104.000100")
    buttons = _buttons(answer)
    assert list(buttons) == ["advisor_feedback_up", "advisor_feedback_down", OPEN_WEB_ACTION]
    turn_id = _answer_id(answer)
    assert buttons[OPEN_WEB_ACTION]["url"] == f"https://intranet.example.nhs.uk/spread/shared/{turn_id}"
    turn, _ = conversations.turn(turn_id)
    assert turn.question == QUESTION and "value" not in buttons[OPEN_WEB_ACTION]

    # Slack opens the link itself and tells the app of the click: acked, nothing stored or sent
    status, body, _ = linked.sender.send_action(
        OPEN_WEB_ACTION, "", linked.mock.response_url("open1"), message_ts=answer.params["ts"]
    )
    assert (status, body) == (200, "")
    up = buttons["advisor_feedback_up"]  # then a feedback click, which is answered
    send_ok(linked.sender.send_action(up["action_id"], up["value"], linked.mock.response_url("fb1")))
    assert linked.mock.wait_for(lambda m: m.calls_to("response_url"), 20)
    [thanks] = linked.mock.calls_to("response_url")
    assert thanks.path == "/response_url/fb1"
    [row] = linked.store.list()
    assert row.verdict == "up" and row.meta["answer_id"] == turn_id and row.meta["partial_record"] is False


def _command_reply(env, text: str, key: str):
    """Send `/advisor <text>` and wait for its one private reply."""
    path = f"/response_url/{key}"
    send_ok(env.sender.send_command(text, env.mock.response_url(key)))
    assert env.mock.wait_for(lambda m: [c for c in m.calls_to("response_url") if c.path == path], 60)
    [reply] = [c for c in env.mock.calls_to("response_url") if c.path == path]
    return reply


def test_each_slash_command_is_kept_as_its_own_conversation_with_a_link(linked, conversations):
    replies = [
        _command_reply(linked, QUESTION, "c1"),
        _command_reply(linked, "What helped RAID spread?", "c2"),
    ]

    kept = conversations.list(ASKER)
    assert sorted((c.title, c.turns) for c in kept) == sorted(
        [(QUESTION, 1), ("What helped RAID spread?", 1)]
    )
    for reply in replies:
        assert reply.params["response_type"] == "ephemeral"
        turn, summary = conversations.turn(_answer_id(reply))
        assert summary.channel == "slack" and turn.position == 0
        assert _buttons(reply)[OPEN_WEB_ACTION]["url"] == PUBLIC_URL + "shared/" + turn.id


def test_a_failing_database_still_answers_without_a_link(make_slack, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("ADVISOR_PUBLIC_URL", PUBLIC_URL)
    unreachable = ConversationStore(create_engine(f"sqlite:///{tmp_path / 'no such folder' / 'h.sqlite3'}"))
    slack = make_slack(conversations=unreachable)
    send_ok(slack.sender.send_event(mention(QUESTION, ts="1700000105.000100")))
    [answer] = wait_answers(slack, "C0GENERAL", "1700000105.000100")

    assert answer.params["blocks"][0]["type"] == "section" and "[1]" in answer.params["text"]
    assert set(_buttons(answer)) == {"advisor_feedback_up", "advisor_feedback_down"}
    answer_id = _answer_id(answer)
    assert re.fullmatch(r"[0-9a-f]{16}", answer_id)  # a random id, still good for feedback
    assert slack.app.bot.answers.get(answer_id)["question"] == QUESTION
    assert "could not keep a Slack answer" in caplog.text and "unable to open database file" in caplog.text
    assert "INSERT" not in caplog.text  # exc_line: no statement, no question in the log
