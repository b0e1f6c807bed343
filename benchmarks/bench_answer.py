"""Answer-path benchmark: warm `ask` latency on questions in users' own words.

Run: .venv/bin/python benchmarks/bench_answer.py  (or `make bench`). Uses the index in
ADVISOR_DATA_DIR (built first if missing) and every question of eval_sets/dev.jsonl (users' wordings,
multi-part questions, out-of-scope ones): one round warms caches, the second is measured, in-process.
Target: warm ask p95 < 100 ms with the offline answerer (question analysis, coverage model, evidence
units). Writes benchmarks/results/answer.json.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_spine import percentile, write_results

from advisor.config import Settings, force_offline


def main() -> None:
    force_offline()
    from advisor.advisor import build_advisor

    advisor = build_advisor(Settings())
    advisor.ensure_index()
    questions = [
        json.loads(line)["user_input"] for line in (ROOT / "eval_sets" / "dev.jsonl").open(encoding="utf-8")
    ]
    for q in questions:  # warm-up round
        advisor.ask(q)
    total, answer, retrieve = [], [], []
    for q in questions:
        t0 = time.perf_counter()
        result = advisor.ask(q)
        total.append((time.perf_counter() - t0) * 1000)
        answer.append(result.timings_ms.get("answer", 0.0))
        retrieve.append(result.timings_ms.get("retrieve", 0.0))
    results = {
        "machine": {"cpus": os.cpu_count()},
        "questions": len(questions),
        "warm_ask_ms": {
            "p50": round(statistics.median(total), 1),
            "p95": round(percentile(total, 95), 1),
            "retrieve_p50": round(statistics.median(retrieve), 1),
            "answer_p50": round(statistics.median(answer), 1),
            "answer_p95": round(percentile(answer, 95), 1),
        },
        "target": "warm ask p95 < 100 ms",
    }
    write_results("answer", results)


if __name__ == "__main__":
    main()
