"""`advisor slack`: run the Slack bot in Socket Mode (default) or as an HTTP Events API endpoint."""

from __future__ import annotations

import logging

import typer

from advisor.config import Settings
from advisor.errors import ConfigError


def required_secrets(settings: Settings, http: bool) -> None:
    """Fail at start-up, naming the variable, when a secret the chosen mode needs is missing."""
    if settings.slack_bot_token is None:
        raise ConfigError(
            "SLACK_BOT_TOKEN is not set: the bot token (xoxb-...) from the app's OAuth & Permissions page."
        )
    if http and settings.slack_signing_secret is None:
        raise ConfigError(
            "SLACK_SIGNING_SECRET is not set: the signing secret from the app's Basic Information page."
        )
    if not http and settings.slack_app_token is None:
        raise ConfigError(
            "SLACK_APP_TOKEN is not set: Socket Mode needs an app-level token (xapp-...) with the "
            "connections:write scope; or run `advisor slack --http` with SLACK_SIGNING_SECRET."
        )


def slack(
    http: bool = typer.Option(
        False, "--http", help="Serve the Events API at /slack/events instead of Socket Mode."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="HTTP mode: address to bind."),
    port: int = typer.Option(3000, "--port", help="HTTP mode: port to listen on."),
) -> None:
    """Answer questions in Slack: mentions, direct messages and /advisor, with cited evidence."""
    from advisor.cli.common import err, user_errors
    from advisor.cli.common import open_advisor as _advisor

    with user_errors():
        settings = Settings()
        required_secrets(settings, http)  # before loading any model
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        from advisor.db import SharedAnswers, SharedDeduper
        from advisor.feedback import FeedbackStore
        from advisor.history import ConversationStore
        from advisor.slack.app import build_slack_app
        from advisor.slack.server import SlackHttpServer, serve_socket_mode

        advisor = _advisor(settings)
        advisor.warm_up()  # the model and the map's vectors load now, not on the first question
        store = FeedbackStore.from_settings(settings)
        app = build_slack_app(
            advisor,
            settings,
            store,
            socket_mode=not http,
            deduper=SharedDeduper(store.engine),  # replicas behind one Events URL answer an event once
            answers=SharedAnswers(store.engine),  # a feedback click on any replica finds the answer
            conversations=ConversationStore.from_settings(settings),  # answers kept, linked to the web page
        )
        if http:
            server = SlackHttpServer(app, host, port, settings=settings)
            err.print(f"Slack events endpoint: {server.url} (Ctrl-C to stop)", highlight=False)
            server.serve_forever()  # until Ctrl-C; closes its sockets on the way out
        else:
            assert settings.slack_app_token is not None
            err.print("Connecting to Slack in Socket Mode (Ctrl-C to stop).")
            serve_socket_mode(app, settings.slack_app_token.get_secret_value())


def register(app: typer.Typer) -> None:
    """Add `advisor slack` to the CLI."""
    app.command("slack")(slack)
