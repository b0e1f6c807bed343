"""Getting replies to Slack (advisor/slack/delivery.py): dedupe, 429 waits, retries, fallbacks, logging."""

from __future__ import annotations

import json
import logging
import time

from advisor.slack.delivery import EventDeduper, retry_after
from advisor.slack.messages import RETIRED, THINKING
from tests.slack.helpers import QUESTION, answers_in, send_ok, wait_answers
from tests.slack.slack_mock import mention

FORM = "application/x-www-form-urlencoded"


def test_retried_event_is_answered_once(slack):
    event = mention(QUESTION, ts="1700000005.000100")
    event_id = "Ev0RETRY01"
    send_ok(slack.sender.send_event(event, event_id=event_id))
    for n in (1, 2):
        send_ok(
            slack.sender.send_event(
                event,
                event_id=event_id,
                headers={"X-Slack-Retry-Num": str(n), "X-Slack-Retry-Reason": "http_timeout"},
            )
        )
    wait_answers(slack, "C0GENERAL", event["ts"])
    time.sleep(1.0)
    assert len(slack.mock.calls_to("chat.postMessage")) == 1
    assert len(answers_in(slack, "C0GENERAL", event["ts"])) == 1


def test_replayed_slash_command_is_answered_once(slack):
    """A signed /advisor sent again as it was (same trigger, timestamp and signature) is acked, not
    answered again; another /advisor, with its own trigger, still is."""
    body = slack.sender.command_body(QUESTION, slack.mock.response_url("first"))
    ts = int(time.time())
    status, ack, _ = slack.sender.post(body, FORM, timestamp=ts)
    assert status == 200 and json.loads(ack)["text"] == THINKING
    status, replayed_ack, _ = slack.sender.post(body, FORM, timestamp=ts)
    assert status == 200 and replayed_ack == ""
    assert slack.sender.send_command(QUESTION, slack.mock.response_url("second"))[0] == 200
    assert slack.mock.wait_for(lambda m: len(m.calls_to("response_url")) >= 2, 60)
    time.sleep(1.5)  # let a (wrong) second answer to the replay arrive before counting
    paths = sorted(c.path for c in slack.mock.calls_to("response_url"))
    assert paths == ["/response_url/first", "/response_url/second"]


def test_replay_with_bolts_internal_headers_is_not_run(slack):
    """bolt marks its own hand-offs to lazy listeners with X-Slack-Bolt-* headers, which are not
    signed: from outside they must neither run a listener directly nor skip the replay check."""
    body = slack.sender.command_body(QUESTION, slack.mock.response_url("once"))
    ts = int(time.time())
    assert slack.sender.post(body, FORM, timestamp=ts)[0] == 200
    internal = {"X-Slack-Bolt-Lazy-Only": "1", "X-Slack-Bolt-Lazy-Function-Name": "answer_command"}
    status, _, _ = slack.sender.post(body, FORM, timestamp=ts, headers=internal, timeout=60)
    assert status == 200
    assert slack.mock.wait_for(lambda m: m.calls_to("response_url"), 60)
    time.sleep(1.5)
    assert len(slack.mock.calls_to("response_url")) == 1


def test_replayed_feedback_click_is_stored_once(slack):
    """A button click sent again as it was is acked, not stored again; a new click is stored."""
    value = json.dumps({"a": "unknown-id", "q": QUESTION})
    body = slack.sender.action_body("advisor_feedback_down", value, slack.mock.response_url("click"))
    ts = int(time.time())
    for _ in range(2):
        assert slack.sender.post(body, FORM, timestamp=ts)[0] == 200
    again = slack.sender.send_action("advisor_feedback_up", value, slack.mock.response_url("again"))
    assert again[0] == 200
    assert slack.mock.wait_for(lambda m: len(m.calls_to("response_url")) >= 2, 30)
    time.sleep(1.5)
    assert sorted(row.verdict for row in slack.store.list()) == ["down", "up"]
    assert len(slack.mock.calls_to("response_url")) == 2


def test_rate_limited_reply_is_waited_out(slack):
    slack.mock.fail_next("chat.postMessage", 429, {"Retry-After": "1"})
    event = mention(QUESTION, ts="1700000006.000100")
    send_ok(slack.sender.send_event(event))
    wait_answers(slack, "C0GENERAL", event["ts"])
    limited = slack.mock.calls_to("chat.postMessage", status=429)
    posted = slack.mock.calls_to("chat.postMessage")
    assert len(limited) == 1 and len(posted) == 1
    assert posted[0].at - limited[0].at >= 1.0  # Retry-After honoured
    assert posted[0].params["text"] == THINKING


def test_rate_limited_private_reply_is_waited_out(slack):
    """A 429 on the slash command's response_url is waited out too, and the reply sent once."""
    slack.mock.fail_next("response_url", 429, {"Retry-After": "1"})
    url = slack.mock.response_url("cmd429")
    status, _, _ = slack.sender.send_command(QUESTION, url)
    assert status == 200
    assert slack.mock.wait_for(lambda m: m.calls_to("response_url"), 60)
    time.sleep(0.5)
    [limited] = slack.mock.calls_to("response_url", status=429)
    [reply] = slack.mock.calls_to("response_url")
    assert reply.at - limited.at >= 1.0 and reply.params["blocks"]


def test_slack_api_errors_are_retried_then_fall_back_and_logged(slack, caplog):
    caplog.set_level(logging.WARNING, logger="advisor.slack")
    slack.mock.fail_next("chat.update", 500, body={"ok": False, "error": "internal_error"}, times=3)
    event = mention(QUESTION, ts="1700000007.000100")
    send_ok(slack.sender.send_event(event))
    [answer] = wait_answers(slack, "C0GENERAL", event["ts"])
    assert len(slack.mock.calls_to("chat.update", status=500)) == 3  # first try + 2 bounded retries
    assert answer.method == "chat.postMessage"  # then posted as a new reply instead of lost
    assert any("could not edit the placeholder" in r.getMessage() for r in caplog.records)
    # and the placeholder (a "looking" line, or a streamed draft) no longer stands as if it were an answer
    assert slack.mock.wait_for(
        lambda m: any(c.params.get("text") == RETIRED for c in m.calls_to("chat.update")), 30
    )
    [retired] = [c for c in slack.mock.calls_to("chat.update") if c.params.get("text") == RETIRED]
    assert retired.params["ts"] == slack.mock.calls_to("chat.update", status=500)[0].params["ts"]
    assert not retired.params.get("blocks") and retired.at >= answer.at


def test_undeliverable_answer_is_logged_not_lost_silently(slack, caplog):
    caplog.set_level(logging.WARNING, logger="advisor.slack")
    slack.mock.fail_next("chat.update", 200, body={"ok": False, "error": "channel_not_found"})
    slack.mock.fail_next("chat.postMessage", 200, body={"ok": False, "error": "channel_not_found"}, times=2)
    event = mention(QUESTION, ts="1700000008.000100")
    slack.mock.fail_next("chat.postMessage", 200, body={"ok": False, "error": "channel_not_found"})
    send_ok(slack.sender.send_event(event))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any("NOT DELIVERED" in r.getMessage() for r in caplog.records):
        time.sleep(0.1)
    lost = [r for r in caplog.records if "NOT DELIVERED" in r.getMessage()]
    assert len(lost) == 1 and lost[0].levelno == logging.ERROR
    assert QUESTION[:40] in lost[0].getMessage()


def test_deduper_remembers_for_its_ttl():
    deduper = EventDeduper(ttl_seconds=0.2)
    assert deduper.first_time("event:1", "message:C:1")
    assert not deduper.first_time("event:2", "message:C:1")  # same message, another event id
    assert not deduper.first_time("event:1")
    time.sleep(0.3)
    assert deduper.first_time("event:1")


def test_retry_after_reads_slacks_header_within_bounds():
    assert retry_after({"retry-after": "7"}) == 7.0 and retry_after({}) == 1.0
    assert retry_after({"Retry-After": "9999"}) == 60.0
