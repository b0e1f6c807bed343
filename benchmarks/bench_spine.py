"""Spine benchmark: ingest throughput and memory, re-ingest, cold start, warm `ask` latency.

Run: .venv/bin/python benchmarks/bench_spine.py  (or `make bench`). Writes
benchmarks/results/spine.json and prints it. Targets (this 2-core machine): full
ingest < 60 s near the model's own throughput; unchanged re-ingest < 5 s; warm ask p50 < 100 ms
and p95 < 250 ms (offline answerer); cold start to first answer < 15 s.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from advisor.config import Settings, force_offline

QUESTIONS = [
    "How did other innovators persuade late adopters to take up their product?",
    "What role do clinical champions play in spreading an innovation?",
    "How did KardiaMobile reach patients and clinicians?",
    "What evidence do NHS adopters want before taking up an innovation?",
    "How did IAPT scale across England?",
    "What are the three core pillars for adopting a proven innovation?",
    "How should I run a pilot of a technology-enabled service change?",
    "What funding helped innovations spread nationally?",
    "Why do innovations fail to spread beyond early adopters?",
    "How did Schwartz Rounds spread in the UK?",
    "What business models did innovators use at scale?",
    "How did the DAFNE programme grow?",
    "What did Lantum learn about word of mouth?",
    "What is ambient voice technology?",
    "How can system leaders create the conditions for spread?",
    "What is the role of Academic Health Science Networks?",
    "How did ERAS+ engage patients before surgery?",
    "Who won the football World Cup in 1966?",
    "What trade-offs do innovators face when adapting their product?",
    "How did Florence telehealth spread between organisations?",
]


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    idx = min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))
    return values[idx]


def write_results(name: str, results: dict) -> None:
    """Write benchmarks/results/<name>.json (git-ignored) and print it."""
    out_dir = ROOT / "benchmarks" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(results, indent=2))


def run_cli(args: list[str], data_dir: Path) -> tuple[float, subprocess.CompletedProcess]:
    env = {**os.environ, "ADVISOR_DATA_DIR": str(data_dir), "ADVISOR_CORPUS_DIR": str(ROOT / "corpus")}
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "advisor", *args], env=env, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"advisor {' '.join(args)} failed:\n{out.stderr}")
    return elapsed, out


def main() -> None:
    force_offline()
    results: dict[str, object] = {"machine": {"cpus": os.cpu_count()}}
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"

        # 1. full ingest in a fresh process (peak RSS of that child)
        seconds, out = run_cli(["ingest", "--rebuild", "--quiet"], data_dir)
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        from advisor.advisor import build_advisor

        advisor = build_advisor(Settings(data_dir=data_dir, corpus_dir=ROOT / "corpus", _env_file=None))
        chunks = advisor.index.chunks
        sentences = advisor.extractive.sentences.texts
        results["ingest"] = {
            "seconds": round(seconds, 2),
            "chunks": len(chunks),
            "sentences": len(sentences),
            "chunks_per_second": round(len(chunks) / seconds, 1),
            "peak_rss_mb": round(peak_mb, 1),
            "summary": out.stdout.strip().splitlines()[0],
        }

        # the model's own throughput on the same texts (what the ingest embeds), in-process
        from advisor.ingest import embedding_text

        texts = [embedding_text(c) for c in chunks]
        t0 = time.perf_counter()
        advisor.embedder.encode(texts)
        advisor.embedder.encode(list(sentences))
        model_seconds = time.perf_counter() - t0
        results["ingest"]["model_only_seconds"] = round(model_seconds, 2)
        results["ingest"]["model_share_of_ingest"] = round(model_seconds / seconds, 2)

        # 2. re-ingest of an unchanged corpus, whole process
        seconds, out = run_cli(["ingest", "--quiet"], data_dir)
        results["reingest_unchanged_seconds"] = round(seconds, 2)

        # 3. cold start: process start to first answer, index present
        seconds, out = run_cli(["ask", QUESTIONS[0], "--json"], data_dir)
        results["cold_start_seconds"] = round(seconds, 2)

        # 4. warm ask latency, in-process (first round warms caches, second is measured)
        for q in QUESTIONS:
            advisor.ask(q)
        retrieve, answer, total = [], [], []
        for _ in range(3):
            for q in QUESTIONS:
                t = advisor.ask(q).timings_ms
                retrieve.append(t["retrieve"])
                answer.append(t["answer"])
                total.append(t["total"])
        results["warm_ask_ms"] = {
            "n": len(total),
            "p50": round(statistics.median(total), 1),
            "p95": round(percentile(total, 95), 1),
            "retrieve_p50": round(statistics.median(retrieve), 1),
            "retrieve_p95": round(percentile(retrieve, 95), 1),
            "answer_p50": round(statistics.median(answer), 1),
            "answer_p95": round(percentile(answer, 95), 1),
        }

    write_results("spine", results)


if __name__ == "__main__":
    main()
