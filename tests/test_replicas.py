"""Several replicas, one truth: two web processes and two Slack HTTP processes on loopback, sharing
a real PostgreSQL (feedback, Slack de-duplication, answer records) and a real `chroma run` (the
index), with nothing shared through their own data folders.

- 50 signed mentions go to the two Slack replicas in turn, and Slack's retry of each goes to the
  other replica (half of them at the same instant as the original): each is answered exactly once.
- A feedback button on an answer one Slack replica gave, clicked through the other, stores the
  full answer record.
- Feedback written through both web replicas is all in the shared database.
- A conversation saved through one web replica is served by the other: its brief to the same
  browser, its answer's share page to anyone.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from advisor.feedback import FeedbackStore
from advisor.slack.messages import THINKING
from tests.services import (
    AdvisorProcess,
    chroma_server,
    ingest_into,
    new_database,
    slack_ready,
    start_slack,
    start_web,
    web_ready,
)
from tests.slack.slack_mock import BOT_TOKEN, SIGNING_SECRET, MockSlackWebApi, SlackSender, mention

pytestmark = [pytest.mark.replicas, pytest.mark.chroma_server, pytest.mark.slow]

MENTIONS = 50
QUESTIONS = [
    "What role do clinical champions play in spreading an innovation?",
    "What evidence do NHS adopters want before taking up an innovation?",
    "How did KardiaMobile reach patients?",
    "What makes a good pilot of a technology-enabled service change?",
    "How did the DAFNE programme spread across the NHS?",
]


@pytest.fixture(scope="module")
def deployment(postgres_url, tmp_path_factory):
    """PostgreSQL, a Chroma server holding the index, a mock Slack, 2 web and 2 Slack replicas."""
    folder = tmp_path_factory.mktemp("replicas")
    db_url = new_database(postgres_url, "replicas")
    slack = MockSlackWebApi().start()
    replicas: list[AdvisorProcess] = []
    with chroma_server(folder / "chroma") as chroma_url:
        shared = {"ADVISOR_DB_URL": db_url, "ADVISOR_CHROMA_URL": chroma_url}
        ingest_into(folder / "ingest", **shared)
        slack_settings = {
            "ADVISOR_SLACK_API_URL": slack.api_url,
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        }
        try:
            replicas += [start_web(folder / f"web{i}", **shared) for i in (1, 2)]
            replicas += [start_slack(folder / f"slack{i}", **shared, **slack_settings) for i in (1, 2)]
            for replica in replicas:
                try:
                    replica.wait_until(web_ready if replica.name.startswith("web") else slack_ready)
                except RuntimeError as exc:
                    pytest.fail(str(exc))
            yield {"db_url": db_url, "slack": slack, "replicas": replicas, "folder": folder}
        finally:
            for replica in replicas:
                replica.stop()
            slack.stop()


def _by_name(deployment, prefix: str) -> list[AdvisorProcess]:
    return [r for r in deployment["replicas"] if r.name.startswith(prefix)]


def test_each_mention_is_answered_once_whichever_replica_gets_it_and_its_retries(deployment):
    slack: MockSlackWebApi = deployment["slack"]
    senders = [SlackSender(f"http://127.0.0.1:{r.port}/slack/events") for r in _by_name(deployment, "slack")]
    threads_asked: list[tuple[str, str]] = []
    statuses: list[int] = []

    def send(sender: SlackSender, body: str, retry: bool) -> None:
        headers = {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"} if retry else {}
        status, _, _ = sender.post(body, "application/json", headers=headers, timeout=30)
        statuses.append(status)

    for i in range(MENTIONS):
        ts = f"1700001{i:03d}.000100"
        event = mention(QUESTIONS[i % len(QUESTIONS)], channel="C0REPLICA", ts=ts)
        first, other = senders[i % 2], senders[(i + 1) % 2]
        body = first.event_body(event, event_id=f"EvREPLICA{i:04d}")
        threads_asked.append(("C0REPLICA", ts))
        if i % 2:  # the retry at the same instant as the original, on the other replica
            pair = [
                threading.Thread(target=send, args=(first, body, False)),
                threading.Thread(target=send, args=(other, body, True)),
            ]
            for t in pair:
                t.start()
            for t in pair:
                t.join(timeout=60)
        else:  # the retry after the original was acked
            send(first, body, False)
            send(other, body, True)

    assert statuses == [200] * (2 * MENTIONS)

    def answered(mock: MockSlackWebApi) -> bool:
        return all(mock.replies_in(channel, ts) for channel, ts in threads_asked)

    assert slack.wait_for(answered, timeout=600), "not every mention was answered"
    time.sleep(3)  # a duplicate answer would arrive within this
    replies = {key: slack.replies_in(*key) for key in threads_asked}
    assert {key: len(calls) for key, calls in replies.items() if len(calls) != 1} == {}
    placeholders = [c for c in slack.calls_to("chat.postMessage") if c.params.get("text") == THINKING]
    assert len(placeholders) == MENTIONS
    # each replica met some of the events as a retry it had not taken first, and acked them only
    logs = [r.log() for r in _by_name(deployment, "slack")]
    assert all("already being answered, acked only" in log for log in logs)

    # A feedback button on one replica's answer, clicked through the other replica.
    reply = replies[threads_asked[0]][0]
    blocks = reply.params.get("blocks")
    blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
    button = next(
        element
        for block in blocks
        if block.get("type") == "actions"
        for element in block.get("elements", [])
        if element.get("action_id") == "advisor_feedback_up"
    )
    status, _, _ = senders[1].send_action(
        button["action_id"],
        button["value"],
        slack.response_url("feedback-replica"),
        channel="C0REPLICA",
        message_ts=reply.params.get("ts") or threads_asked[0][1],
    )
    assert status == 200
    store = FeedbackStore(deployment["db_url"])
    deadline = time.monotonic() + 60
    while not [f for f in store.list() if f.channel == "slack"] and time.monotonic() < deadline:
        time.sleep(0.3)
    (stored,) = [f for f in store.list() if f.channel == "slack"]
    assert stored.meta["partial_record"] is False
    assert stored.question == QUESTIONS[0] and stored.citations


def test_feedback_through_both_web_replicas_is_all_in_the_shared_database(deployment):
    from gradio_client import Client

    expected = []
    for replica in _by_name(deployment, "web"):
        client = Client(f"http://127.0.0.1:{replica.port}/", verbose=False)
        for i in range(5):
            client.predict(QUESTIONS[i], [], [], [], api_name="/ask")
            comment = f"{replica.name} comment {i}"
            status, _ = client.predict(comment, api_name="/feedback_down" if i % 2 else "/feedback_up")
            assert status.startswith("Thank you: feedback #"), status
            expected.append((replica.name, comment, "down" if i % 2 else "up", QUESTIONS[i]))
    stored = [f for f in FeedbackStore(deployment["db_url"]).list() if f.channel == "web"]
    got = sorted((f.comment.split()[0], f.comment, f.verdict, f.question) for f in stored)
    assert got == sorted(expected)
    assert all(f.citations for f in stored)


def test_a_conversation_saved_through_one_web_replica_is_served_by_the_other(deployment):
    import re
    import secrets

    import httpx
    from gradio_client import Client

    from advisor.history import ConversationStore, Owner

    first, second = (f"http://127.0.0.1:{r.port}/" for r in _by_name(deployment, "web"))
    browser = secrets.token_urlsafe(24)
    cookie = {"Cookie": f"advisor_browser={browser}"}
    outputs = Client(first, verbose=False, headers=cookie).predict(QUESTIONS[2], [], [], [], api_name="/ask")
    evidence = next(o for o in outputs if isinstance(o, str) and "cite-" in o)
    share = re.search(r"shared/([A-Za-z0-9_-]+)'", evidence).group(1)

    (saved,) = ConversationStore.open(deployment["db_url"]).list(Owner.browser(browser))
    assert saved.turns == 1 and saved.title == QUESTIONS[2]
    brief = httpx.get(f"{second}conversations/{saved.id}/brief.md", headers=cookie)
    assert brief.status_code == 200 and QUESTIONS[2] in brief.text and "References" in brief.text
    stranger = httpx.get(f"{second}conversations/{saved.id}/brief.md")  # no cookie: not theirs
    assert stranger.status_code == 404 and QUESTIONS[2] not in stranger.text
    page = httpx.get(f"{second}shared/{share}")
    assert page.status_code == 200 and QUESTIONS[2] in page.text and "<mark>" in page.text


def test_the_replicas_keep_no_index_or_database_of_their_own(deployment):
    for replica in deployment["replicas"]:
        kept = sorted(p.name for p in replica.folder.iterdir())
        assert "chroma" not in kept and "feedback.sqlite3" not in kept, (replica.name, kept)
