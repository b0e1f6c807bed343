"""Fixtures for the web page's tests: the app served on loopback, a client, the catalogue."""

from __future__ import annotations

import html
import re

import pytest

from advisor.feedback import FeedbackStore
from advisor.text import normalise_space
from advisor.web.app import build_ui, serve
from tests.conftest import free_port

_ITEM = re.compile(
    r"<details class='cite'><summary>.*?<div class='quote'>“(.*?)”</div>.*?</summary>"
    r"<div class='passage'>(.*?)</div></details>",
    re.DOTALL,
)


@pytest.fixture(scope="module")
def ui(built_advisor, built_settings, tmp_path_factory):
    """The app served on a free loopback port, with its own feedback database."""
    feedback = FeedbackStore(f"sqlite:///{tmp_path_factory.mktemp('ui') / 'feedback.sqlite3'}")
    port = free_port()
    demo = build_ui(built_advisor, built_settings, feedback)
    serve(demo, built_settings, port=port, block=False)
    yield f"http://127.0.0.1:{port}/", feedback
    demo.close()


@pytest.fixture
def client(ui):
    from gradio_client import Client

    return Client(ui[0], verbose=False)


@pytest.fixture(scope="module")
def catalogue(built_advisor):
    catalogue = built_advisor.case_catalogue.current
    assert catalogue is not None, built_advisor.case_catalogue.error
    return catalogue


def message_text(message) -> str:
    """The text of a chat message as the API returns it (a string or a list of parts)."""
    content = message["content"]
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content)


def plain(markup: str) -> str:
    """The text a reader sees in some markup: tags dropped, entities read, white space normalised."""
    return normalise_space(html.unescape(re.sub(r"<[^>]+>", "", markup)))


def quotes_and_passages(markup: str) -> list[tuple[str, str, str]]:
    """(quote, highlighted text, passage text) for every quote that opens onto its passage."""
    items = []
    for quote, passage in _ITEM.findall(markup):
        marked = re.findall(r"<mark>(.*?)</mark>", passage, re.DOTALL)
        items.append((plain(quote), plain(" ".join(marked)), plain(passage)))
    return items
