"""Getting replies to Slack: posting, editing and falling back, rate limits, and what the bot remembers.

- Web API calls wait out HTTP 429 (Retry-After) and retry 5xx/connection errors a bounded number
  of times (`web_client`, `retry_handlers`); a reply that still fails is logged with its channel
  and question, never dropped silently.
- `deliver` turns the "looking" placeholder into the answer; if Slack will not edit it, the answer
  is posted as a new reply (then as plain text without blocks) and the placeholder retired.
- `respond` answers through a response_url (slash command, button), falling back to plain text.
- `EventDeduper` remembers event ids, message timestamps and triggers for a while, so an event
  Slack redelivers, or a command or button click sent again, is answered once. The cache is per
  process; `advisor slack` passes the shared database's `advisor.db.SharedDeduper` instead, so
  replicas behind one Events URL answer each event once. `AnswerCache` keeps recent answers for
  the feedback buttons (`advisor.db.SharedAnswers` across replicas).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from typing import Any, Protocol

from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.web import WebClient
from slack_sdk.webhook import WebhookClient

from advisor.config import Settings
from advisor.errors import ConfigError
from advisor.slack.messages import RETIRED

log = logging.getLogger(__name__)

SLACK_API_URL = "https://slack.com/api/"


# ---------------------------------------------------------------------------------- clients
def retry_handlers() -> list:
    """Bounded retries: rate limits waited out (Retry-After), server and connection errors retried."""
    return [
        RateLimitErrorRetryHandler(max_retry_count=3),
        ServerErrorRetryHandler(max_retry_count=2),
        ConnectionErrorRetryHandler(max_retry_count=2),
    ]


def web_client(settings: Settings, token: str | None = None) -> WebClient:
    """A Web API client at `ADVISOR_SLACK_API_URL` that waits out 429s and retries 5xx, bounded."""
    base = settings.slack_api_url or SLACK_API_URL
    if token is None:
        if settings.slack_bot_token is None:
            raise ConfigError(
                "SLACK_BOT_TOKEN is not set: the bot token (xoxb-...) from the app's OAuth page."
            )
        token = settings.slack_bot_token.get_secret_value()
    return WebClient(
        token=token,
        base_url=base if base.endswith("/") else base + "/",
        timeout=30,
        retry_handlers=retry_handlers(),
    )


def retry_after(headers: dict[str, Any]) -> float:
    """Seconds Slack asks to wait (Retry-After), 1 when it does not say, at most a minute."""
    value = next((v for k, v in (headers or {}).items() if k.lower() == "retry-after"), None)
    if isinstance(value, list):
        value = value[0] if value else None
    try:
        return min(max(float(value), 1.0), 60.0)
    except (TypeError, ValueError):
        return 1.0


def slack_error(exc: Exception) -> object:
    """Slack's error code for a refused call (e.g. "channel_not_found"), or the exception itself."""
    return exc.response.get("error") if isinstance(exc, SlackApiError) else exc


# ---------------------------------------------------------------------------------- posting
def post(client: WebClient, channel: str, thread_ts: str, message: dict, question: str) -> str | None:
    """chat.postMessage in the thread; returns the message ts, or None (logged) if it failed."""
    try:
        response = client.chat_postMessage(channel=channel, thread_ts=thread_ts, **message)
        return response.get("ts")
    except SlackApiError as exc:
        log.error(
            "Slack refused a reply in %s (thread %s): %s; question %r",
            channel,
            thread_ts,
            exc.response.get("error"),
            question[:200],
        )
    except Exception as exc:  # noqa: BLE001 - a reply that fails is logged, never raised into bolt
        log.error(
            "could not reach Slack to reply in %s (thread %s): %s; question %r",
            channel,
            thread_ts,
            exc,
            question[:200],
        )
    return None


def deliver(
    client: WebClient, channel: str, thread_ts: str, placeholder: str | None, message: dict, question: str
) -> None:
    """Turn the placeholder into the answer; fall back to a new post, then to plain text."""
    if placeholder:
        try:
            client.chat_update(channel=channel, ts=placeholder, **message)
            return
        except Exception as exc:  # noqa: BLE001 - any failure falls back to a new post
            log.warning(
                "could not edit the placeholder in %s into the answer (%s): posting it",
                channel,
                slack_error(exc),
            )
    delivered = bool(post(client, channel, thread_ts, message, question))
    if not delivered and message.get("blocks"):
        plain = {"text": message["text"]}
        delivered = bool(post(client, channel, thread_ts, plain, question))
    if delivered:
        if placeholder:
            retire_placeholder(client, channel, placeholder)
        return
    log.error(
        "ANSWER NOT DELIVERED to %s (thread %s) for question %r: %s",
        channel,
        thread_ts,
        question[:200],
        message.get("text", "")[:500],
    )


def retire_placeholder(client: WebClient, channel: str, placeholder: str) -> None:
    """Once the answer went out as a new reply, the placeholder must not keep an unchecked draft."""
    try:
        client.chat_update(channel=channel, ts=placeholder, text=RETIRED)
    except Exception as exc:  # noqa: BLE001 - gone, archived, still failing: the answer is delivered
        log.warning("could not clear the placeholder in %s (%s)", channel, slack_error(exc))


def respond(response_url: str | None, message: dict, question: str) -> None:
    """Post to a response_url (slash command, button), with the same bounded retries."""
    if not response_url:
        log.error(
            "no response_url to reply to (question %r): %s", question[:200], message.get("text", "")[:300]
        )
        return
    client = WebhookClient(response_url, timeout=30, retry_handlers=retry_handlers())
    try:
        response = client.send_dict(message)
        if response.status_code == 200:
            return
        log.warning("response_url answered %s (%s)", response.status_code, response.body)
        if message.get("blocks"):
            response = client.send_dict({k: v for k, v in message.items() if k != "blocks"})
            if response.status_code == 200:
                return
        log.error(
            "REPLY NOT DELIVERED via response_url (HTTP %s) for question %r: %s",
            response.status_code,
            question[:200],
            message.get("text", "")[:500],
        )
    except Exception as exc:  # noqa: BLE001 - logged as undelivered, never raised into bolt
        log.error(
            "REPLY NOT DELIVERED via response_url (%s) for question %r: %s",
            exc,
            question[:200],
            message.get("text", "")[:500],
        )


# ---------------------------------------------------------------------------------- memory
class Deduper(Protocol):
    """What the bot asks of its replay memory (`EventDeduper`, or one shared by several replicas)."""

    def first_time(self, *keys: str) -> bool:
        """True (and remember every key) unless one of the keys was seen before."""
        ...


class EventDeduper:
    """Thread-safe TTL memory of event keys: is this the first time we see any of them?"""

    def __init__(self, ttl_seconds: float = 3600.0, max_items: int = 50_000) -> None:
        self.ttl = ttl_seconds
        self.max_items = max_items
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, *keys: str) -> bool:
        """True (and remember every key) unless one of the keys was seen within the TTL."""
        keys = tuple(k for k in keys if k)
        now = time.monotonic()
        with self._lock:
            while self._seen and (
                next(iter(self._seen.values())) < now - self.ttl or len(self._seen) > self.max_items
            ):
                self._seen.popitem(last=False)
            if any(k in self._seen for k in keys):
                return False
            for k in keys:
                self._seen[k] = now
            return True


class AnswerCache:
    """The most recent answers by id, so a feedback click can store the full answer record."""

    def __init__(self, max_items: int = 2000) -> None:
        self.max_items = max_items
        self._items: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, answer_id: str, record: dict[str, Any]) -> None:
        with self._lock:
            self._items[answer_id] = record
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)

    def get(self, answer_id: str) -> dict[str, Any] | None:
        with self._lock:
            return self._items.get(answer_id)
