"""Start llama-cpp-python's OpenAI-compatible server (`python -m llama_cpp.server`) for the tests.

The same server and arguments as `python -m llama_cpp.server`, with llama.cpp's extra buffer
types (AMX kernels, weight repacking) switched off as the advisor's in-process backend does
(`advisor.llm.without_extra_buffers`): on this machine's virtual Xeon the CPU reports AMX and
llama.cpp's AMX matrix multiply crashes the server with a segmentation fault on the first decode
(llama-cpp-python 0.3.36, built natively); the plain CPU kernels are fine. Deployments run their
server as they like; the tests need one that works.

    python -m tests.local_llm --model model.gguf --host 127.0.0.1 --port 8080

`misbehaving_server(mode)` is the other kind of local server the tests and benchmarks need: an
OpenAI-compatible chat-completions endpoint on loopback that fails in one chosen way (rate limit,
error page, garbage, a hang, a stream that stalls) and records every request it was sent.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def server_command(model: Path, port: int) -> list[str]:
    """The command line that starts this server for Gemma 3 270M on 127.0.0.1:`port` (2 threads)."""
    return [
        sys.executable, "-m", "tests.local_llm", "--model", str(model), "--host", "127.0.0.1",
        "--port", str(port), "--n_ctx", "4096", "--chat_format", "gemma", "--n_threads", "2",
    ]  # fmt: skip


# The "500" mode's error page: text that must never reach a user (a trace id, paths, a stack).
ERROR_PAGE = (
    "<html><head><title>500 Internal Server Error</title></head><body><h1>Internal Server Error</h1>"
    "<pre>request id trace-7f3a9c: upstream pool exhausted\nTraceback (most recent call last):\n"
    + "".join(f'  File "/srv/llm/worker.py", line {n}, in handle\n' for n in range(100, 200))
    + "</pre></body></html>"
)
MODES = ("429", "500", "garbage", "hang", "stall", "500-then-hang")
HANG_SECONDS = 120.0  # longer than any bound under test; the server's threads are daemons


class MisbehavingEndpoint(BaseHTTPRequestHandler):
    """POST /v1/chat/completions that fails in the server's `mode`; each request is recorded.

    - `429`: rate limited (retry-after 0); `500`: an HTML error page (`ERROR_PAGE`);
    - `garbage`: 200 with a body that is not JSON;
    - `hang`: reads the request, then never answers;
    - `stall`: streams one token ("Partial"), then never sends another;
    - `500-then-hang`: the first request gets the error page, every later one hangs.
    """

    server: MisbehavingServer

    def do_POST(self):
        server = self.server
        self.rfile.read(int(self.headers.get("content-length", 0)))
        with server.lock:
            server.hits.append((time.monotonic(), self.path))
            first = len(server.hits) == 1
        mode = server.mode
        if mode == "500-then-hang":
            mode = "500" if first else "hang"
        if mode == "429":
            body = json.dumps({"error": {"message": "rate limited", "type": "rate_limit"}}).encode()
            self._send(429, "application/json", body, {"retry-after": "0"})
        elif mode == "500":
            self._send(500, "text/html", ERROR_PAGE.encode())
        elif mode == "garbage":
            self._send(200, "application/json", b"<html>this is not json</html>")
        elif mode == "stall":
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.end_headers()
            chunk = {
                "id": "stall",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": "any",
                "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Partial"}}],
            }
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
            server.released.wait(HANG_SECONDS)
        else:  # hang: accept, then say nothing until the client gives up
            server.released.wait(HANG_SECONDS)

    def _send(self, status: int, content_type: str, body: bytes, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class MisbehavingServer(ThreadingHTTPServer):
    """The server behind `MisbehavingEndpoint`: its mode, the requests it saw (monotonic time,
    path), and an event that releases the requests it is holding."""

    daemon_threads = True

    def __init__(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
        super().__init__(("127.0.0.1", 0), MisbehavingEndpoint)
        self.mode = mode
        self.hits: list[tuple[float, str]] = []
        self.lock = threading.Lock()
        self.released = threading.Event()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    @property
    def paths(self) -> list[str]:
        with self.lock:
            return [path for _, path in self.hits]


@contextmanager
def misbehaving_server(mode: str) -> Iterator[MisbehavingServer]:
    """A running `MisbehavingServer` on a free loopback port, stopped (hung requests released) after."""
    server = MisbehavingServer(mode)
    thread = threading.Thread(target=server.serve_forever, name=f"misbehaving-{mode}", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.released.set()
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    from llama_cpp.server.__main__ import main

    from advisor.llm import without_extra_buffers

    without_extra_buffers()
    main()
