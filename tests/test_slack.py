"""The Slack bot, end to end over loopback HTTP.

The advisor's real bolt app (real index, model and Chroma from `built_advisor`) serves its real
`/slack/events` endpoint on 127.0.0.1; the tests send it requests signed the way Slack signs them,
and a local server speaking Slack's Web API (tests/slack_mock.py) records every reply it makes.
"""

from __future__ import annotations

import contextlib
import html
import json
import logging
import re
import time

import pytest
import yaml
from langchain_core.language_models import FakeListChatModel
from typer.testing import CliRunner

from advisor.advisor import build_advisor
from advisor.cases import normalise_space
from advisor.chain import attach_llm
from advisor.config import PROJECT_ROOT
from advisor.feedback import FeedbackStore
from advisor.slack import (
    GREETING,
    LIKE_USAGE,
    MAX_BLOCKS,
    MAX_PREVIEW_UPDATES,
    NO_WORDS,
    ONLY_FILES,
    PREVIEW_INTERVAL,
    RETIRED,
    STREAMING_MARK,
    THINKING,
    EventDeduper,
    PreviewLimiter,
    SlackHttpServer,
    build_slack_app,
    escape_mrkdwn,
    like_question,
    like_request,
    render_answer,
    retry_after,
    slack_question,
)
from advisor.types import Answer, AnswerSentence, CaseRow, Chunk, Citation, Passage
from tests.conftest import CORPUS
from tests.slack_mock import (
    BOT_ID,
    BOT_TOKEN,
    BOT_USER,
    SIGNING_SECRET,
    MockSlackWebApi,
    SlackSender,
    direct_message,
    mention,
)

QUESTION = "How did the Against the Odds innovators persuade late adopters?"
ACK_SECONDS = 3.0


@pytest.fixture
def slack(built_advisor, make_settings, tmp_path):
    """Mock Slack Web API + the advisor's bolt app on a loopback HTTP endpoint + a signed sender."""
    with _slack_env(built_advisor, make_settings, tmp_path) as env:
        yield env


@contextlib.contextmanager
def _slack_env(advisor, make_settings, tmp_path):
    mock = MockSlackWebApi().start()
    settings = make_settings(
        slack_bot_token=BOT_TOKEN,
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=mock.api_url,
        db_url=f"sqlite:///{tmp_path / 'feedback.sqlite3'}",
        slack_workers=2,
    )
    store = FeedbackStore(settings.database_url)
    app = build_slack_app(advisor, settings, store)
    server = SlackHttpServer(app, "127.0.0.1", 0).start()

    class Env:
        pass

    env = Env()
    env.mock, env.app, env.server, env.store, env.settings = mock, app, server, store, settings
    env.sender = SlackSender(server.url)
    try:
        yield env
    finally:
        server.stop()
        mock.stop()


def _answers(env, channel: str, thread_ts: str) -> list:
    return [c for c in env.mock.replies_in(channel, thread_ts) if c.params.get("blocks")]


def _wait_answers(env, channel: str, thread_ts: str, n: int = 1, timeout: float = 60.0) -> list:
    assert env.mock.wait_for(lambda m: len(_answers(env, channel, thread_ts)) >= n, timeout), (
        f"no answer in {channel}/{thread_ts}: {[(c.method, c.params.get('text', '')[:80]) for c in env.mock.calls]}"
    )
    return _answers(env, channel, thread_ts)


def _block_types(blocks: list[dict]) -> list[str]:
    return [b["type"] for b in blocks]


def _send_ok(status_body_time) -> None:
    status, body, seconds = status_body_time
    assert status == 200, body
    assert seconds < ACK_SECONDS


# ---------------------------------------------------------------------------------- end to end
def test_mention_gets_threaded_answer_with_citation_blocks(slack, built_advisor):
    event = mention(QUESTION, ts="1700000001.000100")
    _send_ok(slack.sender.send_event(event))
    [answer] = _wait_answers(slack, "C0GENERAL", "1700000001.000100")

    # first a quick "looking" reply in the question's thread, then that reply edited into the answer
    placeholder = slack.mock.calls_to("chat.postMessage")[0]
    assert placeholder.params["text"] == THINKING
    assert placeholder.params["thread_ts"] == "1700000001.000100"
    assert answer.method == "chat.update"

    blocks = answer.params["blocks"]
    expected = built_advisor.ask(QUESTION).to_record()
    assert not expected["refused"] and expected["citations"]
    assert blocks[0]["type"] == "section" and "[1]" in blocks[0]["text"]["text"]
    contexts = [b for b in blocks if b["type"] == "context"]
    assert len(contexts) == len(expected["citations"])
    for block, cited in zip(contexts, expected["citations"]):
        where, quote = block["elements"][0]["text"], block["elements"][1]["text"]
        assert where.startswith(f"*[{cited['marker']}]* {escape_mrkdwn(cited['title'])}")
        assert escape_mrkdwn(cited["section"]) in where
        if cited["case_study"]:
            assert f"case study: {escape_mrkdwn(cited['case_study'])}" in where
        assert escape_mrkdwn(cited["quote"][:100]) in quote
    actions = blocks[-1]
    assert actions["type"] == "actions"
    assert [e["action_id"] for e in actions["elements"]] == ["advisor_feedback_up", "advisor_feedback_down"]
    first = expected["sentences"][0]
    assert first["label"]  # every extractive point says which case study or report it is from
    assert answer.params["text"].startswith(f"*{escape_mrkdwn(first['label'])}*: " + escape_mrkdwn(first["text"][:50]))
    # the extractive answer arrives at once: edited into place once, no previews
    assert slack.mock.calls_to("chat.update", status=None) == [answer]


def test_direct_message_answered_in_its_thread_once(slack):
    event = direct_message(QUESTION, ts="1700000002.000100")
    _send_ok(slack.sender.send_event(event))
    # Slack can also deliver the same DM as an app_mention (a different event id): answered once
    _send_ok(slack.sender.send_event({**event, "type": "app_mention", "text": f"<@{BOT_USER}> {QUESTION}"}))
    [answer] = _wait_answers(slack, "D0ASKER", "1700000002.000100")
    assert answer.params["blocks"][0]["type"] == "section"
    time.sleep(0.5)
    assert len(slack.mock.calls_to("chat.postMessage")) == 1  # just the one "looking" reply


def test_follow_up_in_thread_uses_the_threads_earlier_turns(slack):
    root = mention(QUESTION, ts="1700000003.000100")
    slack.mock.seed_thread("C0GENERAL", root["ts"], [root])  # Slack lists the thread's root message too
    _send_ok(slack.sender.send_event(root))
    _wait_answers(slack, "C0GENERAL", root["ts"])

    follow_up = mention("What about in primary care?", ts="1700000003.000900", thread_ts=root["ts"])
    _send_ok(slack.sender.send_event(follow_up))
    answers = _wait_answers(slack, "C0GENERAL", root["ts"], n=2)

    [replies] = slack.mock.calls_to("conversations.replies")
    assert replies.params["ts"] == root["ts"] and replies.params["channel"] == "C0GENERAL"
    answer_id = json.loads(answers[-1].params["blocks"][-1]["elements"][0]["value"])["a"]
    record = slack.app.bot.answers.get(answer_id)
    assert record["question"] == "What about in primary care?"
    assert QUESTION in record["query"]  # the earlier turn made it into the searched query


def test_thread_history_reads_people_and_this_bot_only(slack):
    bot = slack.app.bot
    slack.mock.seed_thread("C1", "1.0", [
        {"ts": "1.0", "user": "U1", "text": f"<@{BOT_USER}> {QUESTION}"},
        {"ts": "1.1", "user": BOT_USER, "bot_id": BOT_ID, "text": "Adopters were persuaded by peers [1]"},
        {"ts": "1.2", "user": "U2", "bot_id": "BOTHER", "text": "another bot talking"},
        {"ts": "1.3", "user": "U1", "text": "and the funding?"},
        {"ts": "1.4", "user": "U1", "text": "this very message"},
    ])
    history = bot.thread_history(slack.app.client, "C1", "1.0", before_ts="1.4", bot_user_id=BOT_USER)
    assert history == [
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": "Adopters were persuaded by peers [1]"},
        {"role": "user", "content": "and the funding?"},
    ]


def test_long_thread_history_reads_the_latest_turns(slack):
    """Slack pages a thread oldest first: in a 450-message thread the turns just before the question count."""
    bot = slack.app.bot
    chatter = [{"ts": f"2.{i:04d}", "user": "U2", "text": f"chatter {i}"} for i in range(1, 449)]
    slack.mock.seed_thread("C1", "2.0000", [
        {"ts": "2.0000", "user": "U1", "text": f"<@{BOT_USER}> {QUESTION}"},
        *chatter,
        {"ts": "2.0449", "user": "U1", "text": "How did DAFNE spread?"},
        {"ts": "2.0450", "user": "U1", "text": "this very message"},
    ])
    history = bot.thread_history(slack.app.client, "C1", "2.0000", before_ts="2.0450", bot_user_id=BOT_USER)
    assert history[0] == {"role": "user", "content": QUESTION}
    assert history[-1] == {"role": "user", "content": "How did DAFNE spread?"}
    assert len(history) == 450
    pages = slack.mock.calls_to("conversations.replies")
    assert [p.params.get("cursor") for p in pages] == [None, "200", "400"]


def test_slash_command_answers_privately(slack):
    url = slack.mock.response_url("cmd1")
    status, body, seconds = slack.sender.send_command(QUESTION, url)
    assert status == 200 and seconds < ACK_SECONDS
    ack = json.loads(body)
    assert ack["response_type"] == "ephemeral" and ack["text"] == THINKING
    assert slack.mock.wait_for(lambda m: m.calls_to("response_url"), 60)
    [reply] = slack.mock.calls_to("response_url")
    assert reply.path == "/response_url/cmd1"
    assert reply.params["response_type"] == "ephemeral"
    assert reply.params["blocks"][0]["type"] == "section"
    assert any(b["type"] == "context" for b in reply.params["blocks"])
    assert not slack.mock.calls_to("chat.postMessage")  # nothing public


def test_empty_slash_command_gets_usage(slack):
    url = slack.mock.response_url("cmd2")
    status, _, _ = slack.sender.send_command("  ", url)
    assert status == 200
    assert slack.mock.wait_for(lambda m: m.calls_to("response_url"), 20)
    [reply] = slack.mock.calls_to("response_url")
    assert reply.params["response_type"] == "ephemeral" and "/advisor" in reply.params["text"]


# ---------------------------------------------------------------------------------- case studies (issue 8)
MY_INNOVATION = "a digital tool for primary care, a small company"
_CASE_TITLE = re.compile(r"^\*(\d+)\. (.+?)\*")
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_QUOTE = re.compile(r"^\*\[(\d+)\]\* “(.*)”(?: — _(.*)_)?$", re.DOTALL)


def _cases_in(blocks: list[dict]) -> list[tuple[int, str, str, list[dict]]]:
    """(rank, case name, section text, the context blocks beneath it) for each case section."""
    cases: list[tuple[int, str, str, list[dict]]] = []
    for block in blocks:
        text = block["text"]["text"] if block["type"] == "section" else ""
        title = _CASE_TITLE.match(text)
        if title:
            cases.append((int(title.group(1)), html.unescape(title.group(2)), text, []))
        elif block["type"] == "context" and cases and _quotes([block]):
            cases[-1][3].append(block)
    return cases


def _quotes(contexts: list[dict]) -> list[tuple[int, str, str]]:
    """(marker, quote, section and page) for each quoted sentence in evidence context blocks."""
    found = []
    for block in contexts:
        for element in block["elements"]:
            m = _QUOTE.match(element["text"])
            if m:
                found.append((int(m.group(1)), html.unescape(m.group(2)), m.group(3) or ""))
    return found


def _assert_catalogue_layout(blocks: list[dict], record: dict) -> list[tuple[int, str, str, list[dict]]]:
    """One section per case, each followed by evidence whose quotes are the answer's and in the corpus."""
    assert len(blocks) <= MAX_BLOCKS
    assert blocks[-1]["type"] == "actions"
    assert [e["action_id"] for e in blocks[-1]["elements"]] == ["advisor_feedback_up", "advisor_feedback_down"]
    cases = _cases_in(blocks)
    assert [rank for rank, *_ in cases] == list(range(1, len(cases) + 1))
    by_marker = {c["marker"]: c for c in record["citations"]}
    reports = {}
    for _, name, text, contexts in cases:
        assert len(text) <= 3000
        quotes = _quotes(contexts)
        assert contexts and quotes, name
        for context in contexts:
            assert len(context["elements"]) <= 10
            assert all(len(e["text"]) <= 2000 for e in context["elements"])
        head = contexts[0]["elements"][0]["text"]  # report title and case study, once
        for marker, quote, where in quotes:
            cited = by_marker[marker]
            assert f"[{marker}]" in text  # the case's own rows carry the marker
            assert cited["case_study"] == name and quote == cited["quote"]
            source = cited["source"]
            if source not in reports:
                # as the catalogue reads the reports: white space normalised, markdown links as their text
                raw = (CORPUS / source).read_text(encoding="utf-8")
                reports[source] = normalise_space(_MD_LINK.sub(r"\1", raw))
            assert quote in reports[source]
            assert head == f"*{escape_mrkdwn(cited['title'])}* · case study: {escape_mrkdwn(name)}"
            if cited["section"] != name:
                assert escape_mrkdwn(cited["section"]) in where
            if cited["page"]:
                assert f"p. {cited['page']}" in where
    return cases


def test_slash_like_ranks_similar_cases_privately(slack, built_advisor):
    url = slack.mock.response_url("like1")
    status, body, seconds = slack.sender.send_command(f"like {MY_INNOVATION}", url)
    assert status == 200 and seconds < ACK_SECONDS
    assert json.loads(body) == {"response_type": "ephemeral", "text": THINKING}
    assert slack.mock.wait_for(lambda m: m.calls_to("response_url"), 60)
    [reply] = slack.mock.calls_to("response_url")
    assert reply.params["response_type"] == "ephemeral"
    assert not slack.mock.calls_to("chat.postMessage")  # nothing public

    blocks = reply.params["blocks"]
    assert blocks[0]["type"] == "section" and "most like yours" in blocks[0]["text"]["text"]
    expected = built_advisor.ask(like_question(MY_INNOVATION)).to_record()
    cases = _assert_catalogue_layout(blocks, expected)
    ranked = [m.case.name for m in built_advisor.case_catalogue.current.like(MY_INNOVATION, k=5)]
    assert [name for _, name, _, _ in cases] == ranked and len(ranked) >= 3
    for _, name, text, _ in cases:  # each case: its score and why, how it spread
        assert re.search(r"score \d\.\d\d", text) and "In common:" in text
        assert f"How {escape_mrkdwn(name)} spread:" in text
    # every citation of the answer is shown under its case
    shown = sorted(q[0] for *_, contexts in cases for q in _quotes(contexts))
    assert shown == [c["marker"] for c in expected["citations"]]
    answer_id = json.loads(blocks[-1]["elements"][0]["value"])["a"]
    assert slack.app.bot.answers.get(answer_id)["route"] == "cases_like_mine"


@pytest.mark.parametrize("kind, text", [
    ("mention", "cases like mine: a mental health liaison team in an acute hospital"),
    ("mention", "like mine - a mental health liaison team in an acute hospital"),
    ("dm", "like: a mental health liaison team in an acute hospital"),
])
def test_cases_like_mine_in_a_message(slack, built_advisor, kind, text):
    ts = "1700000020.000100"
    event = mention(text, ts=ts) if kind == "mention" else direct_message(text, ts=ts)
    _send_ok(slack.sender.send_event(event))
    [answer] = _wait_answers(slack, event["channel"], ts)
    description = "a mental health liaison team in an acute hospital"
    expected = built_advisor.ask(like_question(description)).to_record()
    cases = _assert_catalogue_layout(answer.params["blocks"], expected)
    assert cases[0][1] == "RAID"
    assert answer.params["text"].startswith("The ")  # plain-text fallback: the heading, then a line per row
    assert answer.params["text"].count("\n") >= len(cases)


def test_aggregate_question_gets_one_section_per_case(slack, built_advisor):
    question = "Which innovations used a national tariff or payment to spread?"
    event = mention(question, ts="1700000021.000100")
    _send_ok(slack.sender.send_event(event))
    [answer] = _wait_answers(slack, "C0GENERAL", event["ts"])
    expected = built_advisor.ask(question).to_record()
    assert expected["route"] == "catalogue"
    cases = _assert_catalogue_layout(answer.params["blocks"], expected)
    assert {name for _, name, _, _ in cases} == {
        "KardiaMobile", "my mhealth (myCOPD)", "DAFNE", "ERAS",
        "Implantable Cardioverter-Defibrillators (ICDs)", "Schwartz Rounds (UK)",
    }
    assert len(cases) == 6 and all("tariff or payment" in text for _, _, text, _ in cases)


def test_nonsense_description_gets_none_is_like_that(slack):
    url = slack.mock.response_url("like2")
    _, body, _ = slack.sender.send_command("like a recipe for chocolate cake with strawberries", url)
    assert json.loads(body)["text"] == THINKING
    assert slack.mock.wait_for(lambda m: m.calls_to("response_url"), 60)
    [reply] = slack.mock.calls_to("response_url")
    blocks = reply.params["blocks"]
    assert reply.params["response_type"] == "ephemeral"
    assert "None of the case studies in the catalogue is like that description" in blocks[0]["text"]["text"]
    assert not _cases_in(blocks) and not _quotes([b for b in blocks if b["type"] == "context"])
    assert blocks[-1]["type"] == "actions"


@pytest.mark.parametrize("kind, text", [("command", "like"), ("command", "like:  "),
                                        ("mention", "cases like mine"), ("dm", "like:")])
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
        _send_ok(slack.sender.send_event(event))
        assert slack.mock.wait_for(lambda m: m.replies_in(event["channel"], ts), 20)
        [reply] = slack.mock.replies_in(event["channel"], ts)
    assert reply.params["text"] == escape_mrkdwn(LIKE_USAGE) and "blocks" not in reply.params


def test_all_23_case_studies_fit_in_one_message(slack, built_advisor):
    question = "list all the case studies"
    event = mention(question, ts="1700000023.000100")
    _send_ok(slack.sender.send_event(event))
    [answer] = _wait_answers(slack, "C0GENERAL", event["ts"])
    blocks = answer.params["blocks"]
    expected = built_advisor.ask(question).to_record()
    cases = _assert_catalogue_layout(blocks, expected)
    assert len(built_advisor.case_catalogue.current) == 23
    assert [name for _, name, _, _ in cases] == [c.name for c in built_advisor.case_catalogue.current.cases]
    assert len(answer.params["text"]) <= 4000
    assert len(json.dumps(blocks)) < 50_000  # well inside what chat.update accepts


def test_like_request_wordings():
    assert like_request("like a digital tool", command=True) == "a digital tool"
    assert like_request("Like: a digital tool") == "a digital tool"
    assert like_request("cases like mine: a digital tool") == "a digital tool"
    assert like_request("Show me case studies like ours – a digital tool") == "a digital tool"
    assert like_request("like mine") == ""
    assert like_request("like a digital tool") is None  # in a message, "like ..." may be an ordinary question
    assert like_request("How did KardiaMobile spread?", command=True) is None
    assert like_request("likely barriers to spread?", command=True) is None
    assert like_question("x") == "cases like mine: x"


def _synthetic_catalogue_answer(n_cases: int, rows_per_case: int, quotes_per_row: int) -> Answer:
    citations, sentences, passages, rows = [], [], [], []
    for case in range(n_cases):
        name = f"Case <{case}> & co"
        chunk = Chunk(id=f"c{case}", doc_id="r.txt", text="x",
                      meta={"title": "Report & <title>", "section": "S" * 300, "case_study": name, "page": 2})
        passage = Passage(chunk=chunk, score=1.0, rank=case + 1)
        passages.append(passage)
        for row in range(rows_per_case):
            markers = []
            for _ in range(quotes_per_row):
                citations.append(Citation(len(citations) + 1, passage, "Quote <b> & " + "q" * 900))
                markers.append(len(citations))
            sentences.append(AnswerSentence(f"{name} row {row} " + "w" * 1500, tuple(markers)))
            rows.append(CaseRow(name, sentences[-1].text, tuple(markers)))
    every = tuple(c.marker for c in citations)
    heading = AnswerSentence("The case studies <all>:", every)
    return Answer(question="q" * 2500, text="\n".join(s.text for s in sentences), citations=tuple(citations),
                  passages=tuple(passages), sentences=(heading, *sentences), route="catalogue",
                  heading=heading.text, rows=tuple(rows))


@pytest.mark.parametrize("n_cases, rows_per_case, quotes_per_row",
                         [(3, 3, 2), (5, 3, 8), (15, 3, 8), (23, 1, 1), (60, 2, 3)])
def test_catalogue_answers_stay_inside_slack_limits(n_cases, rows_per_case, quotes_per_row):
    answer = _synthetic_catalogue_answer(n_cases, rows_per_case, quotes_per_row)
    message = render_answer(answer, "a" * 16)
    blocks = message["blocks"]
    assert len(blocks) <= MAX_BLOCKS and len(message["text"]) <= 4000
    for block in blocks:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000
        if block["type"] == "context":
            assert 1 <= len(block["elements"]) <= 10
            assert all(len(e["text"]) <= 2000 for e in block["elements"])
    assert "<b>" not in json.dumps(blocks) and "&lt;b&gt;" in json.dumps(blocks)
    cases = _cases_in(blocks)
    assert all(_quotes(contexts) for *_, contexts in cases)  # every case shown keeps evidence
    assert [rank for rank, *_ in cases] == list(range(1, len(cases) + 1))
    assert all(f"Case &lt;{rank - 1}&gt; &amp; co" == escape_mrkdwn(name) for rank, name, _, _ in cases)
    shown = sum(len(_quotes(contexts)) for *_, contexts in cases)
    if n_cases * 2 + 3 > MAX_BLOCKS:
        assert len(cases) < n_cases and "more case studies not shown" in json.dumps(blocks)
    else:
        assert len(cases) == n_cases
    if shown < n_cases * rows_per_case * quotes_per_row and len(cases) == n_cases:
        assert "more quotes" in json.dumps(blocks)
    assert blocks[-1]["type"] == "actions"


# ---------------------------------------------------------------------------------- security
@pytest.mark.parametrize("case", ["wrong signature", "wrong secret", "missing signature", "stale timestamp",
                                  "future timestamp", "body altered"])
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
        status, _, _ = slack.sender.post(body.replace("persuade", "convince"), "application/json", signature=good)
    else:
        status, _, _ = sender.post(body, "application/json", **kwargs)
    assert status == 401
    time.sleep(0.3)
    assert not slack.mock.calls_to("chat.postMessage")


def test_url_verification_challenge_is_answered(slack):
    body = json.dumps({"type": "url_verification", "token": "t", "challenge": "c0ffee"})
    status, text, _ = slack.sender.post(body, "application/json")
    assert status == 200 and "c0ffee" in text


# ---------------------------------------------------------------------------------- delivery
def test_retried_event_is_answered_once(slack):
    event = mention(QUESTION, ts="1700000005.000100")
    event_id = "Ev0RETRY01"
    _send_ok(slack.sender.send_event(event, event_id=event_id))
    for n in (1, 2):
        _send_ok(slack.sender.send_event(event, event_id=event_id,
                                         headers={"X-Slack-Retry-Num": str(n), "X-Slack-Retry-Reason": "http_timeout"}))
    _wait_answers(slack, "C0GENERAL", event["ts"])
    time.sleep(1.0)
    assert len(slack.mock.calls_to("chat.postMessage")) == 1
    assert len(_answers(slack, "C0GENERAL", event["ts"])) == 1


def test_rate_limited_reply_is_waited_out(slack):
    slack.mock.fail_next("chat.postMessage", 429, {"Retry-After": "1"})
    event = mention(QUESTION, ts="1700000006.000100")
    _send_ok(slack.sender.send_event(event))
    _wait_answers(slack, "C0GENERAL", event["ts"])
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
    _send_ok(slack.sender.send_event(event))
    [answer] = _wait_answers(slack, "C0GENERAL", event["ts"])
    assert len(slack.mock.calls_to("chat.update", status=500)) == 3  # first try + 2 bounded retries
    assert answer.method == "chat.postMessage"  # then posted as a new reply instead of lost
    assert any("could not edit the placeholder" in r.getMessage() for r in caplog.records)
    # and the placeholder (a "looking" line, or a streamed draft) no longer stands as if it were an answer
    assert slack.mock.wait_for(lambda m: any(c.params.get("text") == RETIRED for c in m.calls_to("chat.update")), 30)
    [retired] = [c for c in slack.mock.calls_to("chat.update") if c.params.get("text") == RETIRED]
    assert retired.params["ts"] == slack.mock.calls_to("chat.update", status=500)[0].params["ts"]
    assert not retired.params.get("blocks") and retired.at >= answer.at


def test_undeliverable_answer_is_logged_not_lost_silently(slack, caplog):
    caplog.set_level(logging.WARNING, logger="advisor.slack")
    slack.mock.fail_next("chat.update", 200, body={"ok": False, "error": "channel_not_found"})
    slack.mock.fail_next("chat.postMessage", 200, body={"ok": False, "error": "channel_not_found"}, times=2)
    event = mention(QUESTION, ts="1700000008.000100")
    slack.mock.fail_next("chat.postMessage", 200, body={"ok": False, "error": "channel_not_found"})
    _send_ok(slack.sender.send_event(event))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any("NOT DELIVERED" in r.getMessage() for r in caplog.records):
        time.sleep(0.1)
    lost = [r for r in caplog.records if "NOT DELIVERED" in r.getMessage()]
    assert len(lost) == 1 and lost[0].levelno == logging.ERROR
    assert QUESTION[:40] in lost[0].getMessage()


# ---------------------------------------------------------------------------------- streaming (issue 6)
STREAM_SECONDS = 6.0  # how long the fake model takes to write its reply, a character at a time


@pytest.fixture(scope="module")
def llm_advisor(built_advisor, built_settings):
    """An advisor over the shared index answering with the LLM chain (each test attaches a fake model)."""
    settings = built_settings.model_copy(
        update={"llm_backend": "openai", "llm_base_url": "http://127.0.0.1:9/v1", "llm_model": "x"})
    return build_advisor(settings, embedder=built_advisor.embedder)


@pytest.fixture
def llm_slack(llm_advisor, make_settings, tmp_path):
    """The Slack app around `llm_advisor`, as `slack` is around the extractive one."""
    with _slack_env(llm_advisor, make_settings, tmp_path) as env:
        yield env


def _stream_reply(advisor, reply: str, seconds: float = STREAM_SECONDS) -> None:
    """Give `advisor` a fake model that streams `reply` a character at a time over about `seconds`."""
    attach_llm(advisor, FakeListChatModel(responses=[reply], sleep=seconds / len(reply)))


def _grounded_reply(advisor) -> str:
    """A reply quoting the first sentence of the passages retrieved for QUESTION (so it verifies), then
    a sentence they do not support."""
    query = advisor.condense(QUESTION)
    passages = advisor.retriever.retrieve(query, query_vector=advisor.embedder.encode([query])[0])
    index = advisor.extractive.sentences
    quotes = [index.texts[index.by_chunk[p.chunk.id][0]] for p in passages[:2]]
    return f"{quotes[0]} [1] {quotes[1]} [2] The NHS closed every hospital in 2021 [2]."


def _updates(env) -> tuple[list, object]:
    """The chat.update calls (any status) in order: the previews, and the final answer (the last)."""
    updates = env.mock.calls_to("chat.update", status=None)
    final = updates[-1]
    assert final.params.get("blocks"), "the last edit is not the answer"
    assert all(not u.params.get("blocks") for u in updates[:-1])  # every edit before it is a preview
    return updates[:-1], final


def test_llm_answer_streams_into_the_placeholder_then_the_answer_replaces_it(llm_slack, llm_advisor):
    reply = _grounded_reply(llm_advisor)
    _stream_reply(llm_advisor, reply)
    event = mention(QUESTION, ts="1700000030.000100")
    _send_ok(llm_slack.sender.send_event(event))
    [answer] = _wait_answers(llm_slack, "C0GENERAL", event["ts"])
    time.sleep(PREVIEW_INTERVAL + 0.5)  # a preview sent late would have arrived by now
    previews, final = _updates(llm_slack)
    assert final is answer

    [placeholder] = llm_slack.mock.calls_to("chat.postMessage")
    assert placeholder.params["text"] == THINKING
    thread = llm_slack.mock.threads[("C0GENERAL", event["ts"])]
    [bot_message] = [m for m in thread if m.get("user") == BOT_USER]
    assert {p.params["ts"] for p in previews + [final]} == {bot_message["ts"]}  # all edits of that one reply
    # the text so far, growing, with the model's own markers, before the answer
    assert 2 <= len(previews) <= MAX_PREVIEW_UPDATES
    texts = [p.params["text"] for p in previews]
    assert all(t.endswith(STREAMING_MARK) for t in texts)
    shown = [t[: -len(STREAMING_MARK)] for t in texts]
    assert all(len(a) < len(b) for a, b in zip(shown, shown[1:]))
    assert all(escape_mrkdwn(reply).startswith(t) for t in shown)
    assert "[1]" in shown[-1]

    # the final answer is the verified Block Kit answer, with what the stream could not show
    blocks = final.params["blocks"]
    assert blocks[0]["type"] == "section" and "[1]" in blocks[0]["text"]["text"]
    contexts = [b for b in blocks if b["type"] == "context" and b["elements"][0]["text"].startswith("*[")]
    assert [c["elements"][0]["text"][:5] for c in contexts] == ["*[1]*", "*[2]*"]
    assert blocks[-1]["type"] == "actions"
    record = llm_slack.app.bot.answers.get(json.loads(blocks[-1]["elements"][0]["value"])["a"])
    assert record["backend"] == "openai" and record["fallback"] is None
    assert [s["verdict"] for s in record["sentences"]] == ["supported", "supported", "unsupported"]
    assert "does not clearly support" in json.dumps(blocks)
    assert not any("does not clearly support" in t for t in texts)


def test_previews_stay_within_the_bound(llm_slack, llm_advisor):
    llm_slack.app.bot.preview_interval = 0.1
    llm_slack.app.bot.max_preview_updates = 3
    _stream_reply(llm_advisor, _grounded_reply(llm_advisor), seconds=3.0)
    event = mention(QUESTION, ts="1700000031.000100")
    _send_ok(llm_slack.sender.send_event(event))
    _wait_answers(llm_slack, "C0GENERAL", event["ts"])
    time.sleep(0.5)
    previews, _ = _updates(llm_slack)
    assert len(previews) == 3  # 30 turns of 0.1 s while the model wrote; the bound stopped them at 3


def test_a_rate_limited_preview_is_skipped_and_the_answer_still_lands(llm_slack, llm_advisor):
    llm_slack.mock.fail_next("chat.update", 429, {"Retry-After": "3"})  # the first preview
    _stream_reply(llm_advisor, _grounded_reply(llm_advisor), seconds=9.0)
    event = mention(QUESTION, ts="1700000032.000100")
    _send_ok(llm_slack.sender.send_event(event))
    [answer] = _wait_answers(llm_slack, "C0GENERAL", event["ts"])
    time.sleep(PREVIEW_INTERVAL + 0.5)
    previews, final = _updates(llm_slack)
    assert final is answer and final.status == 200
    limited = [p for p in previews if p.status == 429]
    assert previews[0] in limited and len(limited) == 1
    texts = [p.params["text"] for p in previews]
    assert len(set(texts)) == len(texts)  # skipped, never sent again as it was
    later = previews[1:]
    assert later and later[0].at - limited[0].at >= 3.0  # the next preview waited out Retry-After
    assert all(p.status == 200 for p in later)


def test_a_refused_preview_ends_previews_not_the_answer(llm_slack, llm_advisor, caplog):
    caplog.set_level(logging.WARNING, logger="advisor.slack")
    llm_slack.mock.fail_next("chat.update", 200, body={"ok": False, "error": "cant_update_message"})
    _stream_reply(llm_advisor, _grounded_reply(llm_advisor), seconds=4.0)
    event = mention(QUESTION, ts="1700000033.000100")
    _send_ok(llm_slack.sender.send_event(event))
    [answer] = _wait_answers(llm_slack, "C0GENERAL", event["ts"])
    previews, final = _updates(llm_slack)
    assert final is answer and len(previews) == 1  # the refused one; no more after it
    assert any("no more previews" in r.getMessage() for r in caplog.records)


def test_preview_limiter_budget_and_pause():
    now = [0.0]
    limiter = PreviewLimiter(per_minute=2, clock=lambda: now[0])
    assert limiter.take() and limiter.take() and not limiter.take()  # two a minute
    now[0] = 60.5
    assert limiter.take()
    limiter.pause(3.0)
    now[0] = 62.0
    assert not limiter.take()  # paused by a 429 for every answer of the bot
    now[0] = 63.6
    assert limiter.take()
    assert retry_after({"retry-after": "7"}) == 7.0 and retry_after({}) == 1.0
    assert retry_after({"Retry-After": "9999"}) == 60.0


def test_feedback_button_is_stored_in_the_shared_store(slack):
    event = mention(QUESTION, ts="1700000009.000100")
    _send_ok(slack.sender.send_event(event))
    [answer] = _wait_answers(slack, "C0GENERAL", event["ts"])
    button = answer.params["blocks"][-1]["elements"][1]  # "Not helpful"
    _send_ok(slack.sender.send_action(button["action_id"], button["value"], slack.mock.response_url("fb1"),
                                      message_ts=answer.params["ts"]))
    assert slack.mock.wait_for(lambda m: m.calls_to("response_url"), 20)
    [thanks] = slack.mock.calls_to("response_url")
    assert thanks.params["response_type"] == "ephemeral" and "saved" in thanks.params["text"]
    [row] = FeedbackStore(slack.settings.database_url).list()
    assert row.channel == "slack" and row.verdict == "down"
    assert row.question == QUESTION and row.citations and row.answer
    assert row.meta["slack_user"] == "U0ASKER" and row.meta["partial_record"] is False


def test_feedback_after_restart_keeps_what_the_message_shows(slack):
    value = json.dumps({"a": "unknown-id", "q": QUESTION})
    _send_ok(slack.sender.send_action("advisor_feedback_up", value, slack.mock.response_url("fb2")))
    assert slack.mock.wait_for(lambda m: m.calls_to("response_url"), 20)
    [row] = slack.store.list()
    assert row.verdict == "up" and row.question == QUESTION and row.meta["partial_record"] is True


# ---------------------------------------------------------------------------------- bad input
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
    _send_ok(slack.sender.send_event(event))
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


def test_bots_and_edits_are_ignored(slack):
    ignored = [
        {**direct_message(QUESTION, ts="1700000011.000100"), "bot_id": "BOTHER"},
        {**direct_message(QUESTION, ts="1700000011.000200"), "subtype": "bot_message"},
        {**direct_message(QUESTION, ts="1700000011.000300"), "user": BOT_USER, "bot_id": BOT_ID},
        {**direct_message(QUESTION, ts="1700000011.000400"), "subtype": "message_changed"},
        {**mention(QUESTION, ts="1700000011.000500"), "bot_id": "BOTHER"},
        {**direct_message(QUESTION, ts="1700000011.000600"), "channel_type": "channel"},  # not a DM
    ]
    for event in ignored:
        _send_ok(slack.sender.send_event(event))
    sentinel = mention("", ts="1700000011.000900")  # answered quickly, after the ignored ones
    _send_ok(slack.sender.send_event(sentinel))
    assert slack.mock.wait_for(lambda m: m.replies_in("C0GENERAL", sentinel["ts"]), 20)
    time.sleep(1.0)
    posted = slack.mock.calls_to("chat.postMessage")
    assert [c.params["thread_ts"] for c in posted] == [sentinel["ts"]]


# ---------------------------------------------------------------------------------- rendering
def _synthetic_answer(n_citations: int, sentence_chars: int, n_sentences: int) -> Answer:
    passages, citations, sentences = [], [], []
    for i in range(1, n_citations + 1):
        chunk = Chunk(id=f"c{i}", doc_id="r.txt", text="x",
                      meta={"title": f"Report <{i}> & co", "section": "S" * 300, "case_study": "Case & <b>",
                            "page": i})
        passage = Passage(chunk=chunk, score=1.0, rank=i)
        passages.append(passage)
        citations.append(Citation(marker=i, passage=passage, quote="Quote <script> & " + "q" * 3000))
    for i in range(n_sentences):
        verdict = ("supported", "unsupported", "uncited")[i % 3]
        markers = () if verdict == "uncited" else (1 + i % max(n_citations, 1),)
        sentences.append(AnswerSentence(text=f"Sentence {i} <&> " + "w" * sentence_chars, markers=markers,
                                        verdict=verdict))
    return Answer(question="q" * 2500, text=" ".join(s.text for s in sentences), citations=tuple(citations),
                  passages=tuple(passages), sentences=tuple(sentences))


@pytest.mark.parametrize("n_citations,sentence_chars,n_sentences", [(3, 50, 4), (60, 400, 30), (5, 5000, 3),
                                                                      (2, 2900, 80)])
def test_rendered_answers_stay_inside_slack_limits(n_citations, sentence_chars, n_sentences):
    message = render_answer(_synthetic_answer(n_citations, sentence_chars, n_sentences), "a" * 16)
    blocks = message["blocks"]
    assert len(blocks) <= MAX_BLOCKS
    assert len(message["text"]) <= 4000
    for block in blocks:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000
        if block["type"] == "context":
            assert len(block["elements"]) <= 10
            assert all(len(e["text"]) <= 2000 for e in block["elements"])
        if block["type"] == "actions":
            assert all(len(e["value"]) <= 2000 and len(e["text"]["text"]) <= 75 for e in block["elements"])
    text = json.dumps(blocks)
    assert "<script>" not in text and "&lt;script&gt;" in text and "<&>" not in text
    assert blocks[-1]["type"] == "actions"
    contexts = [b for b in blocks if b["type"] == "context" and b["elements"][0]["text"].startswith("*[")]
    assert len(contexts) >= min(n_citations, 10)  # evidence keeps its place in long answers
    if n_citations > 45:
        assert "more sources" in blocks[-2]["elements"][0]["text"]
    if n_sentences * sentence_chars > 50 * 3000:
        assert any("shortened" in json.dumps(b) for b in blocks)
    if n_sentences >= 3:
        assert "does not clearly support" in text and "no source for this sentence" in text


def test_slack_question_strips_markup():
    assert slack_question(f"<@{BOT_USER}> what &amp; why &lt;now&gt;?", BOT_USER) == "what & why <now>?"
    assert slack_question("see <https://x.org/a|the report> in <#C123|general>") == "see the report in #general"
    assert slack_question("<!here> :wave: ask <@U999|sam> about it") == "ask @sam about it"
    assert slack_question(":tada::skin-tone-3: :+1:") == ""


def test_deduper_remembers_for_its_ttl():
    deduper = EventDeduper(ttl_seconds=0.2)
    assert deduper.first_time("event:1", "message:C:1")
    assert not deduper.first_time("event:2", "message:C:1")  # same message, another event id
    assert not deduper.first_time("event:1")
    time.sleep(0.3)
    assert deduper.first_time("event:1")


# ---------------------------------------------------------------------------------- start-up
def test_cli_names_missing_secrets(monkeypatch):
    from advisor.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["slack"])
    assert result.exit_code == 2 and "SLACK_BOT_TOKEN" in result.output
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    result = runner.invoke(app, ["slack"])
    assert result.exit_code == 2 and "SLACK_APP_TOKEN" in result.output
    result = runner.invoke(app, ["slack", "--http"])
    assert result.exit_code == 2 and "SLACK_SIGNING_SECRET" in result.output


def test_build_refuses_a_token_slack_rejects(built_advisor, make_settings):
    from advisor.errors import ConfigError

    mock = MockSlackWebApi().start()
    try:
        settings = make_settings(slack_bot_token="xoxb-wrong", slack_signing_secret=SIGNING_SECRET,
                                 slack_api_url=mock.api_url)
        with pytest.raises(ConfigError, match="SLACK_BOT_TOKEN"):
            build_slack_app(built_advisor, settings, FeedbackStore("sqlite://"))
    finally:
        mock.stop()


def test_manifest_asks_for_the_minimum():
    manifest = yaml.safe_load((PROJECT_ROOT / "slack" / "manifest.yml").read_text(encoding="utf-8"))
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == {
        "app_mentions:read", "chat:write", "commands", "im:history", "channels:history", "groups:history"}
    assert manifest["settings"]["event_subscriptions"]["bot_events"] == ["app_mention", "message.im"]
    assert manifest["features"]["slash_commands"][0]["command"] == "/advisor"
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert manifest["features"]["app_home"]["messages_tab_enabled"] is True


def test_http_server_serves_only_the_events_path(slack):
    import urllib.error
    import urllib.request

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
        assert mock.wait_for(lambda m: any(c.params.get("blocks") for c in m.replies_in("C0GENERAL", "1700000012.000100")), 60)
        # Slack redelivers over the socket with retry_attempt in the envelope: acked, not answered again
        redelivery = SocketModeRequest(type="events_api", envelope_id="env-2", payload=body,
                                       retry_attempt=1, retry_reason="timeout")
        assert run_bolt_app(app, redelivery).status == 200
        time.sleep(1.0)
        assert len(mock.calls_to("chat.postMessage")) == 1
        answers = [c for c in mock.replies_in("C0GENERAL", "1700000012.000100") if c.params.get("blocks")]
        assert len(answers) == 1
    finally:
        mock.stop()
