"""Serving the bolt App: the Events API over HTTP (a threaded WSGI server) or Slack's Socket Mode."""

from __future__ import annotations

import logging
import socketserver
import threading
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from slack_bolt import App

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    request_queue_size = 256  # a burst of events must not overflow the listen backlog


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)


class SlackHttpServer:
    """Bolt's Events API endpoint (`/slack/events`) on a threaded WSGI server."""

    def __init__(self, app: App, host: str = "127.0.0.1", port: int = 3000, path: str = EVENTS_PATH) -> None:
        from slack_bolt.adapter.wsgi import SlackRequestHandler

        self.path = path
        self.server = make_server(
            host,
            port,
            SlackRequestHandler(app, path=path),
            server_class=_ThreadingWSGIServer,
            handler_class=_QuietHandler,
        )
        self.host, self.port = self.server.server_address[:2]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{self.path}"

    def start(self) -> SlackHttpServer:
        """Serve in a background thread."""
        self._thread = threading.Thread(target=self.server.serve_forever, name="slack-http", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted."""
        self.server.serve_forever()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


def serve_socket_mode(app: App, app_token: str) -> None:
    """Connect to Slack over Socket Mode (an app-level xapp- token) and answer until interrupted."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    SocketModeHandler(app, app_token).start()
