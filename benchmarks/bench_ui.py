"""Web page benchmark through gradio_client on loopback (issue 5).

Time from send to the first streamed text and to the full answer (warm, offline answerer;
target < 300 ms to first text), and answers per second with 10 concurrent clients (bounded:
each client asks a fixed number of questions). Uses the index in ADVISOR_DATA_DIR (built first
if missing). Writes benchmarks/results/ui.json.
"""

from __future__ import annotations

import json
import socket
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from advisor.config import Settings, force_offline  # noqa: E402
from bench_spine import QUESTIONS, percentile  # noqa: E402

CLIENTS = 10
PER_CLIENT = 5


def main() -> None:
    force_offline()
    from gradio_client import Client

    from advisor.advisor import build_advisor
    from advisor.feedback import FeedbackStore
    from advisor.ui import build_ui, serve

    settings = Settings()
    advisor = build_advisor(settings)
    advisor.ensure_index()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = build_ui(advisor, settings, FeedbackStore("sqlite://"))
    serve(demo, settings, port=port, block=False)
    url = f"http://127.0.0.1:{port}/"
    client = Client(url, verbose=False)

    def ask(c, question: str) -> tuple[float, float]:
        t0 = time.perf_counter()
        job = c.submit(question, [], [], [], api_name="/ask")
        first = None
        for _ in job:
            if first is None:
                first = time.perf_counter() - t0
        job.result()
        total = time.perf_counter() - t0
        return (first if first is not None else total) * 1000, total * 1000

    for q in QUESTIONS[:5]:
        ask(client, q)  # warm up
    firsts, totals = [], []
    for q in QUESTIONS * 2:
        f, t = ask(client, q)
        firsts.append(f)
        totals.append(t)

    clients = [Client(url, verbose=False) for _ in range(CLIENTS)]

    def session(i: int) -> int:
        for n in range(PER_CLIENT):
            ask(clients[i], QUESTIONS[(i * PER_CLIENT + n) % len(QUESTIONS)])
        return PER_CLIENT

    t0 = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        answered = sum(pool.map(session, range(CLIENTS)))
    elapsed = time.perf_counter() - t0
    demo.close()

    results = {
        "warm_single_client_ms": {
            "n": len(totals),
            "first_text_p50": round(statistics.median(firsts), 1),
            "first_text_p95": round(percentile(firsts, 95), 1),
            "full_answer_p50": round(statistics.median(totals), 1),
            "full_answer_p95": round(percentile(totals, 95), 1),
        },
        "concurrent": {
            "clients": CLIENTS,
            "answers": answered,
            "seconds": round(elapsed, 2),
            "answers_per_second": round(answered / elapsed, 2),
        },
    }
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "ui.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
