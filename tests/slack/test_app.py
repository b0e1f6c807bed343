"""The Slack bot's listeners and answering flow (advisor/slack/app.py), end to end over loopback HTTP."""

from __future__ import annotations

import json
import re
import time

import pytest

from advisor.feedback import FeedbackStore
from advisor.slack.app import build_slack_app
from advisor.slack.blocks import escape_mrkdwn
from advisor.slack.messages import THINKING
from tests.cases.helpers import TARIFF
from tests.slack.helpers import (
    ACK_SECONDS,
    MY_INNOVATION,
    QUESTION,
    assert_catalogue_layout,
    cases_in,
    quotes_in,
    send_ok,
    wait_answers,
)
from tests.slack.slack_mock import (
    BOT_ID,
    BOT_USER,
    SIGNING_SECRET,
    MockSlackWebApi,
    direct_message,
    mention,
)


def test_mention_gets_threaded_answer_with_citation_blocks(slack, built_advisor):
    event = mention(QUESTION, ts="1700000001.000100")
    send_ok(slack.sender.send_event(event))
    [answer] = wait_answers(slack, "C0GENERAL", "1700000001.000100")

    # first a quick "looking" reply in the question's thread, then that reply edited into the answer
    placeholder = slack.mock.calls_to("chat.postMessage")[0]
    assert placeholder.params["text"] == THINKING
    assert placeholder.params["thread_ts"] == "1700000001.000100"
    assert answer.method == "chat.update"

    blocks = answer.params["blocks"]
    expected = built_advisor.ask(QUESTION).to_record()
    assert not expected["refused"] and expected["citations"]
    assert blocks[0]["type"] == "section" and "[1]" in blocks[0]["text"]["text"]
    contexts = [b for b in blocks if b["type"] == "context"]
    assert len(contexts) == len(expected["citations"])
    for block, cited in zip(contexts, expected["citations"]):
        where, quote = block["elements"][0]["text"], block["elements"][1]["text"]
        assert where.startswith(f"*[{cited['marker']}]* {escape_mrkdwn(cited['title'])}")
        assert escape_mrkdwn(cited["section"]) in where
        if cited["case_study"]:
            assert f"case study: {escape_mrkdwn(cited['case_study'])}" in where
        assert escape_mrkdwn(cited["quote"][:100]) in quote
    actions = blocks[-1]
    assert actions["type"] == "actions"
    assert [e["action_id"] for e in actions["elements"]] == ["advisor_feedback_up", "advisor_feedback_down"]
    first = expected["sentences"][0]
    assert first["label"]  # every extractive point says which case study or report it is from
    assert answer.params["text"].startswith(
        f"*{escape_mrkdwn(first['label'])}*: " + escape_mrkdwn(first["text"][:50])
    )
    # the extractive answer arrives at once: edited into place once, no previews
    assert slack.mock.calls_to("chat.update", status=None) == [answer]


def test_direct_message_answered_in_its_thread_once(slack):
    event = direct_message(QUESTION, ts="1700000002.000100")
    send_ok(slack.sender.send_event(event))
    # Slack can also deliver the same DM as an app_mention (a different event id): answered once
    send_ok(slack.sender.send_event({**event, "type": "app_mention", "text": f"<@{BOT_USER}> {QUESTION}"}))
    [answer] = wait_answers(slack, "D0ASKER", "1700000002.000100")
    assert answer.params["blocks"][0]["type"] == "section"
    time.sleep(0.5)
    assert len(slack.mock.calls_to("chat.postMessage")) == 1  # just the one "looking" reply


def test_follow_up_in_thread_uses_the_threads_earlier_turns(slack):
    root = mention(QUESTION, ts="1700000003.000100")
    slack.mock.seed_thread("C0GENERAL", root["ts"], [root])  # Slack lists the thread's root message too
    send_ok(slack.sender.send_event(root))
    wait_answers(slack, "C0GENERAL", root["ts"])

    follow_up = mention("What about in primary care?", ts="1700000003.000900", thread_ts=root["ts"])
    send_ok(slack.sender.send_event(follow_up))
    answers = wait_answers(slack, "C0GENERAL", root["ts"], n=2)

    [replies] = slack.mock.calls_to("conversations.replies")
    assert replies.params["ts"] == root["ts"] and replies.params["channel"] == "C0GENERAL"
    answer_id = json.loads(answers[-1].params["blocks"][-1]["elements"][0]["value"])["a"]
    record = slack.app.bot.answers.get(answer_id)
    assert record["question"] == "What about in primary care?"
    assert QUESTION in record["query"]  # the earlier turn made it into the searched query


def test_slash_command_answers_privately(slack):
    url = slack.mock.response_url("cmd1")
    status, body, seconds = slack.sender.send_command(QUESTION, url)
    assert status == 200 and seconds < ACK_SECONDS
    ack = json.loads(body)
    assert ack["response_type"] == "ephemeral" and ack["text"] == THINKING
    assert slack.mock.wait_for(lambda m: m.calls_to("response_url"), 60)
    [reply] = slack.mock.calls_to("response_url")
    assert reply.path == "/response_url/cmd1"
    assert reply.params["response_type"] == "ephemeral"
    assert reply.params["blocks"][0]["type"] == "section"
    assert any(b["type"] == "context" for b in reply.params["blocks"])
    assert not slack.mock.calls_to("chat.postMessage")  # nothing public


def test_empty_slash_command_gets_usage(slack):
    url = slack.mock.response_url("cmd2")
    status, _, _ = slack.sender.send_command("  ", url)
    assert status == 200
    assert slack.mock.wait_for(lambda m: m.calls_to("response_url"), 20)
    [reply] = slack.mock.calls_to("response_url")
    assert reply.params["response_type"] == "ephemeral" and "/advisor" in reply.params["text"]


# ---------------------------------------------------------------------------------- case studies
def test_slash_like_ranks_similar_cases_privately(slack, built_advisor):
    url = slack.mock.response_url("like1")
    status, body, seconds = slack.sender.send_command(f"like {MY_INNOVATION}", url)
    assert status == 200 and seconds < ACK_SECONDS
    assert json.loads(body) == {"response_type": "ephemeral", "text": THINKING}
    assert slack.mock.wait_for(lambda m: m.calls_to("response_url"), 60)
    [reply] = slack.mock.calls_to("response_url")
    assert reply.params["response_type"] == "ephemeral"
    assert not slack.mock.calls_to("chat.postMessage")  # nothing public

    blocks = reply.params["blocks"]
    assert blocks[0]["type"] == "section" and "most like yours" in blocks[0]["text"]["text"]
    expected = built_advisor.cases_like_mine(MY_INNOVATION).to_record()
    cases = assert_catalogue_layout(blocks, expected)
    ranked = [m.case.name for m in built_advisor.case_catalogue.current.like(MY_INNOVATION, k=5)]
    assert [name for _, name, _, _ in cases] == ranked and len(ranked) >= 3
    for _, name, text, _ in cases:  # each case: its score and why, how it spread
        assert re.search(r"score \d\.\d\d", text) and "In common:" in text
        assert f"How {escape_mrkdwn(name)} spread:" in text
    # every citation of the answer is shown under its case
    shown = sorted(q[0] for *_, contexts in cases for q in quotes_in(contexts))
    assert shown == [c["marker"] for c in expected["citations"]]
    answer_id = json.loads(blocks[-1]["elements"][0]["value"])["a"]
    record = slack.app.bot.answers.get(answer_id)
    assert record["route"] == "cases_like_mine"
    assert record["question"] == MY_INNOVATION  # asked as a description, not as a rewritten question


@pytest.mark.parametrize(
    "kind, text",
    [
        ("mention", "cases like mine: a mental health liaison team in an acute hospital"),
        ("mention", "like mine - a mental health liaison team in an acute hospital"),
        ("dm", "like: a mental health liaison team in an acute hospital"),
    ],
)
def test_cases_like_mine_in_a_message(slack, built_advisor, kind, text):
    ts = "1700000020.000100"
    event = mention(text, ts=ts) if kind == "mention" else direct_message(text, ts=ts)
    send_ok(slack.sender.send_event(event))
    [answer] = wait_answers(slack, event["channel"], ts)
    description = "a mental health liaison team in an acute hospital"
    expected = built_advisor.cases_like_mine(description).to_record()
    cases = assert_catalogue_layout(answer.params["blocks"], expected)
    assert cases[0][1] == "RAID"
    assert answer.params["text"].startswith("The ")  # plain-text fallback: the heading, then a line per row
    assert answer.params["text"].count("\n") >= len(cases)


def test_cases_like_mine_in_a_thread_is_the_described_case_not_the_conversation(
    slack, built_advisor, monkeypatch
):
    """A "like:" follow-up in a thread asks `Advisor.cases_like_mine` with the description; the
    thread's earlier turns are not read for it, and no question is put to `Advisor.ask`."""
    asked = []

    def ask(*args, **kwargs):
        asked.append(args)
        raise AssertionError("a like request was put to Advisor.ask")

    monkeypatch.setattr(built_advisor, "ask", ask)
    description = "a mental health liaison team in an acute hospital"
    root_ts = "1700000024.000100"
    slack.mock.seed_thread("C0GENERAL", root_ts, [mention(QUESTION, ts=root_ts)])
    event = mention(f"like: {description}", ts="1700000024.000900", thread_ts=root_ts)
    send_ok(slack.sender.send_event(event))
    [answer] = wait_answers(slack, "C0GENERAL", root_ts)
    assert not slack.mock.calls_to("conversations.replies") and not asked
    record = slack.app.bot.answers.get(json.loads(answer.params["blocks"][-1]["elements"][0]["value"])["a"])
    assert record["route"] == "cases_like_mine" and record["question"] == description
    assert_catalogue_layout(answer.params["blocks"], built_advisor.cases_like_mine(description).to_record())


def test_aggregate_question_gets_one_section_per_case(slack, built_advisor):
    question = "Which innovations used a national tariff or payment to spread?"
    event = mention(question, ts="1700000021.000100")
    send_ok(slack.sender.send_event(event))
    [answer] = wait_answers(slack, "C0GENERAL", event["ts"])
    expected = built_advisor.ask(question).to_record()
    assert expected["route"] == "catalogue"
    cases = assert_catalogue_layout(answer.params["blocks"], expected)
    assert {name for _, name, _, _ in cases} == TARIFF
    assert len(cases) == 6 and all("tariff or payment" in text for _, _, text, _ in cases)


def test_nonsense_description_gets_none_is_like_that(slack):
    url = slack.mock.response_url("like2")
    _, body, _ = slack.sender.send_command("like a recipe for chocolate cake with strawberries", url)
    assert json.loads(body)["text"] == THINKING
    assert slack.mock.wait_for(lambda m: m.calls_to("response_url"), 60)
    [reply] = slack.mock.calls_to("response_url")
    blocks = reply.params["blocks"]
    assert reply.params["response_type"] == "ephemeral"
    assert "None of the case studies in the catalogue is like that description" in blocks[0]["text"]["text"]
    assert not cases_in(blocks) and not quotes_in([b for b in blocks if b["type"] == "context"])
    assert blocks[-1]["type"] == "actions"


def test_all_23_case_studies_fit_in_one_message(slack, built_advisor):
    question = "list all the case studies"
    event = mention(question, ts="1700000023.000100")
    send_ok(slack.sender.send_event(event))
    [answer] = wait_answers(slack, "C0GENERAL", event["ts"])
    blocks = answer.params["blocks"]
    expected = built_advisor.ask(question).to_record()
    cases = assert_catalogue_layout(blocks, expected)
    assert len(built_advisor.case_catalogue.current) == 23
    assert [name for _, name, _, _ in cases] == [c.name for c in built_advisor.case_catalogue.current.cases]
    assert len(answer.params["text"]) <= 4000
    assert len(json.dumps(blocks)) < 50_000  # well inside what chat.update accepts


# ---------------------------------------------------------------------------------- guidance
FUNDING = "How should I fund my innovation after the pilot money runs out?"


def _guidance_reply(slack, text: str, key: str):
    """Send `/advisor <text>`; (the ack's body, the one private reply)."""
    url = slack.mock.response_url(key)
    status, body, seconds = slack.sender.send_command(text, url)
    assert status == 200 and seconds < ACK_SECONDS
    path = f"/response_url/{key}"
    assert slack.mock.wait_for(lambda m: [c for c in m.calls_to("response_url") if c.path == path], 60)
    [reply] = [c for c in slack.mock.calls_to("response_url") if c.path == path]
    assert reply.params["response_type"] == "ephemeral"
    assert not slack.mock.calls_to("chat.postMessage")  # nothing public
    return body, reply


def _assert_guidance_layout(blocks: list[dict], record: dict) -> None:
    """The advice, its points one a line with their markers, then one context block per citation."""
    assert record["route"] == "guidance" and record["citations"]
    assert blocks[0] == {
        "type": "section",
        "text": {"type": "mrkdwn", "text": escape_mrkdwn(record["heading"])},
    }
    lines = blocks[1]["text"]["text"].split("\n")
    assert len(lines) == len(record["rows"])
    for line, row in zip(lines, record["rows"]):
        markers = "".join(f"[{m}]" for m in row["markers"])
        assert line.startswith("• ") and line.endswith(f"{escape_mrkdwn(row['text'])} {markers}"), line
    contexts = [b for b in blocks if b["type"] == "context" and b["elements"][0]["text"].startswith("*[")]
    assert len(contexts) == len(record["citations"])
    for block, cited in zip(contexts, record["citations"]):
        where, quote = block["elements"][0]["text"], block["elements"][1]["text"]
        assert where.startswith(f"*[{cited['marker']}]* {escape_mrkdwn(cited['title'])}")
        assert quote == f"“{escape_mrkdwn(cited['quote'])}”"
    assert blocks[-1]["type"] == "actions"


def test_slash_guidance_alone_lists_the_themes(slack, built_advisor):
    body, reply = _guidance_reply(slack, "guidance", "g1")
    assert not body  # the list comes at once, with no "looking..." first
    themes = built_advisor.guidance.guidance.themes()
    blocks = reply.params["blocks"]
    assert blocks[0]["text"]["text"] == f"*What the reports advise, by theme* ({len(themes)} themes)"
    lines = "\n".join(b["text"]["text"] for b in blocks[1:-1]).split("\n")
    assert lines == [f"• *{escape_mrkdwn(t.title)}* `{t.id}`" for t in themes]
    assert "/advisor guidance" in blocks[-1]["elements"][0]["text"]


@pytest.mark.parametrize(
    "topic", ["sustaining-after-start-up-funding", "Sustain the innovation after start-up funding ends"]
)
def test_slash_guidance_on_a_theme_gives_its_points_with_citations(slack, built_advisor, topic):
    body, reply = _guidance_reply(slack, f"guidance {topic}", "g2")
    assert json.loads(body) == {"response_type": "ephemeral", "text": THINKING}
    blocks = reply.params["blocks"]
    answer_id = json.loads(blocks[-1]["elements"][0]["value"])["a"]
    record = slack.app.bot.answers.get(answer_id)
    assert (
        record["question"] == topic
        and record["analysis"]["guidance"]["theme"] == "sustaining-after-start-up-funding"
    )
    _assert_guidance_layout(blocks, record)
    theme = built_advisor.guidance.guidance.theme("sustaining-after-start-up-funding")
    assert record["heading"] == f"What the reports advise ({theme.title}): {theme.statement}"
    quotes = {p.quote for p in theme.points}
    assert all(c["quote"] in quotes for c in record["citations"])  # every point is the theme's own


def test_slash_guidance_on_a_question_answers_from_the_closest_theme(slack, built_advisor):
    _, reply = _guidance_reply(slack, "guidance how do we involve patients in designing the service?", "g3")
    blocks = reply.params["blocks"]
    record = slack.app.bot.answers.get(json.loads(blocks[-1]["elements"][0]["value"])["a"])
    expected = built_advisor.guide("how do we involve patients in designing the service?").to_record()
    assert (
        record["analysis"]["guidance"]["theme"]
        == expected["analysis"]["guidance"]["theme"]
        == "patients-and-public"
    )
    _assert_guidance_layout(blocks, record)


def test_slash_guidance_without_a_map_says_so_privately(slack, built_advisor, corpus_copy, monkeypatch):
    from advisor.guidance import GUIDANCE_NAME, Guidance

    (corpus_copy / GUIDANCE_NAME).write_text("themes: [unclosed\n", encoding="utf-8")
    broken = Guidance(corpus_copy)
    assert broken.reload() is None and broken.error
    monkeypatch.setattr(built_advisor.guidance, "guidance", broken)
    _, reply = _guidance_reply(slack, "guidance", "g4")
    text = reply.params["text"]
    assert text.startswith(
        "The guidance map is not available, so there are no themes to list. It could not be loaded:"
    )
    assert "blocks" not in reply.params
    _, reply = _guidance_reply(slack, "guidance funding after the pilot", "g5")
    assert reply.params["text"] == "The guidance map is not available; see the log for why."
    assert "blocks" not in reply.params


def test_a_question_the_guidance_map_answers_gets_its_layout_in_a_thread(slack, built_advisor):
    event = mention(FUNDING, ts="1700000030.000100")
    send_ok(slack.sender.send_event(event))
    [answer] = wait_answers(slack, "C0GENERAL", event["ts"])
    blocks = answer.params["blocks"]
    record = slack.app.bot.answers.get(json.loads(blocks[-1]["elements"][0]["value"])["a"])
    assert record == {**built_advisor.ask(FUNDING).to_record(), "timings_ms": record["timings_ms"]}
    _assert_guidance_layout(blocks, record)
    assert not cases_in(blocks)  # points, not one section per case as a catalogue answer has


# ---------------------------------------------------------------------------------- feedback
def test_feedback_button_is_stored_in_the_shared_store(slack):
    event = mention(QUESTION, ts="1700000009.000100")
    send_ok(slack.sender.send_event(event))
    [answer] = wait_answers(slack, "C0GENERAL", event["ts"])
    button = answer.params["blocks"][-1]["elements"][1]  # "Not helpful"
    send_ok(
        slack.sender.send_action(
            button["action_id"],
            button["value"],
            slack.mock.response_url("fb1"),
            message_ts=answer.params["ts"],
        )
    )
    assert slack.mock.wait_for(lambda m: m.calls_to("response_url"), 20)
    [thanks] = slack.mock.calls_to("response_url")
    assert thanks.params["response_type"] == "ephemeral" and "saved" in thanks.params["text"]
    [row] = FeedbackStore(slack.settings.database_url).list()
    assert row.channel == "slack" and row.verdict == "down"
    assert row.question == QUESTION and row.citations and row.answer
    assert row.meta["slack_user"] == "U0ASKER" and row.meta["partial_record"] is False


def test_feedback_after_restart_keeps_what_the_message_shows(slack):
    value = json.dumps({"a": "unknown-id", "q": QUESTION})
    send_ok(slack.sender.send_action("advisor_feedback_up", value, slack.mock.response_url("fb2")))
    assert slack.mock.wait_for(lambda m: m.calls_to("response_url"), 20)
    [row] = slack.store.list()
    assert row.verdict == "up" and row.question == QUESTION and row.meta["partial_record"] is True


def test_feedback_the_database_refuses_is_kept_and_the_user_told(slack, tmp_path, monkeypatch):
    """The database locked past its busy timeout (0.2 s here): "Sorry, try again later" and the
    verdict lost before; now it is kept, the user is told, and it is stored once the lock goes."""
    import sqlite3

    from advisor import db, feedback

    monkeypatch.setattr(db, "SQLITE_BUSY_MS", 200)
    monkeypatch.setattr(feedback, "RETRY_DELAYS", (0.2,))
    path = tmp_path / "locked.sqlite3"
    slack.app.bot.feedback_store = FeedbackStore(f"sqlite:///{path}", outbox=tmp_path / "outbox.jsonl")
    value = json.dumps({"a": "unknown-id", "q": QUESTION})
    lock = sqlite3.connect(path, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        send_ok(slack.sender.send_action("advisor_feedback_down", value, slack.mock.response_url("fb3")))
        assert slack.mock.wait_for(lambda m: m.calls_to("response_url"), 20)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    [told] = slack.mock.calls_to("response_url")
    assert "kept and will be saved" in told.params["text"]
    store = slack.app.bot.feedback_store
    deadline = time.monotonic() + 30
    while store.outbox.pending() and time.monotonic() < deadline:
        time.sleep(0.1)
    [row] = store.list()
    assert (row.channel, row.verdict, row.question) == ("slack", "down", QUESTION)


# ---------------------------------------------------------------------------------- ignored
def test_bots_and_edits_are_ignored(slack):
    ignored = [
        {**direct_message(QUESTION, ts="1700000011.000100"), "bot_id": "BOTHER"},
        {**direct_message(QUESTION, ts="1700000011.000200"), "subtype": "bot_message"},
        {**direct_message(QUESTION, ts="1700000011.000300"), "user": BOT_USER, "bot_id": BOT_ID},
        {**direct_message(QUESTION, ts="1700000011.000400"), "subtype": "message_changed"},
        {**mention(QUESTION, ts="1700000011.000500"), "bot_id": "BOTHER"},
        {**direct_message(QUESTION, ts="1700000011.000600"), "channel_type": "channel"},  # not a DM
    ]
    for event in ignored:
        send_ok(slack.sender.send_event(event))
    sentinel = mention("", ts="1700000011.000900")  # answered quickly, after the ignored ones
    send_ok(slack.sender.send_event(sentinel))
    assert slack.mock.wait_for(lambda m: m.replies_in("C0GENERAL", sentinel["ts"]), 20)
    time.sleep(1.0)
    posted = slack.mock.calls_to("chat.postMessage")
    assert [c.params["thread_ts"] for c in posted] == [sentinel["ts"]]


# ---------------------------------------------------------------------------------- building the app
def test_build_refuses_a_token_slack_rejects(built_advisor, make_settings):
    from advisor.errors import ConfigError

    mock = MockSlackWebApi().start()
    try:
        settings = make_settings(
            slack_bot_token="xoxb-wrong", slack_signing_secret=SIGNING_SECRET, slack_api_url=mock.api_url
        )
        with pytest.raises(ConfigError, match="SLACK_BOT_TOKEN"):
            build_slack_app(built_advisor, settings, FeedbackStore("sqlite://"))
    finally:
        mock.stop()
