"""Issue 18: the query path on ONNX Runtime against the torch encoder, in one run.

For each encoder (`ADVISOR_ENCODER=torch|onnx`), on its own fresh data folder with the real corpus:

- ingest: `advisor ingest --rebuild --quiet` in a fresh process, wall time and peak RSS (the ONNX
  export is made first, timed on its own: it happens once per model, at the first ingest);
- cold `ask`: `advisor ask --json` in a fresh process, index present (and the caches a first
  question writes, warmed by one unmeasured question), from process start to the printed
  answer, with that process's peak RSS; `--rounds` rounds, the encoders taking turns;
- warm `ask`: one process per encoder asks the benchmark questions once to warm up, then
  three times more, each `ask` timed by the wall clock; p50 and p95;
- web page and Slack bot: `python app.py` and `advisor slack --http` (against a local mock of
  Slack's Web API) started on the index, from process start to the page's API answering, and
  to the first answer received (gradio_client; the mock receiving the answer), with the peak
  RSS of the process by then.

Targets (issue 18), as ONNX/torch ratios of the medians: cold ask <= 0.3, peak RSS of ask <= 0.5,
warm ask p95 <= 1.0 (no worse). Every child has a timeout; nothing outside loopback is reached.
Writes benchmarks/results/encoder.json and prints a Markdown table.

    python benchmarks/bench_encoder.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_spine import QUESTIONS, percentile

from tests.services import advisor_env, slack_ready, start_slack, start_web, web_ready

ENCODERS = ("torch", "onnx")
RESULTS = ROOT / "benchmarks" / "results" / "encoder.json"
TARGETS = {"cold_ask": 0.3, "ask_peak_rss": 0.5, "warm_ask_p95": 1.0}
CHILD_TIMEOUT = 900

WARM_CHILD = r"""
import json, statistics, sys, time
from advisor.advisor import build_advisor
from advisor.config import Settings
questions = json.loads(sys.argv[1])
advisor = build_advisor(Settings())
advisor.ensure_index()
for q in questions:
    advisor.ask(q)
times = []
for _ in range(3):
    for q in questions:
        t = time.perf_counter()
        advisor.ask(q)
        times.append((time.perf_counter() - t) * 1000)
print(json.dumps({"times_ms": times, "torch_loaded": "torch" in sys.modules}))
"""


def env_for(data_dir: Path, encoder: str) -> dict[str, str]:
    return advisor_env(
        ADVISOR_DATA_DIR=str(data_dir), ADVISOR_ENCODER=encoder, ADVISOR_CORPUS_DIR=str(ROOT / "corpus")
    )


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run a child to its end: (wall seconds, its own peak RSS in MB, stdout)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=err, cwd=ROOT)
        deadline = time.monotonic() + CHILD_TIMEOUT
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)  # this child's own rusage
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                raise SystemExit(f"{' '.join(command)} took over {CHILD_TIMEOUT} s")
            time.sleep(0.01)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise SystemExit(
                f"{' '.join(command)} failed ({proc.returncode}):\n{err.read().decode()[-3000:]}"
            )
        return seconds, usage.ru_maxrss / 1024, out.read().decode()


def advisor_cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "advisor", *args]


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def web_start(data_dir: Path, encoder: str, question: str) -> dict:
    from gradio_client import Client

    t0 = time.perf_counter()
    process = start_web(data_dir, ADVISOR_ENCODER=encoder)  # on the encoder's index
    try:
        process.wait_until(web_ready, timeout=CHILD_TIMEOUT)
        ready = time.perf_counter() - t0
        client = Client(f"http://127.0.0.1:{process.port}/", verbose=False, httpx_kwargs={"timeout": 600})
        result = client.predict(question, [], [], [], api_name="/ask")
        answered = time.perf_counter() - t0
        if not result:
            raise SystemExit(f"the web page gave no answer on {encoder}")
        return {
            "ready_s": round(ready, 2),
            "first_answer_s": round(answered, 2),
            "peak_rss_mb": peak_rss_mb(process.proc.pid),
        }
    finally:
        process.stop()


def slack_start(data_dir: Path, encoder: str, question: str) -> dict:
    from tests.slack.slack_mock import BOT_TOKEN, SIGNING_SECRET, MockSlackWebApi, SlackSender, mention

    mock = MockSlackWebApi().start()
    settings = {
        "ADVISOR_SLACK_API_URL": mock.api_url,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
    }
    t0 = time.perf_counter()
    process = start_slack(data_dir, ADVISOR_ENCODER=encoder, **settings)
    try:
        process.wait_until(slack_ready, timeout=CHILD_TIMEOUT)
        ready = time.perf_counter() - t0
        sender = SlackSender(f"http://127.0.0.1:{process.port}/slack/events")
        ts = "1700009999.000100"
        status, _, _ = sender.post(
            sender.event_body(mention(question, channel="C0BENCH", ts=ts)), "application/json"
        )
        if status != 200:
            raise SystemExit(f"the Slack endpoint answered {status} on {encoder}")
        if not mock.wait_for(lambda m: bool(m.replies_in("C0BENCH", ts)), timeout=CHILD_TIMEOUT):
            raise SystemExit(f"no Slack answer on {encoder}")
        answered = time.perf_counter() - t0
        return {
            "ready_s": round(ready, 2),
            "first_answer_s": round(answered, 2),
            "peak_rss_mb": peak_rss_mb(process.proc.pid),
        }
    finally:
        process.stop()
        mock.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="cold asks per encoder (default 5)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-encoder-"))
    dirs = {e: folder / e for e in ENCODERS}
    results: dict = {
        "benchmark": "issue 18: ONNX Runtime vs torch encoder",
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": f"{os.cpu_count()} cores",
        "load_at_start": round(os.getloadavg()[0], 2),
        "rounds": args.rounds,
    }
    per: dict[str, dict] = {e: {} for e in ENCODERS}

    # 1. the ONNX export (once per model), then a full ingest with each encoder
    model_export = (
        "from advisor.config import Settings; from advisor.embedding import make_embeddings; "
        "from advisor.onnx_encoder import export_onnx; e = make_embeddings(Settings()); "
        "export_onnx(e.model_path, e.cache_dir, e.model_hash)"
    )
    seconds, peak, _ = timed([sys.executable, "-c", model_export], env_for(dirs["onnx"], "onnx"))
    per["onnx"]["export"] = {"seconds": round(seconds, 2), "peak_rss_mb": round(peak)}
    for encoder in ENCODERS:
        seconds, peak, _ = timed(
            advisor_cli("ingest", "--rebuild", "--quiet"), env_for(dirs[encoder], encoder)
        )
        per[encoder]["ingest"] = {"seconds": round(seconds, 2), "peak_rss_mb": round(peak)}
        print(f"{encoder}: ingest {seconds:.1f} s, {peak:.0f} MB", flush=True)
        timed(advisor_cli("ask", "--json", QUESTIONS[-1]), env_for(dirs[encoder], encoder))  # warm-up

    # 2. cold ask, the encoders taking turns
    cold: dict[str, list[tuple[float, float]]] = {e: [] for e in ENCODERS}
    for r in range(args.rounds):
        question = QUESTIONS[r % len(QUESTIONS)]
        for encoder in ENCODERS if r % 2 == 0 else ENCODERS[::-1]:
            seconds, peak, out = timed(
                advisor_cli("ask", "--json", question), env_for(dirs[encoder], encoder)
            )
            json.loads(out)  # an answer was printed
            cold[encoder].append((seconds, peak))
            print(f"{encoder}: cold ask {seconds:.2f} s, {peak:.0f} MB", flush=True)
    for encoder in ENCODERS:
        times = [s for s, _ in cold[encoder]]
        peaks = [p for _, p in cold[encoder]]
        per[encoder]["cold_ask"] = {
            "median_s": round(statistics.median(times), 2),
            "max_s": round(max(times), 2),
            "runs_s": [round(t, 2) for t in times],
            "peak_rss_median_mb": round(statistics.median(peaks)),
            "peak_rss_max_mb": round(max(peaks)),
        }

    # 3. warm ask in one process per encoder
    for encoder in ENCODERS:
        _, peak, out = timed(
            [sys.executable, "-c", WARM_CHILD, json.dumps(QUESTIONS)], env_for(dirs[encoder], encoder)
        )
        report = json.loads(out.strip().splitlines()[-1])
        times = report["times_ms"]
        per[encoder]["warm_ask"] = {
            "n": len(times),
            "p50_ms": round(statistics.median(times), 1),
            "p95_ms": round(percentile(times, 95), 1),
            "process_peak_rss_mb": round(peak),
            "torch_loaded": report["torch_loaded"],
        }
        print(f"{encoder}: warm ask {per[encoder]['warm_ask']}", flush=True)

    # 4. web page and Slack bot: start-up to first answer
    for encoder in ENCODERS:
        per[encoder]["web"] = web_start(dirs[encoder], encoder, QUESTIONS[2])
        per[encoder]["slack"] = slack_start(dirs[encoder], encoder, QUESTIONS[2])
        print(f"{encoder}: web {per[encoder]['web']}, slack {per[encoder]['slack']}", flush=True)

    torch, onnx = per["torch"], per["onnx"]
    ratios = {
        "cold_ask": onnx["cold_ask"]["median_s"] / torch["cold_ask"]["median_s"],
        "ask_peak_rss": onnx["cold_ask"]["peak_rss_median_mb"] / torch["cold_ask"]["peak_rss_median_mb"],
        "warm_ask_p95": onnx["warm_ask"]["p95_ms"] / torch["warm_ask"]["p95_ms"],
    }
    results["encoders"] = per
    results["ratios_onnx_over_torch"] = {k: round(v, 3) for k, v in ratios.items()}
    results["targets"] = {k: {"at_most": TARGETS[k], "met": ratios[k] <= TARGETS[k]} for k in TARGETS}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(table(results))
    print(f"wrote {RESULTS}")


# The Markdown table: (row label, section, field, ratio key or None, target), in order.
TABLE = [
    ("cold `ask`, median (s)", "cold_ask", "median_s", "cold_ask", "<= 0.3"),
    ("peak RSS of `ask`, median (MB)", "cold_ask", "peak_rss_median_mb", "ask_peak_rss", "<= 0.5"),
    ("warm `ask` p50 (ms)", "warm_ask", "p50_ms", None, ""),
    ("warm `ask` p95 (ms)", "warm_ask", "p95_ms", "warm_ask_p95", "<= 1.0"),
    ("web page: start to first answer (s)", "web", "first_answer_s", None, ""),
    ("web page: peak RSS by then (MB)", "web", "peak_rss_mb", None, ""),
    ("Slack bot: start to first answer (s)", "slack", "first_answer_s", None, ""),
    ("Slack bot: peak RSS by then (MB)", "slack", "peak_rss_mb", None, ""),
    ("ingest, full (s)", "ingest", "seconds", None, ""),
    ("ingest peak RSS (MB)", "ingest", "peak_rss_mb", None, ""),
    ("ONNX export, once per model (s)", "export", "seconds", None, ""),
]


def table(results: dict) -> str:
    encoders, ratios = results["encoders"], results["ratios_onnx_over_torch"]

    def cell(encoder: str, section: str, field: str) -> object:
        value = encoders[encoder].get(section, {}).get(field, "-")  # torch has no export
        return round(value) if field == "peak_rss_mb" and isinstance(value, float) else value

    lines = ["| | torch | ONNX | ONNX / torch | target |", "|---|---|---|---|---|"]
    for name, section, field, ratio, target in TABLE:
        shown = "" if ratio is None else f"{ratios[ratio]:.2f}"
        lines.append(
            f"| {name} | {cell('torch', section, field)} | {cell('onnx', section, field)} | {shown} | {target} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
