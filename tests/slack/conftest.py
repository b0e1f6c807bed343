"""The Slack tests' environment: a mock Slack Web API, the real bolt app on loopback HTTP, a signed sender.

The advisor's real bolt app (real index, model and Chroma from `built_advisor`) serves its real
`/slack/events` endpoint on 127.0.0.1; the tests send it requests signed the way Slack signs them,
and a local server speaking Slack's Web API (tests/slack/slack_mock.py) records every reply it makes.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import pytest
from langchain_core.language_models import FakeListChatModel
from slack_bolt import App

from advisor.advisor import build_advisor
from advisor.config import Settings
from advisor.feedback import FeedbackStore
from advisor.history import ConversationStore
from advisor.slack.app import build_slack_app
from advisor.slack.server import SlackHttpServer
from tests.slack.slack_mock import BOT_TOKEN, SIGNING_SECRET, MockSlackWebApi, SlackSender


@dataclass
class SlackEnv:
    mock: MockSlackWebApi
    app: App
    server: SlackHttpServer
    store: FeedbackStore
    settings: Settings
    sender: SlackSender
    conversations: ConversationStore | None = None


@contextlib.contextmanager
def slack_env(advisor, make_settings, tmp_path, conversations: ConversationStore | None = None, **overrides):
    """The environment around `advisor`, keeping answers in `conversations` when given; `overrides`
    are further settings (e.g. slack_read_timeout)."""
    mock = MockSlackWebApi().start()
    settings = make_settings(
        slack_bot_token=BOT_TOKEN,
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=mock.api_url,
        db_url=f"sqlite:///{tmp_path / 'feedback.sqlite3'}",
        slack_workers=2,
        **overrides,
    )
    store = FeedbackStore(settings.database_url)
    app = build_slack_app(advisor, settings, store, conversations=conversations)
    server = SlackHttpServer(app, "127.0.0.1", 0).start()
    try:
        yield SlackEnv(mock, app, server, store, settings, SlackSender(server.url), conversations)
    finally:
        server.stop()
        mock.stop()


@pytest.fixture
def slack(built_advisor, make_settings, tmp_path):
    """Mock Slack Web API + the advisor's bolt app on a loopback HTTP endpoint + a signed sender."""
    with slack_env(built_advisor, make_settings, tmp_path) as env:
        yield env


@pytest.fixture
def make_slack(built_advisor, make_settings, tmp_path):
    """Starts `slack`'s environment with further settings (e.g. `slack_read_timeout=1`), and a
    `conversations=` store to keep answers in; returns it."""
    with contextlib.ExitStack() as stack:

        def start(**overrides) -> SlackEnv:
            return stack.enter_context(slack_env(built_advisor, make_settings, tmp_path, **overrides))

        yield start


STREAM_SECONDS = 6.0  # how long the fake model takes to write its reply, a character at a time


@pytest.fixture
def llm_slack(built_advisor, built_settings, make_settings, tmp_path):
    """Starts the Slack app around an advisor over the shared index whose LLM is a fake model
    streaming `reply` a character at a time over about `seconds`; as `slack` is around the
    extractive one. Returns the `SlackEnv`."""
    settings = built_settings.model_copy(
        update={"llm_backend": "openai", "llm_base_url": "http://127.0.0.1:9/v1", "llm_model": "x"}
    )
    with contextlib.ExitStack() as stack:

        def start(reply: str, seconds: float = STREAM_SECONDS) -> SlackEnv:
            model = FakeListChatModel(responses=[reply], sleep=seconds / len(reply))
            advisor = build_advisor(settings, embedder=built_advisor.embedder, chat_model=model)
            return stack.enter_context(slack_env(advisor, make_settings, tmp_path))

        yield start
