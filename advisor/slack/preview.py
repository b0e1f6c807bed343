"""The answer's text shown in its "looking" reply while a language model writes it.

chat.update is Tier 3 (about 50 a minute per workspace): one answer edits at most every 1.5 s and
20 times (30 s of streaming, the default LLM timeout), and the whole bot at most 30 times a minute
(`PreviewLimiter`), leaving the rest for final answers. Preview edits are never retried; the final
Block Kit answer is always the last edit. An answer that arrives at once (extractive, catalogue)
is not previewed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from slack_sdk.errors import SlackApiError
from slack_sdk.web import WebClient

from advisor.slack.blocks import MAX_FALLBACK_CHARS, clip, escape_mrkdwn
from advisor.slack.delivery import retry_after

log = logging.getLogger(__name__)

PREVIEW_INTERVAL = 1.5
MAX_PREVIEW_UPDATES = 20
PREVIEWS_PER_MINUTE = 30
PREVIEW_TIMEOUT = 5.0  # seconds a preview edit may take; the final answer waits at most this for one
STREAMING_MARK = " …"  # ends a preview: more is coming


class PreviewLimiter:
    """Bot-wide pace for preview edits: a budget per minute, and a pause when Slack answers 429."""

    def __init__(
        self, per_minute: int = PREVIEWS_PER_MINUTE, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._sent: deque[float] = deque()
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def take(self) -> bool:
        """True (and counted) when one more preview edit may be sent now."""
        now = self._clock()
        with self._lock:
            while self._sent and self._sent[0] <= now - 60.0:
                self._sent.popleft()
            if now < self._paused_until or len(self._sent) >= self.per_minute:
                return False
            self._sent.append(now)
            return True

    def pause(self, seconds: float) -> None:
        """Send no preview edits for `seconds` (Slack's Retry-After)."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)


class AnswerPreview:
    """Shows an answer's text in its "looking" reply while the model writes it.

    `add(delta)` only stores the text (the answering thread is never held up by Slack); a thread
    of the preview's own edits the reply with the text so far, one `interval` after the first
    delta and then at most once an `interval`, at most `max_updates` times. An answer that is
    complete within the first interval (extractive, catalogue) is therefore never previewed.
    `close()` stops it and waits for an edit in flight, so the final answer, sent after
    `close()`, is always the last edit.

    Edits go through a client without retries: a failed edit is skipped, not retried; a 429
    pauses every preview of the bot for its Retry-After; an error that would only repeat (the
    message is gone, the channel archived) ends this preview.
    """

    def __init__(
        self,
        client: WebClient,
        channel: str,
        ts: str,
        limiter: PreviewLimiter,
        interval: float = PREVIEW_INTERVAL,
        max_updates: int = MAX_PREVIEW_UPDATES,
    ) -> None:
        self.client = client
        self.channel = channel
        self.ts = ts
        self.limiter = limiter
        self.interval = interval
        self.max_updates = max_updates
        self.updates = 0  # edits attempted
        self._parts: list[str] = []
        self._sent = ""  # the text of the last edit attempted
        self._due = 0.0
        self._closed = False
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, delta: str) -> None:
        """One more piece of the answer's text."""
        with self._cond:
            if self._closed:
                return
            self._parts.append(delta)
            if self._thread is None and self.max_updates > 0:
                self._due = time.monotonic() + self.interval
                self._thread = threading.Thread(target=self._run, name="slack-preview", daemon=True)
                self._thread.start()

    def close(self) -> None:
        """No more edits: returns once an edit in flight has been answered (or timed out)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(self.client.timeout + 1.0)  # the edit in flight ends by its client's timeout
            if thread.is_alive():  # only if Slack's HTTP client outlived its own timeout
                log.warning(
                    "a preview edit in %s is still in flight; sending the answer anyway", self.channel
                )

    def _run(self) -> None:
        while self.updates < self.max_updates:
            with self._cond:
                while not self._closed and self._due > time.monotonic():
                    self._cond.wait(self._due - time.monotonic())
                if self._closed:
                    return
                text = preview_text("".join(self._parts))
                self._due = time.monotonic() + self.interval
            if text == self._sent or not self.limiter.take():
                continue  # nothing new, or the bot's budget is spent: try at the next turn
            self.updates += 1
            self._sent = text  # a failed edit is not sent again: the next one shows newer text
            if not self._edit(text):
                return

    def _edit(self, text: str) -> bool:
        """One edit, never retried; False when this preview should stop."""
        try:
            self.client.chat_update(channel=self.channel, ts=self.ts, text=text)
            return True
        except SlackApiError as exc:
            status = exc.response.status_code
            if status == 429:
                wait = retry_after(exc.response.headers)
                self.limiter.pause(wait)
                log.info(
                    "Slack rate-limited a preview edit in %s: previews paused for %g s", self.channel, wait
                )
                return True
            if status >= 500:
                log.info("Slack failed a preview edit in %s (HTTP %s): skipped", self.channel, status)
                return True
            log.warning(
                "Slack refused a preview edit in %s (%s): no more previews for this answer",
                self.channel,
                exc.response.get("error"),
            )
            return False
        except Exception as exc:  # noqa: BLE001 - a timeout or lost connection: skipped, try next turn
            log.info("could not reach Slack for a preview edit in %s (%s): skipped", self.channel, exc)
            return True


def preview_text(text: str) -> str:
    """The text of a preview edit: the answer so far as escaped mrkdwn, its markers as they are, and "…"."""
    return clip(escape_mrkdwn(text.strip()), MAX_FALLBACK_CHARS) + STREAMING_MARK


def preview_client(client: WebClient, timeout: float = PREVIEW_TIMEOUT) -> WebClient:
    """A client like `client` that never retries: a preview edit that fails is skipped."""
    return WebClient(
        token=client.token,
        base_url=client.base_url,
        timeout=timeout,
        ssl=client.ssl,
        proxy=client.proxy,
        retry_handlers=[],
    )
