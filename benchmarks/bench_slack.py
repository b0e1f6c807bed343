"""Slack bot benchmark on loopback: 50 mentions sent at once to the real HTTP endpoint.

The advisor's bolt app serves /slack/events on 127.0.0.1; a local mock of Slack's Web API
(tests/slack/slack_mock.py) records the replies. 50 signed `app_mention` events are sent at the same
moment, then 10 of them again as Slack retries (X-Slack-Retry-Num, same event id). Checked:
every request acknowledged (HTTP 200) within 3 s, every question answered exactly once, none lost.
Reported: ack p50/p95/max, time to answer p50/p95/max (send -> answer edited into place).
Bounded: one burst, at most 300 s of waiting. Uses the index in ADVISOR_DATA_DIR (built if
missing). Writes benchmarks/results/slack.json. `--mentions N --retries M` for a smaller burst.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_spine import QUESTIONS, percentile
from pydantic import SecretStr

from advisor.config import Settings, force_offline

MENTIONS = 50
RETRIES = 10
ACK_LIMIT_S = 3.0
WAIT_LIMIT_S = 300.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--mentions", type=int, default=MENTIONS, help="mentions sent at once (default 50)")
    parser.add_argument(
        "--retries", type=int, default=RETRIES, help="of them re-sent as retries (default 10)"
    )
    args = parser.parse_args()
    run(args.mentions, min(args.retries, args.mentions))


def run(mentions: int, retries: int) -> None:
    force_offline()
    from advisor.advisor import build_advisor
    from advisor.feedback import FeedbackStore
    from advisor.slack.app import build_slack_app
    from advisor.slack.messages import THINKING
    from advisor.slack.server import SlackHttpServer
    from tests.slack.slack_mock import BOT_TOKEN, SIGNING_SECRET, MockSlackWebApi, SlackSender, mention

    base = Settings()
    advisor = build_advisor(base)
    advisor.ensure_index()
    mock = MockSlackWebApi().start()
    tmp = Path(tempfile.mkdtemp(prefix="bench-slack-"))
    settings = base.model_copy(
        update={
            "slack_bot_token": SecretStr(BOT_TOKEN),
            "slack_signing_secret": SecretStr(SIGNING_SECRET),
            "slack_api_url": mock.api_url,
            "db_url": f"sqlite:///{tmp / 'feedback.sqlite3'}",
        }
    )
    app = build_slack_app(advisor, settings, FeedbackStore(settings.database_url))
    server = SlackHttpServer(app, "127.0.0.1", 0).start()
    sender = SlackSender(server.url)

    def answered(channel: str, ts: str) -> list:
        return [c for c in mock.replies_in(channel, ts) if c.params.get("blocks")]

    # warm up: two questions end to end
    for i, q in enumerate(QUESTIONS[:2]):
        ts = f"1690000000.{i:06d}"
        sender.send_event(mention(q, channel="CWARM", ts=ts))
        mock.wait_for(lambda m, ts=ts: answered("CWARM", ts), 60)

    events = [
        (
            mention(QUESTIONS[i % len(QUESTIONS)], channel="CBENCH", ts=f"1700000000.{i + 1:06d}"),
            f"EvBENCH{i:04d}",
        )
        for i in range(mentions)
    ]
    sent_at: dict[str, float] = {}
    acks: dict[str, tuple[int, float]] = {}
    barrier = threading.Barrier(mentions)

    def send(item) -> None:
        event, event_id = item
        body = sender.event_body(event, event_id)
        barrier.wait()
        sent_at[event["ts"]] = time.monotonic()
        status, _, seconds = sender.post(body, "application/json", timeout=30)
        acks[event["ts"]] = (status, seconds)

    t0 = time.monotonic()
    with ThreadPoolExecutor(mentions) as pool:
        list(pool.map(send, events))
    # Slack retrying some of them (as if our acks had been lost): must not produce second answers
    retry_acks = []
    for event, event_id in events[:retries]:
        status, _, seconds = sender.send_event(
            event,
            event_id=event_id,
            headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"},
        )
        retry_acks.append((status, seconds))
    done = mock.wait_for(lambda m: all(answered("CBENCH", e["ts"]) for e, _ in events), WAIT_LIMIT_S)
    burst_seconds = time.monotonic() - t0
    time.sleep(2.0)  # let any (wrong) second answer arrive before counting

    answer_ms, per_thread, placeholders = [], [], []
    for event, _ in events:
        replies = answered("CBENCH", event["ts"])
        per_thread.append(len(replies))
        placeholders.append(
            sum(
                1
                for c in mock.calls_to("chat.postMessage")
                if c.params.get("thread_ts") == event["ts"] and c.params.get("text") == THINKING
            )
        )
        if replies:
            answer_ms.append((replies[0].at - sent_at[event["ts"]]) * 1000)
    ack_ms = [s * 1000 for _, s in acks.values()]
    result = {
        "mentions": mentions,
        "workers": settings.slack_workers,
        "all_answered": bool(done),
        "acked_200": sum(1 for status, _ in acks.values() if status == 200),
        "acked_within_3s": sum(1 for status, s in acks.values() if status == 200 and s < ACK_LIMIT_S),
        "answered_exactly_once": sum(1 for n in per_thread if n == 1),
        "answered_more_than_once": sum(1 for n in per_thread if n > 1),
        "lost": sum(1 for n in per_thread if n == 0),
        "placeholders_exactly_once": sum(1 for n in placeholders if n == 1),
        "retries_sent": retries,
        "retries_acked_200": sum(1 for status, _ in retry_acks if status == 200),
        "ack_ms": {
            "p50": round(percentile(ack_ms, 50), 1),
            "p95": round(percentile(ack_ms, 95), 1),
            "max": round(max(ack_ms), 1),
        },
        "time_to_answer_ms": {
            "p50": round(percentile(answer_ms, 50), 1) if answer_ms else None,
            "p95": round(percentile(answer_ms, 95), 1) if answer_ms else None,
            "max": round(max(answer_ms), 1) if answer_ms else None,
        },
        "burst_seconds": round(burst_seconds, 2),
        "answers_per_second": round(len(answer_ms) / burst_seconds, 2) if burst_seconds else None,
    }
    server.stop()
    mock.stop()
    out = ROOT / "benchmarks" / "results" / "slack.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
    ok = (
        result["acked_within_3s"] == mentions
        and result["answered_exactly_once"] == mentions
        and result["retries_acked_200"] == retries
    )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
