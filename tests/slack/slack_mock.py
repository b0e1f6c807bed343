"""A local stand-in for Slack, for the Slack bot's tests and benchmark (loopback only).

- `MockSlackWebApi`: an HTTP server speaking Slack's Web API JSON (`auth.test`,
  `chat.postMessage`, `chat.update`, `chat.postEphemeral`, `reactions.add`,
  `conversations.replies`) and serving `response_url`s; it records every call and can answer the
  next call(s) of a method with an error (e.g. HTTP 429 with Retry-After), as Slack would.
- `SlackSender`: sends real signed HTTP requests (v0 signatures, as Slack signs them) to a bolt
  endpoint: events, slash commands and button clicks.

Modelled on how bolt-python's own tests mock Slack; written for this project.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from slack_sdk.signature import SignatureVerifier

BOT_TOKEN = "xoxb-test-advisor-token"
SIGNING_SECRET = "test-signing-secret-0123456789abcdef"
TEAM = "T0ADVISOR"
BOT_USER = "U0ADVISOR"
BOT_ID = "B0ADVISOR"
APP_ID = "A0ADVISOR"


@dataclass
class Call:
    """One request the mock received."""

    method: str  # Web API method, or "response_url"
    params: dict[str, Any]
    path: str
    at: float = field(default_factory=time.monotonic)
    status: int = 200


class MockSlackWebApi:
    """Slack's Web API on 127.0.0.1, recording calls, with scriptable failures."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.threads: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._failures: dict[str, list[tuple[int, dict[str, str], dict[str, Any]]]] = {}
        self._cond = threading.Condition()
        self._ts = 1_700_000_000.000100
        mock = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode("utf-8") if length else ""
                ctype = self.headers.get("Content-Type", "")
                if "json" in ctype:
                    params = json.loads(raw or "{}")
                else:
                    params = {k: v[0] for k, v in urllib.parse.parse_qs(raw).items()}
                status, headers, body = mock._handle(self.path, params, self.headers.get("Authorization", ""))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # ---- lifecycle -----------------------------------------------------------------------------
    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def response_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/response_url/{name}"

    def start(self) -> MockSlackWebApi:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ---- scripting -------------------------------------------------------------------------------
    def fail_next(
        self,
        method: str,
        status: int = 429,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next `times` calls of `method` with this status, headers and body."""
        if status == 429 and headers is None:
            headers = {"Retry-After": "1"}
        failure = (
            status,
            headers or {},
            body or {"ok": False, "error": "ratelimited" if status == 429 else "fatal_error"},
        )
        with self._cond:
            self._failures.setdefault(method, []).extend([failure] * times)

    def seed_thread(self, channel: str, thread_ts: str, messages: list[dict[str, Any]]) -> None:
        """Messages `conversations.replies` returns for a thread (posted replies are added to it)."""
        with self._cond:
            self.threads.setdefault((channel, thread_ts), []).extend(messages)

    # ---- reading what was sent -----------------------------------------------------------------
    def calls_to(self, method: str, status: int | None = 200) -> list[Call]:
        with self._cond:
            return [c for c in self.calls if c.method == method and (status is None or c.status == status)]

    def wait_for(self, predicate: Callable[[MockSlackWebApi], bool], timeout: float = 30.0) -> bool:
        """Block until `predicate(self)` holds (re-checked on every call), or the timeout passes."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.5))
            return True

    def replies_in(self, channel: str, thread_ts: str) -> list[Call]:
        """Final messages (posted, or edited into place) in a thread, excluding the 'looking' notes."""
        out = []
        for c in self.calls_to("chat.postMessage") + self.calls_to("chat.update"):
            if c.params.get("channel") != channel:
                continue
            if c.method == "chat.postMessage" and c.params.get("thread_ts") != thread_ts:
                continue
            if c.method == "chat.update" and not self._in_thread(channel, c.params.get("ts"), thread_ts):
                continue
            out.append(c)
        return [c for c in out if c.params.get("text") != "Looking through the reports..."]

    def _in_thread(self, channel: str, ts: str | None, thread_ts: str) -> bool:
        return any(m.get("ts") == ts for m in self.threads.get((channel, thread_ts), []))

    # ---- the Web API ---------------------------------------------------------------------------
    def _next_ts(self) -> str:
        self._ts += 0.000100
        return f"{self._ts:.6f}"

    def _handle(
        self, path: str, params: dict[str, Any], auth: str
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        if path.startswith("/response_url/"):
            method = "response_url"
        else:
            method = path.rsplit("/", 1)[-1]
        with self._cond:
            call = Call(method, params, path)
            self.calls.append(call)
            try:
                failures = self._failures.get(method)
                if failures:
                    status, headers, body = failures.pop(0)
                    call.status = status
                    return status, headers, body
                if method != "response_url" and auth != f"Bearer {BOT_TOKEN}":
                    return 200, {}, {"ok": False, "error": "invalid_auth"}
                return 200, {}, self._answer(method, params)
            finally:
                self._cond.notify_all()

    def _answer(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if method == "auth.test":
            return {
                "ok": True,
                "url": "https://advisor-test.slack.com/",
                "team": "Advisor Test",
                "user": "advisor",
                "team_id": TEAM,
                "user_id": BOT_USER,
                "bot_id": BOT_ID,
                "is_enterprise_install": False,
            }
        if method == "chat.postMessage":
            ts = self._next_ts()
            channel = params.get("channel")
            message = {
                "type": "message",
                "user": BOT_USER,
                "bot_id": BOT_ID,
                "text": params.get("text", ""),
                "ts": ts,
                "thread_ts": params.get("thread_ts"),
            }
            if params.get("thread_ts"):
                self.threads.setdefault((channel, params["thread_ts"]), []).append(message)
            return {"ok": True, "channel": channel, "ts": ts, "message": message}
        if method == "chat.update":
            for messages in self.threads.values():
                for m in messages:
                    if m.get("ts") == params.get("ts"):
                        m["text"] = params.get("text", "")
            return {
                "ok": True,
                "channel": params.get("channel"),
                "ts": params.get("ts"),
                "text": params.get("text"),
            }
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": self._next_ts()}
        if method == "reactions.add":
            return {"ok": True}
        if method == "conversations.replies":  # oldest first, `limit` a page, `cursor` = offset
            messages = sorted(
                self.threads.get((params.get("channel"), params.get("ts")), []), key=lambda m: float(m["ts"])
            )
            start, limit = int(params.get("cursor") or 0), int(params.get("limit") or 1000)
            more = start + limit < len(messages)
            return {
                "ok": True,
                "messages": messages[start : start + limit],
                "has_more": more,
                "response_metadata": {"next_cursor": str(start + limit) if more else ""},
            }
        if method == "response_url":
            return {"ok": True}
        return {"ok": False, "error": "unknown_method"}


class SlackSender:
    """Sends requests to a bolt endpoint signed the way Slack signs them."""

    def __init__(self, url: str, signing_secret: str = SIGNING_SECRET) -> None:
        self.url = url
        self.verifier = SignatureVerifier(signing_secret)
        self._event = 0
        self._trigger = 0
        self._lock = threading.Lock()

    def post(
        self,
        body: str,
        content_type: str,
        timestamp: int | None = None,
        signature: str | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 10.0,
    ) -> tuple[int, str, float]:
        """POST `body`; returns (status, response body, seconds to the response)."""
        ts = str(int(time.time()) if timestamp is None else timestamp)
        sig = (
            signature if signature is not None else self.verifier.generate_signature(timestamp=ts, body=body)
        )
        request = urllib.request.Request(
            self.url,
            data=body.encode("utf-8"),
            method="POST",
            headers={
                "Content-Type": content_type,
                "X-Slack-Request-Timestamp": ts,
                "X-Slack-Signature": sig,
                **(headers or {}),
            },
        )
        t0 = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.read().decode("utf-8"), time.perf_counter() - t0
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode("utf-8"), time.perf_counter() - t0

    def new_event_id(self) -> str:
        with self._lock:
            self._event += 1
            return f"Ev{self._event:08d}"

    def new_trigger_id(self) -> str:
        """A fresh trigger id, as Slack gives every command and button click its own."""
        with self._lock:
            self._trigger += 1
            return f"{self._trigger}.{int(time.time())}.advisortest"

    def event_body(self, event: dict[str, Any], event_id: str | None = None) -> str:
        """An Events API `event_callback` envelope around `event`."""
        return json.dumps(
            {
                "token": "legacy-verification-token",
                "team_id": TEAM,
                "api_app_id": APP_ID,
                "event": event,
                "type": "event_callback",
                "event_id": event_id or self.new_event_id(),
                "event_time": int(time.time()),
                "event_context": "4-eyJ0ZXN0IjoxfQ",
                "authorizations": [
                    {
                        "enterprise_id": None,
                        "team_id": TEAM,
                        "user_id": BOT_USER,
                        "is_bot": True,
                        "is_enterprise_install": False,
                    }
                ],
            }
        )

    def send_event(
        self, event: dict[str, Any], event_id: str | None = None, **kwargs: Any
    ) -> tuple[int, str, float]:
        return self.post(self.event_body(event, event_id), "application/json", **kwargs)

    def command_body(
        self,
        text: str,
        response_url: str,
        channel: str = "C0GENERAL",
        user: str = "U0ASKER",
        trigger_id: str | None = None,
    ) -> str:
        """A slash command's form body (`/advisor <text>`), with its own trigger id unless given one."""
        return urllib.parse.urlencode(
            {
                "token": "legacy-verification-token",
                "team_id": TEAM,
                "team_domain": "advisor-test",
                "channel_id": channel,
                "channel_name": "general",
                "user_id": user,
                "user_name": "asker",
                "command": "/advisor",
                "text": text,
                "api_app_id": APP_ID,
                "response_url": response_url,
                "trigger_id": trigger_id or self.new_trigger_id(),
            }
        )

    def send_command(
        self, text: str, response_url: str, channel: str = "C0GENERAL", user: str = "U0ASKER", **kwargs: Any
    ) -> tuple[int, str, float]:
        body = self.command_body(text, response_url, channel, user)
        return self.post(body, "application/x-www-form-urlencoded", **kwargs)

    def action_body(
        self,
        action_id: str,
        value: str,
        response_url: str,
        channel: str = "C0GENERAL",
        message_ts: str = "1700000000.000200",
        user: str = "U0ASKER",
        message: dict | None = None,
        trigger_id: str | None = None,
    ) -> str:
        """A button click's form body (`payload=<block_actions JSON>`), with its own trigger id."""
        payload = {
            "type": "block_actions",
            "team": {"id": TEAM, "domain": "advisor-test"},
            "user": {"id": user, "username": "asker", "team_id": TEAM},
            "api_app_id": APP_ID,
            "token": "legacy-verification-token",
            "trigger_id": trigger_id or self.new_trigger_id(),
            "response_url": response_url,
            "container": {
                "type": "message",
                "message_ts": message_ts,
                "channel_id": channel,
                "is_ephemeral": False,
            },
            "channel": {"id": channel, "name": "general"},
            "message": message
            or {"type": "message", "ts": message_ts, "text": "an answer", "bot_id": BOT_ID},
            "actions": [
                {
                    "action_id": action_id,
                    "block_id": "advisor_feedback:x",
                    "value": value,
                    "type": "button",
                    "action_ts": str(time.time()),
                }
            ],
        }
        return urllib.parse.urlencode({"payload": json.dumps(payload)})

    def send_action(
        self,
        action_id: str,
        value: str,
        response_url: str,
        channel: str = "C0GENERAL",
        message_ts: str = "1700000000.000200",
        user: str = "U0ASKER",
        message: dict | None = None,
        **kwargs: Any,
    ) -> tuple[int, str, float]:
        body = self.action_body(action_id, value, response_url, channel, message_ts, user, message)
        return self.post(body, "application/x-www-form-urlencoded", **kwargs)


def mention(
    text: str,
    channel: str = "C0GENERAL",
    ts: str | None = None,
    thread_ts: str | None = None,
    user: str = "U0ASKER",
    **extra: Any,
) -> dict[str, Any]:
    """An `app_mention` event mentioning the bot."""
    event = {
        "type": "app_mention",
        "user": user,
        "text": f"<@{BOT_USER}> {text}".rstrip(),
        "ts": ts or f"{time.time():.6f}",
        "channel": channel,
        "event_ts": ts or f"{time.time():.6f}",
        **extra,
    }
    if thread_ts:
        event["thread_ts"] = thread_ts
    return event


def direct_message(
    text: str,
    channel: str = "D0ASKER",
    ts: str | None = None,
    thread_ts: str | None = None,
    user: str = "U0ASKER",
    **extra: Any,
) -> dict[str, Any]:
    """A `message` event in the bot's DM (`message.im`)."""
    event = {
        "type": "message",
        "channel_type": "im",
        "user": user,
        "text": text,
        "ts": ts or f"{time.time():.6f}",
        "channel": channel,
        **extra,
    }
    if thread_ts:
        event["thread_ts"] = thread_ts
    return event
