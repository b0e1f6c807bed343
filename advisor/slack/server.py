"""Serving the bolt App: the Events API over HTTP (waitress, signature checked first) or Socket Mode.

An HTTP request reaches bolt only once `SignedRequests` has let it through, checked in this order:
- `POST` to the events path, or 405 / 404;
- a Content-Length of at most `slack_max_body_bytes`, or 413 (read from the headers: a larger body
  is never read);
- signed with the signing secret less than 5 minutes ago (`SignatureVerifier`, as bolt checks it),
  or 401: checked on the raw bytes, before anything is parsed, and a refused body is never logged;
- a JSON or form body that bolt's own parser reads as an object, or 400.
bolt's internal `X-Slack-Bolt-*` headers are dropped (they are not signed, and would let a replayed
request run a listener directly, past the replay check).

waitress bounds what a sender can hold: bodies are read on its event loop, not by the threads that
ack, so slow senders cannot starve acks; a request larger than `slack_max_body_bytes` gets 413 as
soon as waitress sees its headers (or, chunked, as soon as it grows past the limit); a request must
arrive whole within `slack_read_timeout` of its first byte, and a connection that sends nothing
is closed after `slack_read_timeout` of silence. Both times are checked about once a second, so a
slow or stalled sender is cut off (the connection closed, no answer) within about
`slack_read_timeout` + 2 s.
"""

from __future__ import annotations

import io
import logging
import math
import threading
import time
from collections.abc import Iterable
from typing import Any

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_bolt.request.internals import parse_body
from slack_sdk.signature import SignatureVerifier
from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer

from advisor.config import Settings
from advisor.errors import ConfigError

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
MIN_THREADS = 8  # acks take milliseconds: 8 ack a burst of 50 mentions within 0.1 s (bench_slack)
SLACK_BODY_TYPES = ("application/json", "application/x-www-form-urlencoded")


class SignedRequests:
    """WSGI app: the checks a request must pass before bolt parses it, then bolt's own handler."""

    def __init__(
        self, app: App, signing_secret: str, path: str = EVENTS_PATH, max_body_bytes: int = 1_000_000
    ):
        self.handler = SlackRequestHandler(app, path=path)
        self.verifier = SignatureVerifier(signing_secret)
        self.path = path
        self.max_body_bytes = max_body_bytes

    def __call__(self, environ: dict[str, Any], start_response) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != self.path:
            return _plain(start_response, "404 Not Found")
        if environ.get("REQUEST_METHOD") != "POST":
            return _plain(start_response, "405 Method Not Allowed", [("Allow", "POST")])
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if length < 0:
            return _plain(start_response, "400 Bad Request")
        if length > self.max_body_bytes:
            return _plain(start_response, "413 Content Too Large")
        raw = environ["wsgi.input"].read(length) if length else b""
        if len(raw) != length:  # the sender stopped short
            return _plain(start_response, "400 Bad Request")
        if not self.signed(raw, environ):
            return _plain(start_response, "401 Unauthorized")
        if not readable(raw, environ.get("CONTENT_TYPE") or ""):
            return _plain(start_response, "400 Bad Request")
        environ = {k: v for k, v in environ.items() if not k.startswith("HTTP_X_SLACK_BOLT_")}
        environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(raw), str(len(raw))
        try:
            return self.handler(environ, start_response)
        except Exception:  # bolt handles its listeners' errors: this is bolt itself failing
            log.exception("bolt failed on a signed %s request (body not logged)", environ.get("CONTENT_TYPE"))
            return _plain(start_response, "500 Internal Server Error")

    def signed(self, raw: bytes, environ: dict[str, Any]) -> bool:
        """Signed with the signing secret less than 5 minutes ago (Slack's v0 signature)."""
        timestamp = environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP")
        signature = environ.get("HTTP_X_SLACK_SIGNATURE")
        if not timestamp or not signature:
            return False
        try:
            return self.verifier.is_valid(raw.decode("utf-8"), timestamp, signature)
        except (ValueError, TypeError):  # no UTF-8, a timestamp that is no number, a non-ASCII signature
            return False


def readable(raw: bytes, content_type: str) -> bool:
    """A JSON or form body that bolt's own parser reads as a (non-empty) object."""
    if content_type.split(";")[0].strip().lower() not in SLACK_BODY_TYPES:
        return False
    try:  # bolt parses with the media type as sent (`extract_content_type`): parse exactly as it will
        body = parse_body(raw.decode("utf-8"), content_type.split(";")[0])
    except (ValueError, RecursionError):
        return False
    return isinstance(body, dict) and bool(body)


def _plain(start_response, status: str, headers: list[tuple[str, str]] | None = None) -> list[bytes]:
    body = status.split(" ", 1)[1].encode()
    start_response(
        status,
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))), *(headers or [])],
    )
    return [body]


class _Channel(HTTPChannel):
    """waitress's connection, remembering when the request it is reading began."""

    request_began = 0.0

    def received(self, data: bytes) -> bool:
        if self.request is None and data:
            self.request_began = time.time()  # waitress's clock: `maintenance` is given time.time()
        return super().received(data)


class _Server(TcpWSGIServer):
    """waitress's TCP server, also closing a connection whose request has not arrived whole within
    `read_timeout` of its first byte (waitress's own `channel_timeout` only counts silence)."""

    channel_class = _Channel
    read_timeout = 10.0

    def maintenance(self, now: float) -> None:
        """waitress's check (silent for `channel_timeout`) and ours (a request begun too long ago)."""
        idle_cutoff, read_cutoff = now - self.adj.channel_timeout, now - self.read_timeout
        # a copy: a worker thread that finds its client gone removes the channel from this dict
        for channel in list(self.active_channels.values()):
            if channel.requests:  # being answered
                continue
            if channel.last_activity < idle_cutoff or (
                channel.request is not None and channel.request_began < read_cutoff
            ):
                channel.will_close = True


class SlackHttpServer:
    """Bolt's Events API endpoint (`/slack/events`) on waitress, with the request checks and limits
    above. `settings` gives the signing secret and limits; by default the app's own
    (`build_slack_app` keeps them on `app.bot`)."""

    def __init__(
        self,
        app: App,
        host: str = "127.0.0.1",
        port: int = 3000,
        path: str = EVENTS_PATH,
        settings: Settings | None = None,
    ) -> None:
        if settings is None:
            bot = getattr(app, "bot", None)
            if bot is None:
                raise ValueError("SlackHttpServer needs settings=, or an app from build_slack_app")
            settings = bot.settings
        if settings.slack_signing_secret is None:
            raise ConfigError(
                "SLACK_SIGNING_SECRET is not set: the app's signing secret (Basic Information page)."
            )
        self.path = path
        self._map: dict = {}
        wsgi = SignedRequests(
            app, settings.slack_signing_secret.get_secret_value(), path, settings.slack_max_body_bytes
        )
        self.server = _Server(
            wsgi,
            map=self._map,
            host=host,
            port=port,
            threads=max(MIN_THREADS, settings.slack_workers),
            max_request_body_size=settings.slack_max_body_bytes + 1,  # waitress refuses >= its limit
            channel_timeout=math.ceil(settings.slack_read_timeout),
            cleanup_interval=1,
            ident="spread-advisor",
        )
        self.server.read_timeout = settings.slack_read_timeout
        self.host, self.port = str(self.server.effective_host), int(self.server.effective_port)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{self.path}"

    def start(self) -> SlackHttpServer:
        """Serve in a background thread."""
        self._thread = threading.Thread(target=self.serve_forever, name="slack-http", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted (Ctrl-C) or stopped."""
        try:
            self.server.run()  # returns on Ctrl-C, or once `stop` has closed every socket
        except Exception:
            log.exception("the Slack HTTP server stopped on an error")
            raise
        finally:
            wasyncore.close_all(self._map)
            self.server.task_dispatcher.shutdown()

    def stop(self) -> None:
        """Close the listening socket and every connection, and wait for the server to end."""
        if self._thread is not None and self._thread.is_alive():
            try:  # waitress's loop is not thread-safe: close its sockets from within it
                self.server.trigger.pull_trigger(lambda: wasyncore.close_all(self._map))
            except OSError:  # the trigger is closed already: the loop is ending by itself
                log.warning("the Slack HTTP server was already closing")
            self._thread.join(timeout=10)
        else:
            wasyncore.close_all(self._map)
            self.server.task_dispatcher.shutdown()


def serve_socket_mode(app: App, app_token: str) -> None:
    """Connect to Slack over Socket Mode (an app-level xapp- token) and answer until interrupted."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    SocketModeHandler(app, app_token).start()
