"""Serving the bot (advisor/slack/server.py): signed HTTP requests only, at /slack/events, within
size and time limits, or Socket Mode."""

from __future__ import annotations

import json
import logging
import select
import socket
import time
import urllib.error
import urllib.request

import pytest
from slack_bolt.request import BoltRequest

from advisor.feedback import FeedbackStore
from advisor.slack.app import build_slack_app
from advisor.slack.server import SlackHttpServer
from tests.slack.helpers import ACK_SECONDS, QUESTION, exchange, raw_request
from tests.slack.slack_mock import BOT_TOKEN, MockSlackWebApi, SlackSender, mention

SECRET_LOOKING = "xoxp-0000-NOT-A-REAL-TOKEN-7f3a9c"  # must never reach a log
WRONG_SIGNATURE = "v0=" + "0" * 64


def log_everything(caplog) -> None:
    """Capture every record of the advisor's, bolt's, the SDK's and waitress's loggers, DEBUG up."""
    caplog.set_level(logging.DEBUG)
    for name in list(logging.root.manager.loggerDict):
        if name.startswith(("advisor", "slack_bolt", "slack_sdk", "spread-advisor", "waitress")):
            caplog.set_level(logging.DEBUG, logger=name)


def assert_nothing_leaked(caplog, capfd) -> None:
    """No body in the log or on stderr, and no traceback logged or printed."""
    err = capfd.readouterr().err
    assert SECRET_LOOKING not in caplog.text and SECRET_LOOKING not in err
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records]
    assert "Traceback" not in err, err


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


def _event_with_a_secret() -> bytes:
    return SlackSender("http://unused").event_body(mention(f"my token is {SECRET_LOOKING}")).encode()


@pytest.mark.parametrize(
    "case",
    [
        "binary garbage",
        "broken JSON, wrong signature",
        "no signature",
        "timestamp not a number",
        "signature not ASCII",
        "form payload, wrong secret",
    ],
)
def test_unsigned_garbage_gets_401_and_nothing_is_logged(slack, caplog, capfd, case):
    """The signature is checked before the body is parsed, and a refused body is never logged."""
    log_everything(caplog)
    now = str(int(time.time()))
    json_type = {"Content-Type": "application/json"}
    body, headers = _event_with_a_secret(), {**json_type, "X-Slack-Request-Timestamp": now}
    if case == "binary garbage":
        body = b"\xff\xfe\x00\x9c" + SECRET_LOOKING.encode() + b"\xc3"
        headers = {"Content-Type": "application/octet-stream"}
    elif case == "broken JSON, wrong signature":
        body, headers["X-Slack-Signature"] = body[: len(body) // 2], WRONG_SIGNATURE
    elif case == "timestamp not a number":
        headers.update({"X-Slack-Request-Timestamp": "yesterday", "X-Slack-Signature": WRONG_SIGNATURE})
    elif case == "signature not ASCII":
        headers["X-Slack-Signature"] = b"v0=\xe9\xe9"
    elif case == "form payload, wrong secret":
        body = b"payload=%7B%22type%22%3A+%22block_actions%22%2C+%22token%22%3A+%22" + SECRET_LOOKING.encode()
        signer = SlackSender("http://unused", signing_secret="not-the-secret").verifier
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": now,
            "X-Slack-Signature": signer.generate_signature(timestamp=now, body=body.decode()),
        }
    status, response = exchange(slack.server, raw_request(body=body, headers=headers))
    assert status == 401, response
    assert_nothing_leaked(caplog, capfd)
    assert [c.method for c in slack.mock.calls] == ["auth.test"]  # bolt's start-up check, nothing since


@pytest.mark.parametrize(
    "case, body, content_type",
    [
        ("broken JSON", '{"type": "event_callback", "event": ', "application/json"),
        ("JSON but not an object", "[1, 2, 3]", "application/json"),
        ("payload not JSON", "payload=%7Bnot+json", "application/x-www-form-urlencoded"),
        ("payload not an object", "payload=%5B1%5D", "application/x-www-form-urlencoded"),
        ("neither form nor JSON", "hello there", "text/plain"),
        ("empty", "", "application/json"),
    ],
)
def test_signed_but_malformed_body_gets_400(slack, caplog, capfd, case, body, content_type):
    log_everything(caplog)
    status, text, _ = slack.sender.post(body, content_type)
    assert status == 400, text
    assert_nothing_leaked(caplog, capfd)


def test_bolts_own_signature_check_keeps_the_body_out_of_the_log(slack, caplog):
    """Behind the server a bad signature never reaches bolt; reached directly (another adapter),
    bolt's check still refuses it and its log line says so without the body."""
    log_everything(caplog)
    headers = {
        "content-type": "application/json",
        "x-slack-request-timestamp": str(int(time.time())),
        "x-slack-signature": WRONG_SIGNATURE,
    }
    response = slack.app.dispatch(BoltRequest(body=_event_with_a_secret().decode(), headers=headers))
    assert response.status == 401
    assert [r for r in caplog.records if "Invalid request signature" in r.getMessage()]
    assert SECRET_LOOKING not in caplog.text


# ---------------------------------------------------------------------------------- size and time
def _challenge(size: int) -> str:
    """A url_verification request padded to exactly `size` bytes."""
    body = json.dumps({"type": "url_verification", "token": "t", "challenge": "c0ffee", "pad": ""})
    body = body.replace('"pad": ""', '"pad": "' + "x" * (size - len(body)) + '"')
    assert len(body) == size
    return body


def test_oversized_body_gets_413_without_being_read(slack):
    """A Content-Length of 100 MB is refused from the headers: the body is never sent."""
    head = raw_request(body=b'{"type": ', headers={"Content-Type": "application/json"}, content_length=10**8)
    status, response = exchange(slack.server, head, timeout=10)
    assert status == 413, response


def test_body_limit_is_the_setting_and_holds_for_chunked_bodies(make_slack):
    env = make_slack(slack_max_body_bytes=2048)
    status, text, _ = env.sender.post(_challenge(2048), "application/json")
    assert status == 200 and "c0ffee" in text
    assert env.sender.post(_challenge(2049), "application/json")[0] == 413
    # chunked: no Content-Length to check up front, cut off at the limit all the same
    body, now = _challenge(3000), str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": now,
        "X-Slack-Signature": env.sender.verifier.generate_signature(timestamp=now, body=body),
    }
    status, response = exchange(env.server, raw_request(body=body.encode(), headers=headers, chunked=True))
    assert status == 413, response


def _closed_within(sock: socket.socket, seconds: float, drip: bytes = b"") -> float | None:
    """Seconds until the server closed the connection without answering, sending `drip` every
    0.25 s meanwhile; None if it was still open after `seconds`."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        if drip:
            sock.sendall(drip)
        if select.select([sock], [], [], 0.25)[0]:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:  # our drip met the closed socket first
                data = b""
            assert data == b"", data  # closed, not answered
            return time.monotonic() - t0
    return None


def test_half_sent_body_is_dropped_after_the_read_timeout(make_slack):
    env = make_slack(slack_read_timeout=1)
    head = raw_request(
        body=b'{"type": "url_', headers={"Content-Type": "application/json"}, content_length=200
    )
    with socket.create_connection((env.server.host, env.server.port), timeout=15) as sock:
        sock.sendall(head)
        assert _closed_within(sock, 10) is not None


def test_slow_drip_body_is_cut_off_although_it_never_goes_quiet(make_slack):
    """A byte every 0.25 s never leaves the connection idle; the request must still arrive whole
    within the read timeout."""
    env = make_slack(slack_read_timeout=1)
    head = raw_request(headers={"Content-Type": "application/json"}, content_length=200)
    with socket.create_connection((env.server.host, env.server.port), timeout=15) as sock:
        sock.sendall(head)
        assert _closed_within(sock, 10, drip=b"x") is not None


def test_slow_senders_do_not_hold_up_acks(slack):
    """Bodies are read by the server's event loop, not by the threads that ack: 20 connections
    half-way through their bodies leave a real request acked within Slack's 3 s."""
    head = raw_request(body=b"{", headers={"Content-Type": "application/json"}, content_length=500)
    stalled = [
        socket.create_connection((slack.server.host, slack.server.port), timeout=15) for _ in range(20)
    ]
    try:
        for sock in stalled:
            sock.sendall(head)
        status, text, seconds = slack.sender.post(_challenge(200), "application/json")
        assert status == 200 and "c0ffee" in text and seconds < ACK_SECONDS
    finally:
        for sock in stalled:
            sock.close()


def test_url_verification_challenge_is_answered(slack):
    body = json.dumps({"type": "url_verification", "token": "t", "challenge": "c0ffee"})
    status, text, _ = slack.sender.post(body, "application/json")
    assert status == 200 and "c0ffee" in text


def test_http_server_serves_only_the_events_path(slack):
    url = slack.server.url.replace("/slack/events", "/other")
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(urllib.request.Request(url, data=b"{}", method="POST"), timeout=5)
    assert exc.value.code == 404
    assert exchange(slack.server, raw_request(path="/other", method="GET"))[0] == 404
    status, response = exchange(slack.server, raw_request(method="GET"))
    assert status == 405 and b"\r\nAllow: POST\r\n" in response
    assert isinstance(slack.server, SlackHttpServer) and slack.server.host == "127.0.0.1"
    assert slack.server.port > 0 and slack.server.url.endswith(f":{slack.server.port}/slack/events")


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
