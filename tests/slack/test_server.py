"""Serving the bot (advisor/slack/server.py): signed HTTP requests only, at /slack/events, or Socket Mode."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

from advisor.feedback import FeedbackStore
from advisor.slack.app import build_slack_app
from advisor.slack.server import SlackHttpServer
from tests.slack.helpers import QUESTION
from tests.slack.slack_mock import BOT_TOKEN, MockSlackWebApi, SlackSender, mention


@pytest.mark.parametrize(
    "case",
    [
        "wrong signature",
        "wrong secret",
        "missing signature",
        "stale timestamp",
        "future timestamp",
        "body altered",
    ],
)
def test_unsigned_or_replayed_requests_are_rejected(slack, case):
    sender = slack.sender
    body = sender.event_body(mention(QUESTION, ts="1700000004.000100"))
    kwargs = {}
    if case == "wrong signature":
        kwargs["signature"] = "v0=" + "0" * 64
    elif case == "wrong secret":
        sender = SlackSender(slack.server.url, signing_secret="not-the-secret")
    elif case == "missing signature":
        kwargs["signature"] = ""
    elif case == "stale timestamp":  # a correctly signed request replayed 10 minutes later
        kwargs["timestamp"] = int(time.time()) - 600
    elif case == "future timestamp":
        kwargs["timestamp"] = int(time.time()) + 600
    if case == "body altered":
        good = slack.sender.verifier.generate_signature(timestamp=str(int(time.time())), body=body)
        status, _, _ = slack.sender.post(
            body.replace(QUESTION, QUESTION + " Please."), "application/json", signature=good
        )
    else:
        status, _, _ = sender.post(body, "application/json", **kwargs)
    assert status == 401
    time.sleep(0.3)
    assert not slack.mock.calls_to("chat.postMessage")


def test_url_verification_challenge_is_answered(slack):
    body = json.dumps({"type": "url_verification", "token": "t", "challenge": "c0ffee"})
    status, text, _ = slack.sender.post(body, "application/json")
    assert status == 200 and "c0ffee" in text


def test_http_server_serves_only_the_events_path(slack):
    url = slack.server.url.replace("/slack/events", "/other")
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(urllib.request.Request(url, data=b"{}", method="POST"), timeout=5)
    assert exc.value.code == 404
    assert isinstance(slack.server, SlackHttpServer) and slack.server.host == "127.0.0.1"


def test_socket_mode_app_needs_no_signing_secret_and_answers(built_advisor, make_settings, tmp_path):
    """Socket Mode: events arrive over Slack's WebSocket unsigned; the same listeners answer them."""
    from slack_bolt.adapter.socket_mode.internals import run_bolt_app
    from slack_bolt.request import BoltRequest
    from slack_sdk.socket_mode.request import SocketModeRequest

    mock = MockSlackWebApi().start()
    try:
        settings = make_settings(slack_bot_token=BOT_TOKEN, slack_api_url=mock.api_url)
        app = build_slack_app(built_advisor, settings, FeedbackStore("sqlite://"), socket_mode=True)
        body = json.loads(SlackSender("http://unused").event_body(mention(QUESTION, ts="1700000012.000100")))
        response = app.dispatch(BoltRequest(body=body, mode="socket_mode"))
        assert response.status == 200
        assert mock.wait_for(
            lambda m: any(c.params.get("blocks") for c in m.replies_in("C0GENERAL", "1700000012.000100")), 60
        )
        # Slack redelivers over the socket with retry_attempt in the envelope: acked, not answered again
        redelivery = SocketModeRequest(
            type="events_api", envelope_id="env-2", payload=body, retry_attempt=1, retry_reason="timeout"
        )
        assert run_bolt_app(app, redelivery).status == 200
        time.sleep(1.0)
        assert len(mock.calls_to("chat.postMessage")) == 1
        answers = [c for c in mock.replies_in("C0GENERAL", "1700000012.000100") if c.params.get("blocks")]
        assert len(answers) == 1
    finally:
        mock.stop()
