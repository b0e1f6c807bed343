"""The web page and the Slack bot answer on the ONNX encoder without torch in the process (issue 18).

Each is started as users start it (`python app.py`, `advisor slack --http` against a local mock of
Slack's Web API) on an index built by `advisor ingest` with ADVISOR_ENCODER=onnx, asked one
question, and its memory map read from /proc: torch's shared library is never mapped. A process
that imports torch is checked the same way, so the check itself can fail.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from advisor.config import PROJECT_ROOT
from tests.services import advisor_env, ingest_into, slack_ready, start_slack, start_web, web_ready

pytestmark = [
    pytest.mark.model,
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads /proc/<pid>/maps"),
]

SMALL = ["against-the-odds-2018-news-release.txt", "nhs-confederation-2023-scaling-innovation.txt"]
QUESTION = "What are the three core pillars for adopting innovation?"


def torch_libraries(pid: int) -> list[str]:
    """The torch shared libraries mapped into a running process."""
    paths = {line.split()[-1] for line in Path(f"/proc/{pid}/maps").read_text().splitlines() if "/" in line}
    return sorted(p for p in paths if "/torch/lib/" in p or Path(p).name.startswith("libtorch"))


@pytest.fixture(scope="module")
def onnx_data(tmp_path_factory, encoder_cache_dir) -> dict:
    """Settings of two reports indexed by `advisor ingest` on the ONNX encoder, the export made
    beforehand (here or by an earlier test) in the session's cache, named explicitly."""
    corpus = tmp_path_factory.mktemp("small-corpus")
    for name in [*SMALL, "manifest.yaml"]:
        shutil.copy(PROJECT_ROOT / "corpus" / name, corpus / name)
    data = tmp_path_factory.mktemp("onnx-query-path")
    settings = {
        "ADVISOR_CORPUS_DIR": str(corpus),
        "ADVISOR_ENCODER": "onnx",
        "ADVISOR_ENCODER_CACHE_DIR": str(encoder_cache_dir),
    }
    ingest_into(data, **settings)
    return {"data": data, "settings": settings}


def test_the_check_finds_torch_in_a_process_that_loaded_it():
    script = "import sys, torch; print('ready', flush=True); sys.stdin.read()"
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        assert any("libtorch" in p for p in torch_libraries(proc.pid))
    finally:
        proc.communicate("", timeout=30)


def test_the_web_page_answers_without_torch(onnx_data):
    from gradio_client import Client

    process = start_web(onnx_data["data"], **onnx_data["settings"])
    try:
        process.wait_until(web_ready)
        outputs = Client(f"http://127.0.0.1:{process.port}/", verbose=False).predict(
            QUESTION, [], [], [], api_name="/ask"
        )
        assert "three core pillars" in json.dumps(outputs)
        assert torch_libraries(process.proc.pid) == []
    finally:
        process.stop()


def test_the_slack_bot_answers_without_torch(onnx_data):
    from tests.slack.slack_mock import BOT_TOKEN, SIGNING_SECRET, MockSlackWebApi, SlackSender, mention

    mock = MockSlackWebApi().start()
    process = start_slack(
        onnx_data["data"],
        **onnx_data["settings"],
        ADVISOR_SLACK_API_URL=mock.api_url,
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
    )
    try:
        process.wait_until(slack_ready)
        sender = SlackSender(f"http://127.0.0.1:{process.port}/slack/events")
        ts = f"{int(time.time())}.000100"
        status, _, _ = sender.post(
            sender.event_body(mention(QUESTION, channel="C0ONNX", ts=ts)), "application/json"
        )
        assert status == 200
        assert mock.wait_for(lambda m: bool(m.replies_in("C0ONNX", ts)), timeout=120)
        (reply,) = mock.replies_in("C0ONNX", ts)
        assert "three core pillars" in json.dumps(reply.params)
        assert torch_libraries(process.proc.pid) == []
    finally:
        process.stop()
        mock.stop()


def test_advisor_env_keeps_the_shared_export(monkeypatch, tmp_path):
    monkeypatch.setenv("ADVISOR_ENCODER_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("ADVISOR_K", "3")
    env = advisor_env()
    assert env["ADVISOR_ENCODER_CACHE_DIR"] == str(tmp_path) and "ADVISOR_K" not in env
