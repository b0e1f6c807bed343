"""Insights and saved-conversation benchmark on a synthetic SQLite database (no model, no server).

Fills a temporary database with N answers (default 20,000: a few hundred questions a day for 90
days), each a realistic size (three passages of about 2,800 characters, three citations), through
`ConversationStore.add_turn`, then times:
- saving an answer (`add_turn` into a conversation), p50 and p95 over the fill;
- the Insights tab's figures (`compute_insights`) for 7, 30 and 90 days, best of 3;
- listing one owner's conversations and reopening one.
Bounded: one fill, a few reads. Writes benchmarks/results/insights.json. `--answers N` for fewer.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_spine import percentile

from advisor.history import ConversationStore, Owner
from advisor.insights import compute_insights

PASSAGE = ("Spread depends on the capacity of the receiving system to adopt the innovation. " * 35)[:2800]


def record(i: int) -> dict:
    return {
        "question": f"How did innovation {i % 97} spread across the NHS?",
        "answer": "An answer.",
        "refused": i % 7 == 0,
        "citations": [
            {
                "marker": m,
                "source": f"report-{(i + m) % 5}.txt",
                "title": f"Report {(i + m) % 5}",
                "case_study": f"Case {(i * m) % 23}",
                "quote": "Spread depends on the capacity.",
            }
            for m in (1, 2, 3)
        ],
        "passages": [{"text": PASSAGE, "source": f"report-{m}.txt"} for m in range(3)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--answers", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        store = ConversationStore.open(f"sqlite:///{Path(folder) / 'bench.sqlite3'}")
        now = datetime.now(UTC)
        minutes = 90 * 24 * 60 / args.answers
        saves, conversation = [], None
        owners = [Owner.user(f"user{n}") for n in range(50)]
        for i in range(args.answers):
            owner = owners[(i // 4) % len(owners)]  # conversations of four answers, one owner each
            started = time.perf_counter()
            turn = store.add_turn(
                owner,
                record(i),
                conversation_id=conversation,
                now=now - timedelta(minutes=minutes * (args.answers - i)),
            )
            saves.append(time.perf_counter() - started)
            conversation = turn.conversation_id if i % 4 != 3 else None
        figures = {}
        for days in (7, 30, 90):
            best = float("inf")
            for _ in range(3):
                started = time.perf_counter()
                insights = compute_insights(store.engine, days=days, now=now)
                best = min(best, time.perf_counter() - started)
            figures[f"insights_{days}d_s"] = round(best, 3)
            figures[f"insights_{days}d_questions"] = insights.questions
        started = time.perf_counter()
        listed = store.list(owners[0])
        figures["list_one_owner_ms"] = round((time.perf_counter() - started) * 1000, 1)
        started = time.perf_counter()
        store.get(listed[0].id, owners[0])
        figures["reopen_ms"] = round((time.perf_counter() - started) * 1000, 1)
    result = {
        "answers": args.answers,
        "save_p50_ms": round(percentile(saves, 50) * 1000, 2),
        "save_p95_ms": round(percentile(saves, 95) * 1000, 2),
        **figures,
        "measured": now.strftime("%Y-%m-%d"),
    }
    out = ROOT / "benchmarks" / "results" / "insights.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
