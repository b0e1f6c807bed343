"""The streamed preview of an LLM answer in its "looking" reply (advisor/slack/preview.py)."""

from __future__ import annotations

import itertools
import json
import logging
import time

from advisor.slack.blocks import escape_mrkdwn
from advisor.slack.messages import THINKING
from advisor.slack.preview import MAX_PREVIEW_UPDATES, PREVIEW_INTERVAL, STREAMING_MARK, PreviewLimiter
from tests.slack.helpers import QUESTION, send_ok, wait_answers
from tests.slack.slack_mock import BOT_USER, mention


def _grounded_reply(advisor) -> str:
    """A reply quoting the first sentence of the passages retrieved for QUESTION (so it verifies), then
    a sentence they do not support; `advisor` is the extractive one over the same index."""
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


def test_llm_answer_streams_into_the_placeholder_then_the_answer_replaces_it(llm_slack, built_advisor):
    reply = _grounded_reply(built_advisor)
    llm_slack = llm_slack(reply)
    event = mention(QUESTION, ts="1700000030.000100")
    send_ok(llm_slack.sender.send_event(event))
    [answer] = wait_answers(llm_slack, "C0GENERAL", event["ts"])
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
    assert all(len(a) < len(b) for a, b in itertools.pairwise(shown))
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


def test_previews_stay_within_the_bound(llm_slack, built_advisor):
    llm_slack = llm_slack(_grounded_reply(built_advisor), seconds=3.0)
    llm_slack.app.bot.preview_interval = 0.1
    llm_slack.app.bot.max_preview_updates = 3
    event = mention(QUESTION, ts="1700000031.000100")
    send_ok(llm_slack.sender.send_event(event))
    wait_answers(llm_slack, "C0GENERAL", event["ts"])
    time.sleep(0.5)
    previews, _ = _updates(llm_slack)
    assert len(previews) == 3  # 30 turns of 0.1 s while the model wrote; the bound stopped them at 3


def test_a_rate_limited_preview_is_skipped_and_the_answer_still_lands(llm_slack, built_advisor):
    llm_slack = llm_slack(_grounded_reply(built_advisor), seconds=9.0)
    llm_slack.mock.fail_next("chat.update", 429, {"Retry-After": "3"})  # the first preview
    event = mention(QUESTION, ts="1700000032.000100")
    send_ok(llm_slack.sender.send_event(event))
    [answer] = wait_answers(llm_slack, "C0GENERAL", event["ts"])
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


def test_a_refused_preview_ends_previews_not_the_answer(llm_slack, built_advisor, caplog):
    caplog.set_level(logging.WARNING, logger="advisor.slack")
    llm_slack = llm_slack(_grounded_reply(built_advisor), seconds=4.0)
    llm_slack.mock.fail_next("chat.update", 200, body={"ok": False, "error": "cant_update_message"})
    event = mention(QUESTION, ts="1700000033.000100")
    send_ok(llm_slack.sender.send_event(event))
    [answer] = wait_answers(llm_slack, "C0GENERAL", event["ts"])
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
