"""Load on the web page, one replica and two: 20 concurrent clients asking for 60 s.

The deployment the README describes, on loopback: a real PostgreSQL (feedback) and a real
`chroma run` (the index, ingested once), then one, and then two, web processes (`python app.py`)
sharing them. Each client is a `gradio_client.Client` on one replica (clients spread evenly),
asking questions in turn until the time is up; a question in flight when it ends is finished and
counted. Reported per run: answers per second, p50 and p95 of the time from send to the full
answer, and errors (the target is 0). Writes benchmarks/results/replicas.json.

Bounded: `--clients` (default 20) clients for `--seconds` (default 60) per run; each request
has a 120 s client timeout.

    python benchmarks/bench_replicas.py [--clients 20] [--seconds 60] [--replicas 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_spine import QUESTIONS, percentile

from tests.services import (
    chroma_server,
    ingest_into,
    new_database,
    postgres_server,
    start_web,
    web_ready,
)

RESULTS = ROOT / "benchmarks" / "results" / "replicas.json"


def drive(urls: list[str], clients: int, seconds: float) -> dict:
    """`clients` threads, each with its own Client on urls[i % len(urls)], asking for `seconds`."""
    from gradio_client import Client

    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop_at = [0.0]
    started = [0.0]

    def go() -> None:  # run by the last thread through the barrier, before any is released
        started[0] = time.monotonic()
        stop_at[0] = started[0] + seconds

    ready = threading.Barrier(clients + 1, action=go)

    def client(i: int) -> None:
        try:
            c = Client(urls[i % len(urls)], verbose=False, httpx_kwargs={"timeout": 120})
        except Exception as exc:  # noqa: BLE001 - counted, reported
            with lock:
                errors.append(f"connect: {exc!r}"[:200])
            ready.wait()
            return
        ready.wait()
        n = i
        while time.monotonic() < stop_at[0]:
            question = QUESTIONS[n % len(QUESTIONS)]
            n += clients
            t0 = time.perf_counter()
            try:
                history, *_ = c.predict(question, [], [], [], api_name="/ask")
                if not history or not history[-1].get("content"):
                    raise RuntimeError("empty answer")
            except Exception as exc:  # noqa: BLE001 - counted, reported
                with lock:
                    errors.append(repr(exc)[:200])
                continue
            with lock:
                latencies.append((time.perf_counter() - t0) * 1000)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    ready.wait()
    for t in threads:
        t.join(timeout=seconds + 180)
    elapsed = time.monotonic() - started[0]
    return {
        "answers": len(latencies),
        "seconds": round(elapsed, 1),
        "answers_per_s": round(len(latencies) / elapsed, 2),
        "p50_ms": round(percentile(latencies, 50), 1) if latencies else None,
        "p95_ms": round(percentile(latencies, 95), 1) if latencies else None,
        "errors": len(errors),
        "error_samples": errors[:5],
    }


def warm(urls: list[str]) -> None:
    """Every replica answers every benchmark question once, so what is measured is the warm page."""
    from gradio_client import Client

    def one(url: str) -> None:
        client = Client(url, verbose=False, httpx_kwargs={"timeout": 300})
        for question in QUESTIONS:
            client.predict(question, [], [], [], api_name="/ask")

    threads = [threading.Thread(target=one, args=(url,)) for url in urls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=900)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="bench-replicas-"))
    runs = []
    with postgres_server() as pg, chroma_server(folder / "chroma") as chroma_url:
        t0 = time.perf_counter()
        ingest_into(folder / "ingest", ADVISOR_CHROMA_URL=chroma_url)
        print(f"index ingested into the Chroma server in {time.perf_counter() - t0:.0f} s", flush=True)
        for n in args.replicas:
            shared = {"ADVISOR_DB_URL": new_database(pg, "bench"), "ADVISOR_CHROMA_URL": chroma_url}
            web = [start_web(folder / f"run{n}-web{i}", **shared) for i in range(1, n + 1)]
            try:
                for process in web:
                    process.wait_until(web_ready)
                urls = [f"http://127.0.0.1:{p.port}/" for p in web]
                warm(urls)
                result = {"replicas": n, "clients": args.clients, **drive(urls, args.clients, args.seconds)}
            finally:
                for process in web:
                    process.stop()
            print(json.dumps(result), flush=True)
            runs.append(result)
    report = {
        "benchmark": "web replicas under load",
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": f"{os.cpu_count()} cores",
        "load_at_start": round(os.getloadavg()[0], 2),
        "settings": "offline answerer, k=5; PostgreSQL and chroma run on loopback",
        "runs": runs,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
