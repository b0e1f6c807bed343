"""Reading Slack messages (advisor/slack/messages.py): requests, polite replies, thread history."""

from __future__ import annotations

import pytest

from advisor.slack.blocks import escape_mrkdwn
from advisor.slack.messages import (
    GREETING,
    LIKE_USAGE,
    NO_WORDS,
    ONLY_FILES,
    THINKING,
    Request,
    guidance_request,
    like_request,
    read_request,
    slack_question,
    thread_history,
)
from tests.slack.helpers import QUESTION, send_ok
from tests.slack.slack_mock import BOT_ID, BOT_USER, direct_message, mention


def test_slack_question_strips_markup():
    assert slack_question(f"<@{BOT_USER}> what &amp; why &lt;now&gt;?", BOT_USER) == "what & why <now>?"
    assert (
        slack_question("see <https://x.org/a|the report> in <#C123|general>") == "see the report in #general"
    )
    assert slack_question("<!here> :wave: ask <@U999|sam> about it") == "ask @sam about it"
    assert slack_question(":tada::skin-tone-3: :+1:") == ""


def test_like_request_wordings():
    assert like_request("like a digital tool", command=True) == "a digital tool"
    assert like_request("Like: a digital tool") == "a digital tool"
    assert like_request("cases like mine: a digital tool") == "a digital tool"
    assert like_request("Show me case studies like ours – a digital tool") == "a digital tool"
    assert like_request("like mine") == ""
    assert like_request("like a digital tool") is None  # in a message, "like ..." may be an ordinary question
    assert like_request("How did KardiaMobile spread?", command=True) is None
    assert like_request("likely barriers to spread?", command=True) is None


def test_read_request_types_what_is_asked():
    """A request is a question, a "cases like mine" description, or a reply to give instead: never a
    question rewritten for the catalogue to parse again."""
    read = lambda text, **kw: read_request(text, BOT_USER, False, 2000, **kw)
    assert read(f"<@{BOT_USER}> {QUESTION}") == Request("question", QUESTION, text=QUESTION)
    assert read("cases like mine: a digital tool") == Request(
        "cases_like_mine", "cases like mine: a digital tool", text="a digital tool"
    )
    assert read("like a digital tool", command=True) == Request(
        "cases_like_mine", "like a digital tool", text="a digital tool"
    )
    assert read("like a digital tool") == Request(
        "question", "like a digital tool", text="like a digital tool"
    )
    assert read("like:") == Request("reply", "like:", reply=LIKE_USAGE)
    assert read(f"<@{BOT_USER}>") == Request("reply", "", reply=GREETING)
    assert read(":tada:") == Request("reply", "", reply=NO_WORDS)
    assert read_request("", BOT_USER, True, 2000) == Request("reply", "", reply=ONLY_FILES)
    too_long = read("why " * 600)
    assert too_long.kind == "reply" and "limit is 2,000" in too_long.reply


def test_guidance_request_wordings():
    assert guidance_request("guidance funding after the pilot") == "funding after the pilot"
    assert guidance_request("Guidance: patients-and-public") == "patients-and-public"
    assert guidance_request("guidance") == "" and guidance_request("guidance  - ") == ""
    assert guidance_request("guidances for pilots") is None  # a word that starts the same is not it
    assert guidance_request("what guidance is there on pilots?") is None


def test_guidance_is_a_command_word_only():
    """`/advisor guidance ...` asks the guidance map; a message starting "guidance" is a question."""
    read = lambda text, **kw: read_request(text, BOT_USER, False, 2000, **kw)
    assert read("guidance paying after the pilot", command=True) == Request(
        "guidance", "guidance paying after the pilot", text="paying after the pilot"
    )
    assert read("guidance", command=True) == Request("guidance", "guidance", text="")
    assert read("guidance on pilots?") == Request(
        "question", "guidance on pilots?", text="guidance on pilots?"
    )
    too_long = read("guidance " + "why " * 600, command=True)
    assert too_long.kind == "reply" and "limit is 2,000" in too_long.reply


def test_thread_history_reads_people_and_this_bot_only(slack):
    slack.mock.seed_thread(
        "C1",
        "1.0",
        [
            {"ts": "1.0", "user": "U1", "text": f"<@{BOT_USER}> {QUESTION}"},
            {"ts": "1.1", "user": BOT_USER, "bot_id": BOT_ID, "text": "Adopters were persuaded by peers [1]"},
            {"ts": "1.2", "user": "U2", "bot_id": "BOTHER", "text": "another bot talking"},
            {"ts": "1.25", "user": BOT_USER, "bot_id": BOT_ID, "text": THINKING},
            {"ts": "1.3", "user": "U1", "text": "and the funding?"},
            {"ts": "1.4", "user": "U1", "text": "this very message"},
        ],
    )
    history = thread_history(slack.app.client, "C1", "1.0", before_ts="1.4", bot_user_id=BOT_USER)
    assert history == [
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": "Adopters were persuaded by peers [1]"},
        {"role": "user", "content": "and the funding?"},
    ]


def test_long_thread_history_reads_the_latest_turns(slack):
    """Slack pages a thread oldest first: in a 450-message thread the turns just before the question count."""
    chatter = [{"ts": f"2.{i:04d}", "user": "U2", "text": f"chatter {i}"} for i in range(1, 449)]
    slack.mock.seed_thread(
        "C1",
        "2.0000",
        [
            {"ts": "2.0000", "user": "U1", "text": f"<@{BOT_USER}> {QUESTION}"},
            *chatter,
            {"ts": "2.0449", "user": "U1", "text": "How did DAFNE spread?"},
            {"ts": "2.0450", "user": "U1", "text": "this very message"},
        ],
    )
    history = thread_history(slack.app.client, "C1", "2.0000", before_ts="2.0450", bot_user_id=BOT_USER)
    assert history[0] == {"role": "user", "content": QUESTION}
    assert history[-1] == {"role": "user", "content": "How did DAFNE spread?"}
    assert len(history) == 450
    pages = slack.mock.calls_to("conversations.replies")
    assert [p.params.get("cursor") for p in pages] == [None, "200", "400"]


@pytest.mark.parametrize("kind", ["empty mention", "only emoji", "unicode emoji", "huge", "file", "dm file"])
def test_non_questions_get_a_polite_reply(slack, kind):
    ts = "1700000010.000100"
    if kind == "empty mention":
        event, expected = mention("", ts=ts), GREETING
    elif kind == "only emoji":
        event, expected = mention(":tada: :rocket::skin-tone-2: :+1:", ts=ts), NO_WORDS
    elif kind == "unicode emoji":
        event, expected = mention("🎉🚀 👍🏽", ts=ts), None
    elif kind == "huge":
        event, expected = mention("why " * 5000, ts=ts), None
    elif kind == "file":
        event, expected = mention("", ts=ts, files=[{"id": "F1", "name": "plan.pdf"}]), ONLY_FILES
    else:
        event = direct_message("", ts=ts, subtype="file_share", files=[{"id": "F1", "name": "plan.pdf"}])
        expected = ONLY_FILES
    send_ok(slack.sender.send_event(event))
    channel = event["channel"]
    assert slack.mock.wait_for(lambda m: m.replies_in(channel, ts), 20)
    [reply] = slack.mock.replies_in(channel, ts)
    text = reply.params["text"]
    assert "blocks" not in reply.params and THINKING not in text
    if expected:
        assert text == escape_mrkdwn(expected)
    elif kind == "huge":
        assert "limit is 2,000" in text
    else:
        assert "in words" in text


@pytest.mark.parametrize(
    "kind, text",
    [("command", "like"), ("command", "like:  "), ("mention", "cases like mine"), ("dm", "like:")],
)
def test_like_without_a_description_says_how_to_ask(slack, kind, text):
    ts = "1700000022.000100"
    if kind == "command":
        url = slack.mock.response_url("like3")
        status, body, _ = slack.sender.send_command(text, url)
        assert status == 200 and not body  # no "looking..." for a request that is not one
        assert slack.mock.wait_for(lambda m: m.calls_to("response_url"), 20)
        [reply] = slack.mock.calls_to("response_url")
        assert reply.params["response_type"] == "ephemeral"
    else:
        event = mention(text, ts=ts) if kind == "mention" else direct_message(text, ts=ts)
        send_ok(slack.sender.send_event(event))
        assert slack.mock.wait_for(lambda m: m.replies_in(event["channel"], ts), 20)
        [reply] = slack.mock.replies_in(event["channel"], ts)
    assert reply.params["text"] == escape_mrkdwn(LIKE_USAGE) and "blocks" not in reply.params
