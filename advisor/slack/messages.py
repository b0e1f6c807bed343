"""Reading Slack messages: what a request asks, the thread's earlier turns, and the bot's fixed replies.

A message (or `/advisor` command) is read into a `Request`: a question for `Advisor.stream`, a
description for `Advisor.cases_like_mine`, a theme or question for `Advisor.guide` (`/advisor
guidance ...`), or a polite reply to give instead of an answer (empty, only emoji, a file, too
long, "like" with nothing after it).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Literal

from slack_sdk.web import WebClient

from advisor.advisor import clean_question
from advisor.errors import AdvisorError
from advisor.text import normalise_space

THINKING = "Looking through the reports..."
RETIRED = (
    "The answer is in the reply below."  # a placeholder (or streamed draft) that could not become the answer
)
MAX_THREAD_PAGES = 5  # conversations.replies pages (200 messages each) read for a follow-up's history

GREETING = (
    "Hello! Ask me about scaling and spreading innovation in the NHS and I will answer from the "
    "published reports, citing the evidence for every sentence. For example: "
    "_How did the Against the Odds innovators persuade late adopters?_ "
    "Or describe your own innovation and setting to see the case studies most like it: "
    "_cases like mine: a digital tool for primary care made by a small company_"
)
ONLY_FILES = (
    "I can only read questions typed as text; I can't open files or images. "
    "Please type your question in words."
)
NO_WORDS = (
    "I can only answer questions written in words. What would you like to know about spreading innovation?"
)
COMMAND_USAGE = (
    "Type `/advisor` and your question, e.g. `/advisor how did innovators persuade late adopters?` "
    "I answer privately from the published reports on spreading innovation in the NHS, with the evidence. "
    "To find the case studies most like your innovation, type `/advisor like` and describe it and its "
    "setting, e.g. `/advisor like a digital tool for primary care made by a small company`. "
    "For what the reports advise on a theme, type `/advisor guidance` and a theme or a question, e.g. "
    "`/advisor guidance paying for it after the pilot`; `/advisor guidance` alone lists the themes."
)
LIKE_USAGE = (
    'Describe your innovation and its setting in a sentence after "like", e.g. '
    "`/advisor like a digital tool for primary care made by a small company` or "
    '"cases like mine: a mental health liaison team in an acute hospital", and I will rank the '
    "case studies most like it, with what each did to spread and the evidence."
)
SORRY = "Sorry, something went wrong while I was answering. Please try again in a minute."
NO_HISTORY = "I could not read the earlier messages in this thread, so I answered this question on its own."
FILES_NOT_READ = "I read only the text of your message, not the attached files."

_USER_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|([^>]*))?>")
_CHANNEL_LINK = re.compile(r"<#[CG][A-Z0-9]+(?:\|([^>]*))?>")
_SPECIAL = re.compile(r"<![^>]*>")
_URL_LINK = re.compile(r"<((?:https?|mailto):[^>|]+)(?:\|([^>]*))?>")
_EMOJI_CODE = re.compile(r":[a-z0-9_+'\-]+:(?::skin-tone-\d:)?", re.IGNORECASE)

# "Cases like mine" in Slack's own words: `/advisor like <description>`, and in any message
# "like: <description>" or "(cases) like mine <description>". Other wordings ("show me cases like
# mine: ...") reach the catalogue through the advisor's own question reading.
_LIKE_MINE = re.compile(
    r"^(?:(?:show me|find|list)\s+)?(?:(?:cases?|case[- ]stud(?:y|ies)|innovations?|examples?)\s+)?"
    r"(?:like|similar to)\s+(?:mine|ours)\b[\s:,.\-–—]*",
    re.IGNORECASE,
)
_LIKE_COLON = re.compile(r"^like\s*:\s*", re.IGNORECASE)
_LIKE_WORD = re.compile(r"^like\b[\s:,.\-–—]*", re.IGNORECASE)
# `/advisor guidance <theme or question>`: what the guidance map advises
_GUIDANCE_WORD = re.compile(r"^guidance\b[\s:,.\-–—]*", re.IGNORECASE)

RequestKind = Literal["question", "cases_like_mine", "guidance", "reply"]


@dataclass(frozen=True)
class Request:
    """What one message or `/advisor` command asks for.

    - "question": `text` is the question for `Advisor.stream`;
    - "cases_like_mine": `text` describes the user's innovation, for `Advisor.cases_like_mine`;
    - "guidance": `text` is a theme (id or title) or a question for `Advisor.guide`; "" asks for
      the list of themes;
    - "reply": not something to answer; `reply` is what to say instead.
    """

    kind: RequestKind
    said: str  # the message's words, Slack's markup taken out ("" when it has none)
    text: str = ""
    reply: str = ""


def slack_question(text: str | None, bot_user_id: str | None = None) -> str:
    """The question in a Slack message: the bot's mention, links' markup and emoji taken out."""
    text = text or ""

    def user(m: re.Match) -> str:
        if bot_user_id and m.group(1) == bot_user_id:
            return " "
        return f"@{m.group(2)}" if m.group(2) else " "

    text = _USER_MENTION.sub(user, text)
    text = _CHANNEL_LINK.sub(lambda m: f"#{m.group(1)}" if m.group(1) else " ", text)
    text = _SPECIAL.sub(" ", text)
    text = _URL_LINK.sub(lambda m: m.group(2) or m.group(1), text)
    text = _EMOJI_CODE.sub(" ", text)
    text = html.unescape(text)
    return normalise_space(text)


def polite_reply(raw_text: str | None, question: str, has_files: bool, max_chars: int) -> str | None:
    """A reply for input that is not a question (empty, only emoji, a file, too long), else None."""
    if not question:
        if has_files:
            return ONLY_FILES
        stripped = _USER_MENTION.sub("", raw_text or "").strip()
        return NO_WORDS if stripped else GREETING
    try:
        clean_question(question, max_chars)
    except AdvisorError as exc:
        return str(exc)
    return None


def like_request(question: str, command: bool = False) -> str | None:
    """The description in a "cases like mine" request ("" if it gives none), or None for other questions.

    Messages ask with "like: ..." or "cases like mine ..."; `/advisor` also takes a bare "like ...".
    """
    for pattern in (_LIKE_MINE, _LIKE_WORD if command else _LIKE_COLON):
        m = pattern.match(question)
        if m:
            return question[m.end() :].strip()
    return None


def guidance_request(question: str) -> str | None:
    """The theme or question after "guidance" ("" if it gives none), or None for other commands."""
    m = _GUIDANCE_WORD.match(question)
    return question[m.end() :].strip() if m else None


def read_request(
    raw_text: str | None, bot_user_id: str | None, has_files: bool, max_chars: int, command: bool = False
) -> Request:
    """What a message (or, with `command`, an `/advisor` command's text) asks for.

    A "cases like mine" request without a description gets the usage for it as its reply;
    `/advisor guidance` with nothing after it asks for the list of themes.
    """
    said = slack_question(raw_text, bot_user_id)
    reply = polite_reply(raw_text, said, has_files, max_chars)
    if reply is not None:
        return Request("reply", said, reply=reply)
    topic = guidance_request(said) if command else None
    if topic is not None:
        return Request("guidance", said, text=topic)
    description = like_request(said, command)
    if description == "":
        return Request("reply", said, reply=LIKE_USAGE)
    if description is not None:
        return Request("cases_like_mine", said, text=description)
    return Request("question", said, text=said)


def thread_history(
    client: WebClient, channel: str, thread_ts: str, before_ts: str, bot_user_id: str | None
) -> list[dict[str, str]]:
    """The thread's earlier turns as chat messages: people's questions and this bot's answers.

    Slack lists a thread oldest first, a page at a time; the pages are followed (at most
    `MAX_THREAD_PAGES`) so that in a long thread the turns just before the question are read.
    Raises `SlackApiError` when Slack refuses to list the thread.
    """
    messages: list[dict] = []
    cursor = None
    for _ in range(MAX_THREAD_PAGES):
        response = client.conversations_replies(channel=channel, ts=thread_ts, limit=200, cursor=cursor)
        page = response.get("messages", [])
        messages.extend(page)
        cursor = (response.get("response_metadata") or {}).get("next_cursor")
        if (
            not response.get("has_more")
            or not cursor
            or any(float(m.get("ts", 0)) >= float(before_ts) for m in page)
        ):
            break
    history: list[dict[str, str]] = []
    for m in messages:
        if float(m.get("ts", 0)) >= float(before_ts):
            continue
        if bot_user_id and m.get("user") == bot_user_id:
            text = m.get("text") or ""
            if text and text != THINKING:
                history.append({"role": "assistant", "content": html.unescape(text)})
        elif not (m.get("bot_id") or m.get("subtype")):
            text = slack_question(m.get("text"), bot_user_id)
            if text:
                history.append({"role": "user", "content": text})
    return history
