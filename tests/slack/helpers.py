"""What the Slack tests share: the question, waiting for answers, raw HTTP, reading a catalogue layout."""

from __future__ import annotations

import html
import re
import socket

from advisor.slack.blocks import MAX_BLOCKS, escape_mrkdwn
from advisor.text import normalise_space
from tests.conftest import CORPUS

QUESTION = "How did KardiaMobile reach patients beyond the early adopters?"
MY_INNOVATION = "a digital tool for primary care, a small company"
ACK_SECONDS = 3.0


def answers_in(env, channel: str, thread_ts: str) -> list:
    """The replies in a thread that carry blocks (answers, not "looking" lines or polite replies)."""
    return [c for c in env.mock.replies_in(channel, thread_ts) if c.params.get("blocks")]


def wait_answers(env, channel: str, thread_ts: str, n: int = 1, timeout: float = 60.0) -> list:
    calls = env.mock.calls
    assert env.mock.wait_for(lambda m: len(answers_in(env, channel, thread_ts)) >= n, timeout), (
        f"no answer in {channel}/{thread_ts}: {[(c.method, c.params.get('text', '')[:80]) for c in calls]}"
    )
    return answers_in(env, channel, thread_ts)


def send_ok(status_body_time) -> None:
    status, body, seconds = status_body_time
    assert status == 200, body
    assert seconds < ACK_SECONDS


# ---------------------------------------------------------------------------------- raw HTTP
def raw_request(
    path: str = "/slack/events",
    body: bytes = b"",
    headers: dict[str, str | bytes] | None = None,
    method: str = "POST",
    content_length: int | None = None,
    chunked: bool = False,
) -> bytes:
    """An HTTP/1.1 request as bytes with `Connection: close`; header values given as bytes are sent
    as they are; a POST says its `content_length` (the body's own by default), or is `chunked`."""
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: 127.0.0.1", b"Connection: close"]
    for name, value in (headers or {}).items():
        lines.append(name.encode() + b": " + (value if isinstance(value, bytes) else value.encode()))
    if chunked:
        lines.append(b"Transfer-Encoding: chunked")
        pieces = [body[i : i + 500] for i in range(0, len(body), 500)] + [b""]
        body = b"".join(f"{len(p):x}".encode() + b"\r\n" + p + b"\r\n" for p in pieces)
    elif method == "POST":
        lines.append(f"Content-Length: {len(body) if content_length is None else content_length}".encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def exchange(server, data: bytes, timeout: float = 10.0) -> tuple[int, bytes]:
    """Send raw bytes and read until the server closes: (status, whole response). A server that
    neither answers nor closes within `timeout` fails the test (socket.timeout)."""
    with socket.create_connection((server.host, server.port), timeout=timeout) as sock:
        sock.sendall(data)
        return read_until_closed(sock)


def read_until_closed(sock: socket.socket) -> tuple[int, bytes]:
    """Everything the server sends until it closes the connection, and the status in it (0 if none)."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    response = b"".join(chunks)
    status = int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/") else 0
    return status, response


# ---------------------------------------------------------------------------------- catalogue layout
_CASE_TITLE = re.compile(r"^\*(\d+)\. (.+?)\*")
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_QUOTE = re.compile(r"^\*\[(\d+)\]\* “(.*)”(?: — _(.*)_)?$", re.DOTALL)


def cases_in(blocks: list[dict]) -> list[tuple[int, str, str, list[dict]]]:
    """(rank, case name, section text, the context blocks beneath it) for each case section."""
    cases: list[tuple[int, str, str, list[dict]]] = []
    for block in blocks:
        text = block["text"]["text"] if block["type"] == "section" else ""
        title = _CASE_TITLE.match(text)
        if title:
            cases.append((int(title.group(1)), html.unescape(title.group(2)), text, []))
        elif block["type"] == "context" and cases and quotes_in([block]):
            cases[-1][3].append(block)
    return cases


def quotes_in(contexts: list[dict]) -> list[tuple[int, str, str]]:
    """(marker, quote, section and page) for each quoted sentence in evidence context blocks."""
    found = []
    for block in contexts:
        for element in block["elements"]:
            m = _QUOTE.match(element["text"])
            if m:
                found.append((int(m.group(1)), html.unescape(m.group(2)), m.group(3) or ""))
    return found


def assert_catalogue_layout(blocks: list[dict], record: dict) -> list[tuple[int, str, str, list[dict]]]:
    """One section per case, each followed by evidence whose quotes are the answer's and in the corpus."""
    assert len(blocks) <= MAX_BLOCKS
    assert blocks[-1]["type"] == "actions"
    assert [e["action_id"] for e in blocks[-1]["elements"]] == [
        "advisor_feedback_up",
        "advisor_feedback_down",
    ]
    cases = cases_in(blocks)
    assert [rank for rank, *_ in cases] == list(range(1, len(cases) + 1))
    by_marker = {c["marker"]: c for c in record["citations"]}
    reports = {}
    for _, name, text, contexts in cases:
        assert len(text) <= 3000
        quotes = quotes_in(contexts)
        assert contexts and quotes, name
        for context in contexts:
            assert len(context["elements"]) <= 10
            assert all(len(e["text"]) <= 2000 for e in context["elements"])
        head = contexts[0]["elements"][0]["text"]  # report title and case study, once
        for marker, quote, where in quotes:
            cited = by_marker[marker]
            assert f"[{marker}]" in text  # the case's own rows carry the marker
            assert cited["case_study"] == name and quote == cited["quote"]
            source = cited["source"]
            if source not in reports:
                # as the catalogue reads the reports: white space normalised, markdown links as their text
                raw = (CORPUS / source).read_text(encoding="utf-8")
                reports[source] = normalise_space(_MD_LINK.sub(r"\1", raw))
            assert quote in reports[source]
            assert head == f"*{escape_mrkdwn(cited['title'])}* · case study: {escape_mrkdwn(name)}"
            if cited["section"] != name:
                assert escape_mrkdwn(cited["section"]) in where
            if cited["page"]:
                assert f"p. {cited['page']}" in where
    return cases
