"""Web page benchmark through gradio_client on loopback.

Time from send to the first streamed text and to the full answer (warm, offline answerer;
target < 300 ms to first text) through gradio_client and, when Debian's Chromium is there, in
a real browser (send click -> first answer text in the chat -> evidence panel filled); the
advisor's own time in-process for comparison; and answers per second with 10 concurrent clients (bounded:
each client asks a fixed number of questions). Uses the index in ADVISOR_DATA_DIR (built first
if missing). Writes benchmarks/results/ui.json.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_spine import QUESTIONS, percentile

from advisor.config import Settings, force_offline

CHROMIUM = Path("/usr/bin/chromium")
CLIENTS = 10
PER_CLIENT = 5


def main() -> None:
    force_offline()
    load_at_start = round(os.getloadavg()[0], 2)
    from advisor.advisor import build_advisor

    settings = Settings()
    advisor = build_advisor(settings)
    advisor.ensure_index()
    for q in QUESTIONS[:5]:
        advisor.ask(q)  # warm up
    in_process = []  # the advisor alone, to tell its time from the web stack's
    for q in QUESTIONS:
        t0 = time.perf_counter()
        for _ in advisor.stream(q):
            pass
        in_process.append((time.perf_counter() - t0) * 1000)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/"
    # the page in its own process, as `python app.py` runs it, so the client's polling threads
    # do not compete with the server for this process's GIL
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "app.py")],
        env={**os.environ, "ADVISOR_UI_PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        results = measure(url, in_process, load_at_start)
    finally:
        server.terminate()
        server.wait(timeout=30)
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "ui.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


def wait_until_up(url: str, seconds: float = 300) -> None:
    """Poll the page until it answers (bounded)."""
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"the page at {url} did not come up within {seconds:.0f} s")


def measure(url: str, in_process: list[float], load_at_start: float) -> dict:
    """All the timings against the page served at url."""
    from gradio_client import Client

    wait_until_up(url)
    client = Client(url, verbose=False)

    def ask(c, question: str) -> tuple[float, float]:
        t0 = time.perf_counter()
        job = c.submit(question, [], [], [], api_name="/ask")
        first = None
        for output in job:  # the first update only echoes the question: wait for answer text
            if first is None and output[0] and output[0][-1]["role"] == "assistant":
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

    browser = browser_timings(url, QUESTIONS[:10])

    clients = [Client(url, verbose=False) for _ in range(CLIENTS)]

    def session(i: int) -> int:
        for n in range(PER_CLIENT):
            ask(clients[i], QUESTIONS[(i * PER_CLIENT + n) % len(QUESTIONS)])
        return PER_CLIENT

    t0 = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        answered = sum(pool.map(session, range(CLIENTS)))
    elapsed = time.perf_counter() - t0

    return {
        "machine": {"cpus": os.cpu_count(), "load_average_1m_at_start": load_at_start},
        "advisor_stream_in_process_ms": {
            "p50": round(statistics.median(in_process), 1),
            "p95": round(percentile(in_process, 95), 1),
        },
        "warm_single_client_ms": {
            "n": len(totals),
            "first_text_p50": round(statistics.median(firsts), 1),
            "first_text_p95": round(percentile(firsts, 95), 1),
            "full_answer_p50": round(statistics.median(totals), 1),
            "full_answer_p95": round(percentile(totals, 95), 1),
        },
        "browser_ms": browser,
        "concurrent": {
            "clients": CLIENTS,
            "answers": answered,
            "seconds": round(elapsed, 2),
            "answers_per_second": round(answered / elapsed, 2),
        },
    }


def browser_timings(url: str, questions: list[str]) -> dict | None:
    """Send -> first answer text in the chat, and -> evidence shown, in Debian's Chromium."""
    if not CHROMIUM.exists():
        return None
    from playwright.sync_api import sync_playwright

    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
    ]
    firsts, totals = [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=flags)
        page = browser.new_page()
        page.goto(url)
        page.locator("#question textarea").wait_for(timeout=60_000)
        for i, question in enumerate([questions[0], *questions]):
            page.locator("#new-conversation").click()
            page.wait_for_function("!document.querySelector('#chat .bot')", timeout=10_000)
            page.locator("#question textarea").fill(question)
            t0 = time.perf_counter()
            page.locator("#send").click()
            page.wait_for_function(
                "[...document.querySelectorAll('#chat .bot')].some(e => e.innerText.trim().length > 0)",
                polling=5,
                timeout=30_000,
            )
            first = time.perf_counter() - t0
            page.wait_for_function(
                "!document.querySelector('#evidence').innerText.includes('Ask a question')",
                polling=5,
                timeout=30_000,
            )
            total = time.perf_counter() - t0
            if i:  # the first one warms the page up
                firsts.append(first * 1000)
                totals.append(total * 1000)
        browser.close()
    return {
        "n": len(firsts),
        "first_text_p50": round(statistics.median(firsts), 1),
        "first_text_p95": round(percentile(firsts, 95), 1),
        "full_answer_p50": round(statistics.median(totals), 1),
        "full_answer_p95": round(percentile(totals, 95), 1),
    }


if __name__ == "__main__":
    main()
