"""Slack front end: the advisor answers mentions, direct messages and `/advisor` in Slack.

Slack event --verify/dedupe--> ack (< 3 s) --lazy--> Advisor.stream --render--> Block Kit in the thread

`build_slack_app` wires a slack-bolt `App` around one `Advisor` and one `FeedbackStore`:
- `app_mention` in channels and `message.im` in direct messages are answered in the thread of the
  question; a follow-up in a thread reads the thread's earlier turns (`conversations.replies`) as
  the conversation. `/advisor` answers privately through the command's `response_url`.
- Every request is acknowledged at once (`process_before_response=True`: the ack runs in the HTTP
  request thread) and the answer runs afterwards in a lazy listener on a bounded worker pool. A
  "Looking through the reports..." reply is posted first and edited into the answer.
- While a language model writes the answer (issue 6), that reply shows the text so far
  (`AnswerPreview`): at most one edit per 1.5 s per answer, at most 20 per answer and 30 a minute
  across the bot (chat.update is Tier 3), never retried; the final Block Kit answer is always the
  last edit. An answer that arrives at once (the extractive default) is not previewed.
- Slack redelivers events it thinks were not acknowledged; `EventDeduper` remembers event ids and
  message timestamps for a while, so one question is answered once. The cache is per process: a
  deployment with several replicas behind one Events URL needs a shared store (or Socket Mode,
  where Slack sends each event to one connection).
- Web API calls wait out HTTP 429 (Retry-After) and retry 5xx/connection errors a bounded number
  of times; a reply that still fails is logged with its channel and question, never dropped silently.
- Feedback buttons write to the same `FeedbackStore` as the web page (channel "slack").
- Questions across case studies (issue 8) are answered from the case-study catalogue; Slack
  asks for "cases like mine" with `/advisor like <description>` or a message starting "like:" or
  "cases like mine". Such answers are laid out one section per case, its evidence beneath it.
"""

from __future__ import annotations

import html
import json
import logging
import re
import socketserver
import threading
import time
import uuid
from collections import Counter, OrderedDict, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, Callable
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from slack_bolt import App, BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.web import WebClient
from slack_sdk.webhook import WebhookClient

from advisor.advisor import Advisor, clean_question
from advisor.config import Settings
from advisor.errors import AdvisorError, ConfigError
from advisor.feedback import FeedbackStore
from advisor.types import Answer, AnswerSentence, CaseRow

log = logging.getLogger(__name__)

SLACK_API_URL = "https://slack.com/api/"
EVENTS_PATH = "/slack/events"
THINKING = "Looking through the reports..."
RETIRED = "The answer is in the reply below."  # a placeholder (or streamed draft) that could not become the answer
FEEDBACK_ACTIONS = {"advisor_feedback_up": "up", "advisor_feedback_down": "down"}

# Block Kit limits (docs.slack.dev/reference/block-kit): 50 blocks per message, 3000 characters in a
# section's text, 10 elements per context block; we keep context texts to 2000 and the top-level
# fallback `text` under the 4000 characters Slack recommends (it truncates at 40,000).
MAX_BLOCKS = 50
MAX_SECTION_CHARS = 3000
MAX_CONTEXT_CHARS = 2000
MAX_CONTEXT_ELEMENTS = 10
MAX_FALLBACK_CHARS = 3900
MAX_QUOTE_CHARS = 600
MAX_BUTTON_VALUE_CHARS = 2000
MAX_THREAD_PAGES = 5  # conversations.replies pages (200 messages each) read for a follow-up's history

# Previews of a streaming answer. chat.update is Tier 3 (about 50 a minute per workspace): one
# answer edits at most every 1.5 s and 20 times (30 s of streaming, the default LLM timeout), and
# the whole bot at most 30 times a minute, leaving the rest for final answers.
PREVIEW_INTERVAL = 1.5
MAX_PREVIEW_UPDATES = 20
PREVIEWS_PER_MINUTE = 30
PREVIEW_TIMEOUT = 5.0  # seconds a preview edit may take; the final answer waits at most this for one
STREAMING_MARK = " …"  # ends a preview: more is coming

_USER_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|([^>]*))?>")
_CHANNEL_LINK = re.compile(r"<#[CG][A-Z0-9]+(?:\|([^>]*))?>")
_SPECIAL = re.compile(r"<![^>]*>")
_URL_LINK = re.compile(r"<((?:https?|mailto):[^>|]+)(?:\|([^>]*))?>")
_EMOJI_CODE = re.compile(r":[a-z0-9_+'\-]+:(?::skin-tone-\d:)?", re.IGNORECASE)
_ANSWERED_SUBTYPES = {None, "file_share", "thread_broadcast"}

# --------------------------------------------------------------------------------------- replies
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
NO_WORDS = "I can only answer questions written in words. What would you like to know about spreading innovation?"
COMMAND_USAGE = (
    "Type `/advisor` and your question, e.g. `/advisor how did innovators persuade late adopters?` "
    "I answer privately from the published reports on spreading innovation in the NHS, with the evidence. "
    "To find the case studies most like your innovation, type `/advisor like` and describe it and its "
    "setting, e.g. `/advisor like a digital tool for primary care made by a small company`."
)
LIKE_USAGE = (
    "Describe your innovation and its setting in a sentence after \"like\", e.g. "
    "`/advisor like a digital tool for primary care made by a small company` or "
    "\"cases like mine: a mental health liaison team in an acute hospital\", and I will rank the "
    "case studies most like it, with what each did to spread and the evidence."
)
SORRY = "Sorry, something went wrong while I was answering. Please try again in a minute."
NO_HISTORY = (
    "I could not read the earlier messages in this thread, so I answered this question on its own."
)


def escape_mrkdwn(text: str) -> str:
    """Text safe to show in Slack mrkdwn: &, < and > escaped as Slack asks."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


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
    return re.sub(r"\s+", " ", text).strip()


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


# "Cases like mine" (issue 8) in Slack's own words: `/advisor like <description>`, and in any message
# "like: <description>" or "(cases) like mine <description>". Other wordings ("show me cases like
# mine: ...") reach the catalogue through the advisor's own question reading.
_LIKE_MINE = re.compile(
    r"^(?:(?:show me|find|list)\s+)?(?:(?:cases?|case[- ]stud(?:y|ies)|innovations?|examples?)\s+)?"
    r"(?:like|similar to)\s+(?:mine|ours)\b[\s:,.\-–—]*",
    re.IGNORECASE,
)
_LIKE_COLON = re.compile(r"^like\s*:\s*", re.IGNORECASE)
_LIKE_WORD = re.compile(r"^like\b[\s:,.\-–—]*", re.IGNORECASE)


def like_request(question: str, command: bool = False) -> str | None:
    """The description in a "cases like mine" request ("" if it gives none), or None for other questions.

    Messages ask with "like: ..." or "cases like mine ..."; `/advisor` also takes a bare "like ...".
    """
    for pattern in (_LIKE_MINE, _LIKE_WORD if command else _LIKE_COLON):
        m = pattern.match(question)
        if m:
            return question[m.end():].strip()
    return None


def like_question(description: str) -> str:
    """The advisor's question for a "cases like mine" request (read by the case-study catalogue)."""
    return f"cases like mine: {description}"


# --------------------------------------------------------------------------------------- rendering
def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def answer_paragraphs(answer: Answer) -> list[str]:
    """The answer as escaped mrkdwn sentences with their markers and any trust flags."""
    if not answer.sentences:
        return [escape_mrkdwn(answer.text)]
    return [sentence_line(s) for s in answer.sentences]


def sentence_line(s: AnswerSentence, limit: int = MAX_SECTION_CHARS - 120, lead: str = "") -> str:
    """One sentence as escaped mrkdwn (after an already formatted `lead`), its markers and trust flag."""
    markers = "".join(f"[{m}]" for m in s.markers)
    if s.label and not lead:
        lead = f"*{escape_mrkdwn(s.label)}*: "
    # clipped before the markers and flags are added, so those always show
    line = lead + _clip(escape_mrkdwn(s.text), max(limit - len(lead), 40))
    line += f" {markers}" if markers else ""
    if s.verdict == "unsupported":
        line += " _(:warning: the cited passage does not clearly support this)_"
    elif s.verdict == "uncited":
        line += " _(:warning: no source for this sentence)_"
    return line


def _sections(paragraphs: list[str], limit: int = MAX_SECTION_CHARS) -> list[str]:
    """Pack sentences into section texts of at most `limit` characters."""
    out: list[str] = []
    current = ""
    for p in paragraphs:
        p = _clip(p, limit)
        candidate = f"{current} {p}" if current else p
        if len(candidate) > limit:
            out.append(current)
            current = p
        else:
            current = candidate
    if current:
        out.append(current)
    return out


def citation_block(citation_record: dict[str, Any]) -> dict[str, Any]:
    """A context block for one citation: report title, section, case study, page, the quote."""
    r = citation_record
    where = [f"*[{r['marker']}]* {escape_mrkdwn(r.get('title') or r.get('source') or '')}"]
    if r.get("section"):
        where.append(escape_mrkdwn(str(r["section"])))
    if r.get("case_study"):
        where.append(f"case study: {escape_mrkdwn(str(r['case_study']))}")
    if r.get("page"):
        where.append(f"p. {r['page']}")
    elements = [{"type": "mrkdwn", "text": _clip(" · ".join(where), MAX_CONTEXT_CHARS)}]
    if r.get("quote"):
        quote = _clip(str(r["quote"]), MAX_QUOTE_CHARS)
        elements.append({"type": "mrkdwn", "text": _clip(f"“{escape_mrkdwn(quote)}”", MAX_CONTEXT_CHARS)})
    return {"type": "context", "elements": elements}


def feedback_value(answer_id: str, question: str) -> str:
    """The button value: the answer's id and (clipped) question, as JSON within Slack's limit."""
    value = json.dumps({"a": answer_id, "q": question}, ensure_ascii=False)
    while len(value) > MAX_BUTTON_VALUE_CHARS:
        question = question[: len(question) - (len(value) - MAX_BUTTON_VALUE_CHARS) - 1]
        value = json.dumps({"a": answer_id, "q": question}, ensure_ascii=False)
    return value


def _note_block(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": _clip(text, MAX_CONTEXT_CHARS)}]}


def render_answer(answer: Answer, answer_id: str, notes: tuple[str, ...] = ()) -> dict[str, Any]:
    """Block Kit message (`text` + `blocks`) for an answer, inside Slack's block and text limits.

    Layout: the answer's sentences with markers (sections), notes, a divider, one context block per
    citation (title, section, case study, page, quoted sentence), then the feedback buttons. When
    50 blocks are not enough, at least 10 citations keep their place and the answer is shortened.
    """
    if answer.rows:
        return render_catalogue(answer, answer_id, notes)
    record = answer.to_record()
    sections = [_section(text) for text in _sections(answer_paragraphs(answer))]
    notes_blocks = _notes_blocks([*answer.notes, *notes])
    sources: list[dict[str, Any]] = []
    if record["citations"]:
        sources = [citation_block(c) for c in record["citations"]]
    elif answer.refused and record["passages"]:
        closest = [f"{escape_mrkdwn(p['title'])} · {escape_mrkdwn(p['section'] or '')}" for p in record["passages"][:3]]
        sources = [_note_block("*Closest passages (not evidence for an answer):* " + "; ".join(closest))]

    budget = MAX_BLOCKS - 1 - len(notes_blocks)  # the actions block always comes last
    kept_sources = min(len(sources), 10)
    max_sections = budget - (kept_sources + 2 if sources else 0) - 1  # divider + "more" line; "shortened" line
    if len(sections) > max_sections:
        sections = sections[:max_sections] + [_note_block("_The answer was shortened to fit in a Slack message._")]
    blocks = sections + notes_blocks
    if sources:
        room = MAX_BLOCKS - 1 - len(blocks) - 1  # minus the divider
        if len(sources) > room:
            room -= 1  # the "more sources" line
        blocks.append({"type": "divider"})
        blocks.extend(sources[:room])
        hidden = len(sources) - room
        if hidden > 0:
            blocks.append(_note_block(f"…and {hidden} more source{'s' if hidden > 1 else ''} "
                                      "(a Slack message holds at most 50 blocks)."))
    blocks.append(feedback_block(answer_id, answer.question))
    assert len(blocks) <= MAX_BLOCKS
    fallback = " ".join(answer_paragraphs(answer))
    return {"text": _clip(fallback, MAX_FALLBACK_CHARS), "blocks": blocks}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _clip(text, MAX_SECTION_CHARS)}}


def _notes_blocks(notes: list[str]) -> list[dict[str, Any]]:
    """The answer's notes (e.g. "answered from the catalogue") as one context block, if any."""
    if not notes:
        return []
    return [{
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": _clip(f":information_source: {escape_mrkdwn(n)}", MAX_CONTEXT_CHARS)}
                     for n in notes[:MAX_CONTEXT_ELEMENTS]],
    }]


def feedback_block(answer_id: str, question: str) -> dict[str, Any]:
    """The Helpful / Not helpful buttons, carrying the answer's id and question."""
    value = feedback_value(answer_id, question)
    return {
        "type": "actions",
        "block_id": f"advisor_feedback:{answer_id}",
        "elements": [
            {"type": "button", "action_id": "advisor_feedback_up", "value": value,
             "text": {"type": "plain_text", "text": ":thumbsup: Helpful", "emoji": True}},
            {"type": "button", "action_id": "advisor_feedback_down", "value": value,
             "text": {"type": "plain_text", "text": ":thumbsdown: Not helpful", "emoji": True}},
        ],
    }


# ---- catalogue answers (issue 8): one section per case study, its evidence right beneath it


def catalogue_cases(answer: Answer) -> tuple[str, list[tuple[str, list[CaseRow]]]]:
    """A catalogue answer's heading and its rows grouped by case study, in the answer's order."""
    groups: list[tuple[str, list[CaseRow]]] = []
    for row in answer.rows:
        if groups and row.case == groups[-1][0]:
            groups[-1][1].append(row)
        else:
            groups.append((row.case, [row]))
    return answer.heading, groups


def case_section(rank: int, name: str, rows: list[CaseRow]) -> dict[str, Any]:
    """One case study as a section: its name in bold, then each of its rows on a line of its own."""
    title = f"*{rank}. {escape_mrkdwn(name)}*" if name else f"*{rank}.*"
    limit = max(200, (MAX_SECTION_CHARS - 200) // len(rows) - 60)
    lines = []
    for i, row in enumerate(rows):
        sentence = AnswerSentence(row.text, row.markers)
        if i == 0 and name and row.text.startswith(name):  # "RAID (…, score 0.87): …" shows RAID in bold
            lines.append(sentence_line(replace(sentence, text=row.text[len(name):]), limit, lead=title))
        elif i == 0:
            lines.append(title)
            lines.append(sentence_line(sentence, limit, lead="• "))
        else:
            lines.append(sentence_line(sentence, limit, lead="• "))
    return _section("\n".join(lines))


def _report_and_case(r: dict[str, Any]) -> str:
    parts = [f"*{escape_mrkdwn(r.get('title') or r.get('source') or '')}*"]
    if r.get("case_study"):
        parts.append(f"case study: {escape_mrkdwn(str(r['case_study']))}")
    return _clip(" · ".join(parts), MAX_CONTEXT_CHARS)


def _quoted(r: dict[str, Any]) -> str:
    """A cited quote with its marker, then its section (when it is not just the case's name) and page."""
    where = []
    if r.get("section") and r["section"] != r.get("case_study"):
        where.append(escape_mrkdwn(str(r["section"])))
    if r.get("page"):
        where.append(f"p. {r['page']}")
    quote = f"*[{r['marker']}]* “{escape_mrkdwn(_clip(str(r.get('quote') or ''), MAX_QUOTE_CHARS))}”"
    return _clip(quote + (f" — _{', '.join(where)}_" if where else ""), MAX_CONTEXT_CHARS)


def evidence_blocks(citations: list[dict[str, Any]], max_blocks: int | None = None) -> list[dict[str, Any]]:
    """Context blocks for one case's citations: the report title and case study once, then each
    quoted sentence with its marker, section and page; at most 10 elements a block, and with
    `max_blocks` the last element says how many quotes did not fit."""

    def pack(kept: list[dict[str, Any]], hidden: int) -> list[list[str]]:
        blocks: list[list[str]] = []
        current: list[str] = []
        last_head = None
        for r in kept:
            head = _report_and_case(r)
            items = ([] if head == last_head and current else [head]) + [_quoted(r)]
            if len(current) + len(items) > MAX_CONTEXT_ELEMENTS:
                blocks.append(current)
                current, items = [], [head, _quoted(r)]
            current.extend(items)
            last_head = head
        if hidden:
            if len(current) >= MAX_CONTEXT_ELEMENTS:
                blocks.append(current)
                current = []
            current.append(f"_…and {hidden} more quote{'s' if hidden > 1 else ''}_")
        if current:
            blocks.append(current)
        return blocks

    shown = len(citations)
    blocks = pack(citations, 0)
    while max_blocks is not None and len(blocks) > max_blocks and shown > 1:
        shown -= 1
        blocks = pack(citations[:shown], len(citations) - shown)
    return [{"type": "context", "elements": [{"type": "mrkdwn", "text": t} for t in texts]}
            for texts in blocks]


def render_catalogue(answer: Answer, answer_id: str, notes: tuple[str, ...] = ()) -> dict[str, Any]:
    """Block Kit message for an answer from the case-study catalogue (lists, comparisons, cases like mine).

    Layout: the heading, then for each case study a section (its rows: for "cases like mine" the
    score and what it shares, how it spread and where it differs) followed by context blocks with
    its citations (report title and case study, then each quoted sentence with its section and
    page); notes; feedback buttons. Within 50 blocks: each case keeps at least one evidence block
    (extra quotes counted, not shown) and, when even that is too many, the last cases are left out
    and counted.
    """
    by_marker = {c.marker: c.to_record() for c in answer.citations}
    heading, groups = catalogue_cases(answer)
    head = [_section(escape_mrkdwn(heading))] if heading else []
    notes_blocks = _notes_blocks([*answer.notes, *notes])
    room = MAX_BLOCKS - len(head) - len(notes_blocks) - 1  # the actions block comes last

    cases = []
    for rank, (name, rows) in enumerate(groups, start=1):
        markers = list(dict.fromkeys(m for row in rows for m in row.markers if m in by_marker))
        cases.append((case_section(rank, name, rows), [by_marker[m] for m in markers]))
    per_case = [[section, *evidence_blocks(cited)] for section, cited in cases]
    if sum(map(len, per_case)) > room:  # one evidence block per case
        per_case = [[section, *evidence_blocks(cited, max_blocks=1)] for section, cited in cases]
    body = [block for blocks in per_case for block in blocks]
    if len(body) > room:  # then only the cases that fit, and a line saying how many more there are
        body, shown = [], 0
        for blocks in per_case:
            if len(body) + len(blocks) > room - 1:
                break
            body += blocks
            shown += 1
        hidden = len(cases) - shown
        body.append(_note_block(
            f"_…and {hidden} more case stud{'ies' if hidden > 1 else 'y'} not shown here (a Slack message "
            "holds at most 50 blocks): ask a narrower question to see them._"))
    divider = [{"type": "divider"}] if head and len(body) < room else []
    blocks = [*head, *divider, *body, *notes_blocks, feedback_block(answer_id, answer.question)]
    assert len(blocks) <= MAX_BLOCKS
    return {"text": _clip(escape_mrkdwn(answer.text), MAX_FALLBACK_CHARS), "blocks": blocks}


# --------------------------------------------------------------------------------------- state
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
            while self._seen and (next(iter(self._seen.values())) < now - self.ttl or len(self._seen) > self.max_items):
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


class PreviewLimiter:
    """Bot-wide pace for preview edits: a budget per minute, and a pause when Slack answers 429."""

    def __init__(self, per_minute: int = PREVIEWS_PER_MINUTE,
                 clock: Callable[[], float] = time.monotonic) -> None:
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

    def __init__(self, client: WebClient, channel: str, ts: str, limiter: PreviewLimiter,
                 interval: float = PREVIEW_INTERVAL, max_updates: int = MAX_PREVIEW_UPDATES) -> None:
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
                log.warning("a preview edit in %s is still in flight; sending the answer anyway",
                            self.channel)

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
                log.info("Slack rate-limited a preview edit in %s: previews paused for %g s",
                         self.channel, wait)
                return True
            if status >= 500:
                log.info("Slack failed a preview edit in %s (HTTP %s): skipped", self.channel, status)
                return True
            log.warning("Slack refused a preview edit in %s (%s): no more previews for this answer",
                        self.channel, exc.response.get("error"))
            return False
        except Exception as exc:  # a timeout or connection error: skipped, the next turn may work
            log.info("could not reach Slack for a preview edit in %s (%s): skipped", self.channel, exc)
            return True


def preview_text(text: str) -> str:
    """The text of a preview edit: the answer so far as escaped mrkdwn, its markers as they are, and "…"."""
    return _clip(escape_mrkdwn(text.strip()), MAX_FALLBACK_CHARS) + STREAMING_MARK


def retry_after(headers: dict[str, Any]) -> float:
    """Seconds Slack asks to wait (Retry-After), 1 when it does not say, at most a minute."""
    value = next((v for k, v in (headers or {}).items() if k.lower() == "retry-after"), None)
    if isinstance(value, list):
        value = value[0] if value else None
    try:
        return min(max(float(value), 1.0), 60.0)
    except (TypeError, ValueError):
        return 1.0


def _slack_error(exc: Exception) -> object:
    """Slack's error code for a refused call (e.g. "channel_not_found"), or the exception itself."""
    return exc.response.get("error") if isinstance(exc, SlackApiError) else exc


def preview_client(client: WebClient, timeout: float = PREVIEW_TIMEOUT) -> WebClient:
    """A client like `client` that never retries: a preview edit that fails is skipped."""
    return WebClient(token=client.token, base_url=client.base_url, timeout=timeout, ssl=client.ssl,
                     proxy=client.proxy, retry_handlers=[])


def web_client(settings: Settings, token: str | None = None) -> WebClient:
    """A Web API client at `ADVISOR_SLACK_API_URL` that waits out 429s and retries 5xx, bounded."""
    base = settings.slack_api_url or SLACK_API_URL
    if token is None:
        if settings.slack_bot_token is None:
            raise ConfigError("SLACK_BOT_TOKEN is not set: the bot token (xoxb-...) from the app's OAuth page.")
        token = settings.slack_bot_token.get_secret_value()
    return WebClient(
        token=token,
        base_url=base if base.endswith("/") else base + "/",
        timeout=30,
        retry_handlers=retry_handlers(),
    )


def retry_handlers() -> list:
    """Bounded retries: rate limits waited out (Retry-After), server and connection errors retried."""
    return [
        RateLimitErrorRetryHandler(max_retry_count=3),
        ServerErrorRetryHandler(max_retry_count=2),
        ConnectionErrorRetryHandler(max_retry_count=2),
    ]


# --------------------------------------------------------------------------------------- the bot
class SlackBot:
    """The listeners: acknowledge at once, answer in the thread, store feedback."""

    def __init__(self, advisor: Advisor, settings: Settings, feedback_store: FeedbackStore,
                 deduper: EventDeduper | None = None, answers: AnswerCache | None = None) -> None:
        self.advisor = advisor
        self.settings = settings
        self.feedback_store = feedback_store
        self.deduper = deduper or EventDeduper()
        self.answers = answers or AnswerCache()
        self.preview_interval = PREVIEW_INTERVAL
        self.max_preview_updates = MAX_PREVIEW_UPDATES
        self.preview_limiter = PreviewLimiter()

    # ---- middleware and acks -----------------------------------------------------------------
    def dedupe(self, body: dict, request, response, next: Callable[[], Any]):
        """Global middleware: a redelivered event (same event id or message) is acked, not answered."""
        if body.get("type") == "event_callback" and not request.lazy_only:
            event = body.get("event") or {}
            keys = [f"event:{body.get('event_id')}" if body.get("event_id") else ""]
            if event.get("channel") and event.get("ts") and event.get("type") in ("app_mention", "message"):
                keys.append(f"message:{event['channel']}:{event['ts']}")
            retry = (request.headers.get("x-slack-retry-num") or [None])[0]
            if not self.deduper.first_time(*keys):
                reason = (request.headers.get("x-slack-retry-reason") or [""])[0]
                log.info("Slack redelivered %s (retry %s, %s): already being answered, acked only",
                         body.get("event_id"), retry, reason or "no reason given")
                return BoltResponse(status=200, body="")
            if retry:
                log.info("Slack retry %s of %s seen for the first time: answering it", retry, body.get("event_id"))
        next()
        return response

    @staticmethod
    def ack_now(ack) -> None:
        """Acknowledge within Slack's 3 seconds; the work happens in the lazy listener."""
        ack()

    def ack_command(self, ack, command: dict) -> None:
        """Acknowledge `/advisor` with a private 'looking' note (or the usage text when empty)."""
        _, reply = self.read_request(command.get("text"), None, False, command=True)
        if reply is None:
            ack(response_type="ephemeral", text=THINKING)
        else:
            ack()

    def read_request(self, raw_text: str | None, bot_user_id: str | None, has_files: bool,
                     command: bool = False) -> tuple[str, str | None]:
        """The question to ask the advisor, and the polite reply to give instead when it is not one.

        A "cases like mine" request is turned into the catalogue's question; one without a
        description gets the usage for it.
        """
        question = slack_question(raw_text, bot_user_id)
        reply = polite_reply(raw_text, question, has_files, self.settings.max_question_chars)
        if reply is None:
            description = like_request(question, command)
            if description == "":
                reply = LIKE_USAGE
            elif description is not None:
                question = like_question(description)
        return question, reply

    # ---- events --------------------------------------------------------------------------------
    def answer_mention(self, event: dict, context, client: WebClient) -> None:
        """An @mention in a channel: answer in the question's thread."""
        self._answer_message(event, context, client)

    def answer_direct_message(self, event: dict, context, client: WebClient) -> None:
        """A direct message to the bot: answer in its thread (other message events are ignored)."""
        if event.get("channel_type") != "im":
            return
        self._answer_message(event, context, client)

    def _is_from_a_bot(self, event: dict, context) -> bool:
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
        question, reply = self.read_request(event.get("text"), context.bot_user_id, bool(event.get("files")))
        if reply is not None:
            self._post(client, channel, thread_ts, {"text": escape_mrkdwn(reply)}, question=question)
            return
        placeholder = self._post(client, channel, thread_ts, {"text": THINKING}, question=question)
        notes: tuple[str, ...] = ()
        history: list[dict[str, str]] = []
        if event.get("thread_ts"):
            try:
                history = self.thread_history(client, channel, thread_ts, before_ts=ts, bot_user_id=context.bot_user_id)
            except SlackApiError as exc:
                log.warning("could not read thread %s in %s (%s): answering without it",
                            thread_ts, channel, exc.response.get("error"))
                notes = (NO_HISTORY,)
        if event.get("files"):
            notes += ("I read only the text of your message, not the attached files.",)
        preview = None
        if placeholder and self.max_preview_updates > 0 and self.advisor.llm_answerer is not None:
            preview = AnswerPreview(preview_client(client), channel, placeholder, self.preview_limiter,
                                    self.preview_interval, self.max_preview_updates)
        try:
            meta = {"channel": channel, "thread_ts": thread_ts, "user": event.get("user")}
            message = self._answer(question, history, notes, meta, on_delta=preview.add if preview else None)
        finally:
            if preview is not None:
                preview.close()  # waits for an edit in flight: the answer below is the last edit
        self._deliver(client, channel, thread_ts, placeholder, message, question)

    def thread_history(self, client: WebClient, channel: str, thread_ts: str, before_ts: str,
                       bot_user_id: str | None) -> list[dict[str, str]]:
        """The thread's earlier turns as chat messages: people's questions and this bot's answers.

        Slack lists a thread oldest first, a page at a time; the pages are followed (at most
        `MAX_THREAD_PAGES`) so that in a long thread the turns just before the question are read.
        """
        messages: list[dict] = []
        cursor = None
        for _ in range(MAX_THREAD_PAGES):
            response = client.conversations_replies(channel=channel, ts=thread_ts, limit=200, cursor=cursor)
            page = response.get("messages", [])
            messages.extend(page)
            cursor = (response.get("response_metadata") or {}).get("next_cursor")
            if not response.get("has_more") or not cursor or any(
                    float(m.get("ts", 0)) >= float(before_ts) for m in page):
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

    # ---- slash command --------------------------------------------------------------------------
    def answer_command(self, command: dict) -> None:
        """`/advisor <question>` or `/advisor like <description>`: answered privately (ephemeral)
        through the command's response_url.

        Not previewed while it streams: a response_url takes at most 5 messages in 30 minutes,
        so preview edits there would compete with the answer itself for them.
        """
        question, reply = self.read_request(command.get("text"), None, False, command=True)
        if reply is not None:
            message = {"text": escape_mrkdwn(reply) if question else COMMAND_USAGE}
        else:
            message = self._answer(question, [], (), meta={"channel": command.get("channel_id"),
                                                          "user": command.get("user_id"), "command": True})
        url = command.get("response_url")
        self._respond(url, {**message, "response_type": "ephemeral"}, question)

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
        try:
            feedback_id = self.feedback_store.record("slack", record.get("question") or value.get("q", ""),
                                                     record, verdict, "", meta)
            text = f"Thank you: your feedback (#{feedback_id}, {'helpful' if verdict == 'up' else 'not helpful'}) was saved."
        except Exception:  # the user should hear that it failed; the log has the details
            log.exception("could not store Slack feedback %s on answer %s", verdict, answer_id)
            text = "Sorry, I could not save your feedback just now. Please try again later."
        self._respond(body.get("response_url"),
                      {"text": text, "response_type": "ephemeral", "replace_original": False}, "")

    # ---- answering and delivery ---------------------------------------------------------------
    def _answer(self, question: str, history: list, notes: tuple[str, ...], meta: dict,
                on_delta: Callable[[str], None] | None = None) -> dict[str, Any]:
        """The rendered answer; `on_delta` is given the answer's text as it streams."""
        try:
            answer = self.advisor.ask(question, history=history or None, on_delta=on_delta)
        except AdvisorError as exc:
            return {"text": escape_mrkdwn(str(exc))}
        except Exception:
            log.exception("the advisor failed on a Slack question (%s): %r", meta, question[:200])
            return {"text": SORRY}
        answer_id = uuid.uuid4().hex[:16]
        self.answers.put(answer_id, answer.to_record())
        return render_answer(answer, answer_id, notes)

    def _post(self, client: WebClient, channel: str, thread_ts: str, message: dict, question: str) -> str | None:
        """chat.postMessage in the thread; returns the message ts, or None (logged) if it failed."""
        try:
            response = client.chat_postMessage(channel=channel, thread_ts=thread_ts, **message)
            return response.get("ts")
        except SlackApiError as exc:
            log.error("Slack refused a reply in %s (thread %s): %s; question %r",
                      channel, thread_ts, exc.response.get("error"), question[:200])
        except Exception as exc:
            log.error("could not reach Slack to reply in %s (thread %s): %s; question %r",
                      channel, thread_ts, exc, question[:200])
        return None

    def _deliver(self, client: WebClient, channel: str, thread_ts: str, placeholder: str | None,
                 message: dict, question: str) -> None:
        """Turn the placeholder into the answer; fall back to a new post, then to plain text."""
        if placeholder:
            try:
                client.chat_update(channel=channel, ts=placeholder, **message)
                return
            except Exception as exc:
                error = _slack_error(exc)
                log.warning("could not edit the placeholder in %s into the answer (%s): posting it", channel, error)
        delivered = bool(self._post(client, channel, thread_ts, message, question))
        if not delivered and message.get("blocks"):
            plain = {"text": message["text"]}
            delivered = bool(self._post(client, channel, thread_ts, plain, question))
        if delivered:
            if placeholder:
                self._retire_placeholder(client, channel, placeholder)
            return
        log.error("ANSWER NOT DELIVERED to %s (thread %s) for question %r: %s",
                  channel, thread_ts, question[:200], message.get("text", "")[:500])

    @staticmethod
    def _retire_placeholder(client: WebClient, channel: str, placeholder: str) -> None:
        """Once the answer went out as a new reply, the placeholder must not keep an unchecked draft."""
        try:
            client.chat_update(channel=channel, ts=placeholder, text=RETIRED)
        except Exception as exc:  # gone, archived, still failing: the answer itself is delivered
            error = _slack_error(exc)
            log.warning("could not clear the placeholder in %s (%s)", channel, error)

    def _respond(self, response_url: str | None, message: dict, question: str) -> None:
        """Post to a response_url (slash command, button), with the same bounded retries."""
        if not response_url:
            log.error("no response_url to reply to (question %r): %s", question[:200], message.get("text", "")[:300])
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
            log.error("REPLY NOT DELIVERED via response_url (HTTP %s) for question %r: %s",
                      response.status_code, question[:200], message.get("text", "")[:500])
        except Exception as exc:
            log.error("REPLY NOT DELIVERED via response_url (%s) for question %r: %s",
                      exc, question[:200], message.get("text", "")[:500])


def build_slack_app(
    advisor: Advisor,
    settings: Settings,
    feedback_store: FeedbackStore,
    client: WebClient | None = None,
    socket_mode: bool = False,
    deduper: EventDeduper | None = None,
) -> App:
    """The bolt `App` with every listener; HTTP mode needs SLACK_SIGNING_SECRET, both need a bot token."""
    if not socket_mode and settings.slack_signing_secret is None:
        raise ConfigError("SLACK_SIGNING_SECRET is not set: the app's signing secret (Basic Information page).")
    client = client or web_client(settings)
    bot = SlackBot(advisor, settings, feedback_store, deduper=deduper)
    executor = ThreadPoolExecutor(max_workers=settings.slack_workers, thread_name_prefix="slack-answer")
    try:
        app = App(
            client=client,
            signing_secret=settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None,
            request_verification_enabled=not socket_mode,
            process_before_response=True,  # ack runs in the request thread, answers on the pool
            listener_executor=executor,
            name="spread-advisor",
        )
    except Exception as exc:  # bolt calls auth.test at start-up
        raise ConfigError(f"Slack did not accept SLACK_BOT_TOKEN ({exc}).") from None
    app.use(bot.dedupe)
    app.event("app_mention")(ack=bot.ack_now, lazy=[bot.answer_mention])
    app.event("message")(ack=bot.ack_now, lazy=[bot.answer_direct_message])
    app.command("/advisor")(ack=bot.ack_command, lazy=[bot.answer_command])
    for action_id in FEEDBACK_ACTIONS:
        app.action(action_id)(ack=bot.ack_now, lazy=[bot.store_feedback])
    app.bot = bot  # type: ignore[attr-defined]  # for tests and operators: the answer cache, deduper
    return app


# --------------------------------------------------------------------------------------- HTTP
class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    request_queue_size = 256  # a burst of events must not overflow the listen backlog


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        log.debug("%s - %s", self.address_string(), format % args)


class SlackHttpServer:
    """Bolt's Events API endpoint (`/slack/events`) on a threaded WSGI server."""

    def __init__(self, app: App, host: str = "127.0.0.1", port: int = 3000, path: str = EVENTS_PATH) -> None:
        from slack_bolt.adapter.wsgi import SlackRequestHandler

        self.path = path
        self.server = make_server(host, port, SlackRequestHandler(app, path=path),
                                  server_class=_ThreadingWSGIServer, handler_class=_QuietHandler)
        self.host, self.port = self.server.server_address[:2]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{self.path}"

    def start(self) -> "SlackHttpServer":
        """Serve in a background thread."""
        self._thread = threading.Thread(target=self.server.serve_forever, name="slack-http", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted."""
        self.server.serve_forever()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
