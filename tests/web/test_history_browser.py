"""Saved conversations and share links in a real headless Chromium (Debian's), driven by Playwright:
ask, reload and find the conversation; open its share link in a second browser (no cookie, read
only); download its brief; delete it, and the link says so."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urljoin, urlparse

import pytest

from advisor.feedback import FeedbackStore
from advisor.history import ConversationStore
from advisor.web.app import build_ui, serve
from tests.conftest import free_port
from tests.web.test_browser import CHROMIUM, FLAGS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="Debian's chromium is not installed (make test installs it)"
    ),
]

QUESTION = "What role do clinical champions play in spreading an innovation?"


@pytest.fixture(scope="module")
def served(built_advisor, built_settings, tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('history') / 'advisor.sqlite3'}"
    feedback = FeedbackStore(url)
    conversations = ConversationStore.open(url)
    port = free_port()
    demo = build_ui(built_advisor, built_settings, feedback, conversations=conversations)
    serve(demo, built_settings, port=port, block=False, conversations=conversations)
    yield f"http://127.0.0.1:{port}/", conversations
    demo.close()


@contextmanager
def two_browsers() -> Iterator:
    """Two browser contexts (separate cookies, as two people's browsers) of one Chromium; every
    request either made must stay on loopback."""
    from playwright.sync_api import sync_playwright

    requests: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS, headless=True)
        try:
            contexts = [browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)]
            contexts.append(browser.new_context(viewport={"width": 1200, "height": 900}))
            for context in contexts:
                context.on("request", lambda r: requests.append(r.url))
            yield contexts
        finally:
            browser.close()
    hosts = {urlparse(u).hostname for u in requests if u.startswith("http")}
    assert hosts <= {"127.0.0.1"}, f"the page reached outside: {hosts}"


def test_a_conversation_survives_a_reload_and_its_share_link_opens_read_only_elsewhere(served, output_dir):
    from playwright.sync_api import expect

    page_url, store = served
    with two_browsers() as (mine, theirs):
        page = mine.new_page()
        page.goto(page_url, wait_until="load")
        expect(page.locator("#question textarea")).to_be_visible(timeout=60_000)
        page.locator("#question textarea").fill(QUESTION)
        page.locator("#send").click()
        expect(page.locator("#evidence details.cite").first).to_be_visible(timeout=60_000)
        share = page.locator("#evidence p.share a").first
        expect(share).to_have_text("Link to this answer")
        share_url = urljoin(page_url, share.get_attribute("href"))

        page.reload(wait_until="load")  # the conversation is found again, from the server
        bubbles = page.locator("#chat .message")
        expect(page.locator("#chat")).to_contain_text(QUESTION, timeout=60_000)
        expect(page.locator("#chat sup.cite-marker").first).to_be_visible()
        expect(page.locator("#evidence details.cite").first).to_be_visible()
        assert bubbles.count() >= 2
        (saved,) = store.list()
        assert saved.title == QUESTION and saved.turns == 1

        page.locator("#history").get_by_text("Your conversations").click()  # the accordion
        page.locator("#history-title textarea, #history-title input").first.fill("Champions brief")
        page.locator("#history-rename").click()
        expect(page.locator("#history-status")).to_contain_text("Renamed", timeout=30_000)
        assert store.get(saved.id).title == "Champions brief"

        with page.expect_download() as got:
            page.locator("#history-links a", has_text="Markdown").click()
        brief = got.value.path().read_text(encoding="utf-8")
        assert QUESTION in brief and "References" in brief
        page.screenshot(path=str(output_dir / "history.png"), full_page=True)

        other = theirs.new_page()  # another browser: no cookie of mine
        response = other.goto(share_url, wait_until="load")
        assert response is not None and response.status == 200
        expect(other.locator("body")).to_contain_text(QUESTION)
        expect(other.locator("[id^='cite-']").first).to_be_attached()
        expect(other.locator("mark").first).to_be_visible()
        assert other.locator("textarea, input[type='text'], button").count() == 0  # read only
        other.screenshot(path=str(output_dir / "shared.png"), full_page=True)

        forged = other.goto(urljoin(page_url, f"conversations/{saved.id}/brief.md"))
        assert forged is not None and forged.status == 404  # not their conversation
        assert "Champions brief" not in other.content() and QUESTION not in other.content()

        page.locator("#history-delete").click()  # asks first
        expect(page.locator("#history-status")).to_contain_text("Press Delete again", timeout=30_000)
        assert len(store.list()) == 1
        page.locator("#history-delete").click()
        expect(page.locator("#history-status")).to_contain_text("Deleted", timeout=30_000)
        expect(page.locator("#chat")).not_to_contain_text(QUESTION)
        assert store.list() == []
        gone = other.goto(share_url, wait_until="load")
        assert gone is not None and gone.status == 404
        expect(other.locator("body")).to_contain_text(re.compile("deleted", re.IGNORECASE))
