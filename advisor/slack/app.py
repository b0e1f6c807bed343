"""The bolt App: its listeners and the answering flow.

`build_slack_app` wires a slack-bolt `App` around one `Advisor` and one `FeedbackStore`:
- `app_mention` in channels and `message.im` in direct messages are answered in the thread of the
  question; a follow-up in a thread reads the thread's earlier turns (`conversations.replies`) as
  the conversation. `/advisor` answers privately through the command's `response_url`.
- Every request is acknowledged at once (`process_before_response=True`: the ack runs in the HTTP
  request thread) and the answer runs afterwards in a lazy listener on a bounded worker pool. A
  "Looking through the reports..." reply is posted first and edited into the answer; while a
  language model writes the answer, that reply shows the text so far (`preview.py`).
- A question is answered by `Advisor.stream` (through `Advisor.ask`); a "cases like mine" request
  (`/advisor like <description>`, or a message starting "like:" or "cases like mine") by
  `Advisor.cases_like_mine`; `/advisor guidance <theme or question>` by `Advisor.guide`, and
  `/advisor guidance` alone lists the guidance map's themes.
- Redelivered events, and replayed commands and button clicks (same trigger), are acked, not
  answered again (`replay_keys`, remembered by an injected `Deduper`); messages from bots (this
  one included) and edits are ignored.
- Feedback buttons write to the same `FeedbackStore` as the web page (channel "slack").
- With a `ConversationStore`, every answer is kept as a turn of the asker's saved conversation
  (owner `slack:<team>/<user>`, channel "slack"): one conversation per thread per user, and one per
  `/advisor` command. The turn's id is the answer's id on its feedback buttons and, with
  `ADVISOR_PUBLIC_URL`, its "Open in the web page" link (`<public url>/shared/<turn id>`). When the
  database fails the answer still goes out, with a random id and no link.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slack_bolt import App, BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.web import WebClient

from advisor.advisor import Advisor
from advisor.config import Settings
from advisor.db import SharedAnswers, exc_line
from advisor.errors import AdvisorError, ConfigError
from advisor.feedback import FeedbackStore
from advisor.history import ConversationStore, Owner
from advisor.slack.blocks import (
    FEEDBACK_ACTIONS,
    OPEN_WEB_ACTION,
    escape_mrkdwn,
    render_answer,
    render_themes,
    share_url,
)
from advisor.slack.delivery import (
    AnswerCache,
    Deduper,
    EventDeduper,
    deliver,
    post,
    respond,
    web_client,
)
from advisor.slack.messages import (
    COMMAND_USAGE,
    FILES_NOT_READ,
    NO_HISTORY,
    SORRY,
    THINKING,
    Request,
    read_request,
    thread_history,
)
from advisor.slack.preview import (
    MAX_PREVIEW_UPDATES,
    PREVIEW_INTERVAL,
    AnswerPreview,
    PreviewLimiter,
    preview_client,
)
from advisor.types import Answer

log = logging.getLogger(__name__)

NO_GUIDANCE = "The guidance map is not available, so there are no themes to list."

_ANSWERED_SUBTYPES = {None, "file_share", "thread_broadcast"}


def replay_keys(body: dict) -> list[str]:
    """What makes a request the same as one seen before: an event's id and its message, or a command's
    or button click's trigger (Slack gives each its own `trigger_id`)."""
    if body.get("type") == "event_callback":
        event = body.get("event") or {}
        keys = [f"event:{body['event_id']}"] if body.get("event_id") else []
        if event.get("channel") and event.get("ts") and event.get("type") in ("app_mention", "message"):
            keys.append(f"message:{event['channel']}:{event['ts']}")
        return keys
    return [f"trigger:{body['trigger_id']}"] if body.get("trigger_id") else []


def thread_conversation_id(team: str, channel: str, thread_ts: str, user: str) -> str:
    """The saved conversation of one user in one Slack thread: the same id for every answer there,
    so a follow-up joins it (ownership, not this id, keeps it from anyone else)."""
    key = f"{team}\x1f{channel}\x1f{thread_ts}\x1f{user}"
    return "slack-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


class _WithholdBodies(logging.Filter):
    """bolt logs the whole body of a request whose signature it refuses: keep the fact, not the body."""

    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).startswith("Invalid request signature detected"):
            record.msg, record.args = "Invalid request signature detected (body withheld)", ()
        return True


def withhold_bodies_from_bolts_log() -> None:
    """Install `_WithholdBodies` on bolt's signature-check logger (once)."""
    logger = logging.getLogger("slack_bolt.RequestVerification")
    if not any(isinstance(f, _WithholdBodies) for f in logger.filters):
        logger.addFilter(_WithholdBodies())


class SlackBot:
    """The listeners: acknowledge at once, answer in the thread, store feedback."""

    def __init__(
        self,
        advisor: Advisor,
        settings: Settings,
        feedback_store: FeedbackStore,
        deduper: Deduper | None = None,
        answers: AnswerCache | SharedAnswers | None = None,
        conversations: ConversationStore | None = None,
    ) -> None:
        self.advisor = advisor
        self.settings = settings
        self.feedback_store = feedback_store
        self.deduper = deduper or EventDeduper()
        self.answers = answers or AnswerCache()
        self.conversations = conversations
        if settings.public_url and share_url(settings.public_url, "x") is None:
            log.warning(
                "ADVISOR_PUBLIC_URL %r is not an http(s) address: Slack answers get no web page link",
                settings.public_url,
            )
        self.preview_interval = PREVIEW_INTERVAL
        self.max_preview_updates = MAX_PREVIEW_UPDATES
        self.preview_limiter = PreviewLimiter()

    # ---- middleware and acks -----------------------------------------------------------------
    def dedupe(self, body: dict, request, response, next: Callable[[], Any]):
        """Global middleware: a redelivered event (same event id or message), or a replayed command or
        button click (same trigger), is acked, not answered again.

        Every request is checked, `lazy_only` ones too: here lazy listeners run on the pool without
        passing through middleware, so a request claiming to be lazy came from outside.
        """
        keys = replay_keys(body)
        event = body.get("type") == "event_callback"
        retry = (request.headers.get("x-slack-retry-num") or [None])[0]
        if keys and not self.deduper.first_time(*keys):
            if event:
                reason = (request.headers.get("x-slack-retry-reason") or [""])[0]
                log.info(
                    "Slack redelivered %s (retry %s, %s): already being answered, acked only",
                    body.get("event_id"),
                    retry,
                    reason or "no reason given",
                )
            else:
                log.info(
                    "a %s with trigger %s came again: acked only, not run again",
                    body.get("command") or body.get("type") or "request",
                    body.get("trigger_id"),
                )
            return BoltResponse(status=200, body="")
        if retry and event:
            log.info(
                "Slack retry %s of %s seen for the first time: answering it", retry, body.get("event_id")
            )
        next()
        return response

    @staticmethod
    def ack_now(ack) -> None:
        """Acknowledge within Slack's 3 seconds; the work happens in the lazy listener."""
        ack()

    def ack_command(self, ack, command: dict) -> None:
        """Acknowledge `/advisor` with a private 'looking' note (or nothing when it gets a reply, or
        the list of themes, instead)."""
        request = self.read(command.get("text"), None, False, command=True)
        if request.kind == "reply" or (request.kind == "guidance" and not request.text):
            ack()
        else:
            ack(response_type="ephemeral", text=THINKING)

    def read(
        self, raw_text: str | None, bot_user_id: str | None, has_files: bool, command: bool = False
    ) -> Request:
        """What a message or `/advisor` command asks for (`messages.read_request`)."""
        return read_request(raw_text, bot_user_id, has_files, self.settings.max_question_chars, command)

    # ---- events --------------------------------------------------------------------------------
    def answer_mention(self, event: dict, context, client: WebClient) -> None:
        """An @mention in a channel: answer in the question's thread."""
        self._answer_message(event, context, client)

    def answer_direct_message(self, event: dict, context, client: WebClient) -> None:
        """A direct message to the bot: answer in its thread (other message events are ignored)."""
        if event.get("channel_type") != "im":
            return
        self._answer_message(event, context, client)

    @staticmethod
    def _is_from_a_bot(event: dict, context) -> bool:
        return bool(
            event.get("bot_id")
            or event.get("bot_profile")
            or event.get("subtype") == "bot_message"
            or (context.bot_user_id and event.get("user") == context.bot_user_id)
        )

    def _answer_message(self, event: dict, context, client: WebClient) -> None:
        if self._is_from_a_bot(event, context) or event.get("subtype") not in _ANSWERED_SUBTYPES:
            return
        channel, ts = event["channel"], event["ts"]
        thread_ts = event.get("thread_ts") or ts
        request = self.read(event.get("text"), context.bot_user_id, bool(event.get("files")))
        if request.kind == "reply":
            post(client, channel, thread_ts, {"text": escape_mrkdwn(request.reply)}, request.said)
            return
        placeholder = post(client, channel, thread_ts, {"text": THINKING}, request.said)
        notes: tuple[str, ...] = ()
        history: list[dict[str, str]] = []
        if event.get("thread_ts") and request.kind == "question":  # "cases like mine" reads no conversation
            try:
                history = thread_history(
                    client, channel, thread_ts, before_ts=ts, bot_user_id=context.bot_user_id
                )
            except SlackApiError as exc:
                log.warning(
                    "could not read thread %s in %s (%s): answering without it",
                    thread_ts,
                    channel,
                    exc.response.get("error"),
                )
                notes = (NO_HISTORY,)
        if event.get("files"):
            notes += (FILES_NOT_READ,)
        preview = None
        if (
            request.kind == "question"
            and placeholder
            and self.max_preview_updates > 0
            and self.advisor.llm_answerer is not None
        ):
            preview = AnswerPreview(
                preview_client(client),
                channel,
                placeholder,
                self.preview_limiter,
                self.preview_interval,
                self.max_preview_updates,
            )
        try:
            meta = {
                "team": context.team_id or event.get("team"),
                "channel": channel,
                "thread_ts": thread_ts,
                "user": event.get("user"),
            }
            message = self._answer(request, history, notes, meta, on_delta=preview.add if preview else None)
        finally:
            if preview is not None:
                preview.close()  # waits for an edit in flight: the answer below is the last edit
        deliver(client, channel, thread_ts, placeholder, message, request.said)

    # ---- slash command --------------------------------------------------------------------------
    def answer_command(self, command: dict) -> None:
        """`/advisor <question>`, `/advisor like <description>` or `/advisor guidance [<theme or
        question>]`: answered privately (ephemeral) through the command's response_url.

        Not previewed while it streams: a response_url takes at most 5 messages in 30 minutes,
        so preview edits there would compete with the answer itself for them.
        """
        request = self.read(command.get("text"), None, False, command=True)
        if request.kind == "reply":
            message = {"text": escape_mrkdwn(request.reply) if request.said else COMMAND_USAGE}
        elif request.kind == "guidance" and not request.text:
            message = self._themes()
        else:
            meta = {
                "team": command.get("team_id"),
                "channel": command.get("channel_id"),
                "user": command.get("user_id"),
                "command": True,
            }
            message = self._answer(request, [], (), meta)
        respond(command.get("response_url"), {**message, "response_type": "ephemeral"}, request.said)

    # ---- feedback ---------------------------------------------------------------------------
    def store_feedback(self, body: dict, action: dict) -> None:
        """A feedback button: store the verdict with the answer in the shared feedback store."""
        verdict = FEEDBACK_ACTIONS[action["action_id"]]
        try:
            value = json.loads(action.get("value") or "{}")
        except json.JSONDecodeError:
            value = {}
        answer_id = str(value.get("a", ""))
        record = self.answers.get(answer_id)
        partial = record is None
        if record is None:  # answered before a restart: keep what the message itself shows
            message = body.get("message") or {}
            record = {"question": value.get("q", ""), "answer": message.get("text", ""), "citations": []}
        user = (body.get("user") or {}).get("id")
        meta = {
            "answer_id": answer_id,
            "slack_user": user,
            "slack_team": (body.get("team") or {}).get("id"),
            "slack_channel": (body.get("channel") or {}).get("id"),
            "message_ts": (body.get("container") or {}).get("message_ts"),
            "partial_record": partial,
        }
        said = "helpful" if verdict == "up" else "not helpful"
        try:
            feedback_id = self.feedback_store.submit(
                "slack", record.get("question") or value.get("q", ""), record, verdict, "", meta
            )
            if feedback_id is None:  # the database refused it just now: kept and retried until stored
                text = f"Thank you: your feedback ({said}) is kept and will be saved as soon as the database is free."
            else:
                text = f"Thank you: your feedback (#{feedback_id}, {said}) was saved."
        except Exception as exc:  # noqa: BLE001 - the user hears that it failed; the log has the cause
            # neither the answer's id (its share link) nor SQLAlchemy's parameters (the answer) logged
            log.error("could not store Slack feedback %s: %s", verdict, exc_line(exc))
            text = "Sorry, I could not save your feedback just now. Please try again later."
        respond(
            body.get("response_url"),
            {"text": text, "response_type": "ephemeral", "replace_original": False},
            "",
        )

    # ---- answering ----------------------------------------------------------------------------
    def _answer(
        self,
        request: Request,
        history: list,
        notes: tuple[str, ...],
        meta: dict,
        on_delta: Callable[[str], None] | None = None,
    ) -> dict[str, Any]:
        """The rendered answer to a question or "cases like mine" request, kept as a turn of the
        asker's conversation (`meta`: team, channel, user, and a message's thread_ts); `on_delta`
        is given a question's answer text as it streams."""
        try:
            if request.kind == "cases_like_mine":
                answer = self.advisor.cases_like_mine(request.text)
            elif request.kind == "guidance":
                answer = self.advisor.guide(request.text)
            else:
                answer = self.advisor.ask(request.text, history=history or None, on_delta=on_delta)
        except AdvisorError as exc:
            return {"text": escape_mrkdwn(str(exc))}
        except Exception:
            log.exception("the advisor failed on a Slack question (%s): %r", meta, request.said[:200])
            return {"text": SORRY}
        record = answer.to_record()
        turn_id = self._keep(answer, record, meta)
        answer_id = turn_id or uuid.uuid4().hex[:16]
        self.answers.put(answer_id, record)  # the feedback store keeps the JSON record
        link = share_url(self.settings.public_url, turn_id) if turn_id and self.settings.public_url else None
        return render_answer(answer, answer_id, notes, link)

    def _keep(self, answer: Answer, record: dict[str, Any], meta: dict) -> str | None:
        """Keep the answer as a turn of the asker's saved conversation (a thread's, for a message;
        a new one for each `/advisor` command) and return the turn's id; None without a store or
        an asker, or when the database fails (logged: the answer goes out anyway, without a link)."""
        if self.conversations is None or not meta.get("user"):
            return None
        team, user = str(meta.get("team") or ""), str(meta["user"])
        thread = (
            thread_conversation_id(team, str(meta.get("channel")), meta["thread_ts"], user)
            if meta.get("thread_ts")
            else None  # a command: its answer read no earlier turns, so it starts its own conversation
        )
        try:
            turn = self.conversations.add_turn(
                Owner.slack(team, user),
                record,
                create_as=thread,
                channel="slack",
                generation=self.advisor.index.generation if self.advisor.ready else "",
            )
        except Exception as exc:  # noqa: BLE001 - the answer matters more than keeping it
            log.warning(
                "could not keep a Slack answer (%s route) in %s as a conversation turn: %s; "
                "answering anyway, without a web page link",
                answer.route,
                meta.get("channel"),
                exc_line(exc),
            )
            return None
        return turn.id

    def _themes(self) -> dict[str, Any]:
        """The guidance map's themes as a message, or why there is no map to list."""
        holder = self.advisor.guidance.guidance if self.advisor.guidance is not None else None
        themes = holder.themes() if holder is not None else []
        if not themes:
            why = f" It could not be loaded: {holder.error}" if holder is not None and holder.error else ""
            return {"text": escape_mrkdwn(f"{NO_GUIDANCE}{why}")}
        return render_themes(themes)


def build_slack_app(
    advisor: Advisor,
    settings: Settings,
    feedback_store: FeedbackStore,
    client: WebClient | None = None,
    socket_mode: bool = False,
    deduper: Deduper | None = None,
    answers: AnswerCache | SharedAnswers | None = None,
    conversations: ConversationStore | None = None,
) -> App:
    """The bolt `App` with every listener; HTTP mode needs SLACK_SIGNING_SECRET, both need a bot token.

    `deduper` and `answers` default to this process's memory; `advisor slack` passes the shared
    database's (`advisor.db`), so replicas behind one Events URL answer each event once and a
    feedback click reaching any of them finds the answer. With `conversations` every answer is
    kept as a saved conversation's turn (and links to its web page when ADVISOR_PUBLIC_URL is
    set); without it nothing is kept and there is no link."""
    if not socket_mode and settings.slack_signing_secret is None:
        raise ConfigError(
            "SLACK_SIGNING_SECRET is not set: the app's signing secret (Basic Information page)."
        )
    client = client or web_client(settings)
    withhold_bodies_from_bolts_log()
    bot = SlackBot(
        advisor, settings, feedback_store, deduper=deduper, answers=answers, conversations=conversations
    )
    executor = ThreadPoolExecutor(max_workers=settings.slack_workers, thread_name_prefix="slack-answer")
    try:
        app = App(
            client=client,
            signing_secret=settings.slack_signing_secret.get_secret_value()
            if settings.slack_signing_secret
            else None,
            request_verification_enabled=not socket_mode,
            process_before_response=True,  # ack runs in the request thread, answers on the pool
            listener_executor=executor,
            name="spread-advisor",
        )
    except Exception as exc:  # noqa: BLE001 - bolt calls auth.test at start-up; any failure is the token
        raise ConfigError(f"Slack did not accept SLACK_BOT_TOKEN ({exc}).") from None
    app.use(bot.dedupe)
    app.event("app_mention")(ack=bot.ack_now, lazy=[bot.answer_mention])
    app.event("message")(ack=bot.ack_now, lazy=[bot.answer_direct_message])
    app.command("/advisor")(ack=bot.ack_command, lazy=[bot.answer_command])
    for action_id in FEEDBACK_ACTIONS:
        app.action(action_id)(ack=bot.ack_now, lazy=[bot.store_feedback])
    app.action(OPEN_WEB_ACTION)(bot.ack_now)  # Slack opens the link itself; unacked, bolt would answer 404
    app.bot = bot  # type: ignore[attr-defined]  # for tests and operators: the answer cache, deduper
    return app
