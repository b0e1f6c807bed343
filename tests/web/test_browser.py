"""The web page in a real headless Chromium (Debian's), driven by Playwright."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import pytest

from advisor.feedback import FeedbackStore
from advisor.web.app import build_ui, serve
from tests.conftest import free_port

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="Debian's chromium is not installed (make test installs it)"
    ),
]


@pytest.fixture(scope="module")
def served(built_advisor, built_settings, tmp_path_factory):
    feedback = FeedbackStore(f"sqlite:///{tmp_path_factory.mktemp('browser') / 'feedback.sqlite3'}")
    port = free_port()
    demo = build_ui(built_advisor, built_settings, feedback)
    serve(demo, built_settings, port=port, block=False)
    yield f"http://127.0.0.1:{port}/", feedback
    demo.close()


@contextmanager
def loopback_page(url: str) -> Iterator:
    """A Chromium page opened on `url`; when done, every request it made must have stayed on loopback."""
    from playwright.sync_api import sync_playwright

    requests: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("request", lambda r: requests.append(r.url))
            page.goto(url, wait_until="load")
            yield page
        finally:
            browser.close()
    hosts = {urlparse(u).hostname for u in requests if u.startswith("http")}
    assert hosts <= {"127.0.0.1"}, f"the page reached outside: {hosts}"


def test_ask_open_a_citation_and_follow_up(served, output_dir):
    from playwright.sync_api import expect

    page_url, feedback = served
    with loopback_page(page_url) as page:
        expect(page.locator("#question textarea")).to_be_visible(timeout=60_000)

        question = page.locator("#question textarea")
        question.fill("How did innovators persuade late adopters to take up their product?")
        page.locator("#send").click()

        first = page.locator("#evidence details.cite").first
        expect(first).to_be_visible(timeout=60_000)
        expect(page.locator("#chat sup.cite-marker").first).to_be_visible()
        passage = first.locator(".passage")
        expect(passage).to_be_hidden()
        first.locator("summary").click()  # open the citation
        expect(passage).to_be_visible()
        expect(passage.locator("mark")).to_have_count(1)
        quote = first.locator(".quote").inner_text().strip("“” ")
        assert quote and quote in passage.inner_text()
        page.screenshot(path=str(output_dir / "answer-with-citation.png"), full_page=True)

        page.locator("#comment textarea").fill("Too general for my case")
        page.locator("#chat").get_by_role("button", name="Dislike").last.click()  # thumbs down
        expect(page.locator("#feedback-status")).to_contain_text("saved", timeout=30_000)
        stored = feedback.list()[-1]
        assert (stored.verdict, stored.comment) == ("down", "Too general for my case")
        assert stored.question.startswith("How did innovators persuade") and stored.citations

        question.fill("What about in primary care?")
        page.locator("#send").click()
        expect(page.locator("#searched")).to_contain_text("Searched for:", timeout=60_000)
        expect(page.locator("#searched")).to_contain_text("persuade late adopters")
        expect(page.locator("#chat .message-row, #chat [data-testid='bot']").last).to_be_visible()
        page.screenshot(path=str(output_dir / "follow-up.png"), full_page=True)

        page.locator("#question textarea").fill("<img src=x onerror=alert(1)> <b>bold</b>?")
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.locator("#send").click()
        expect(page.locator("#chat")).to_contain_text("<b>bold</b>", timeout=60_000)
        assert dialogs == []  # the markup was shown as text, never run

        page.get_by_role("tab", name="Library").click()
        expect(page.locator("#library tbody tr")).to_have_count(5)
        expect(page.locator("#library")).to_contain_text("KardiaMobile")
        page.screenshot(path=str(output_dir / "library.png"), full_page=True)

    assert (output_dir / "answer-with-citation.png").stat().st_size > 10_000


def test_case_studies_filter_open_a_card_and_a_quotes_passage(served, built_advisor, output_dir):
    from playwright.sync_api import expect

    catalogue = built_advisor.case_catalogue.current
    assert catalogue is not None
    primary = catalogue.filter(setting="primary care")
    with loopback_page(served[0]) as page:
        page.get_by_role("tab", name="Case studies").click()
        grid = page.locator("#cases-table [role=grid]")  # a virtual table: rows drawn as they scroll in
        rows = page.locator("#cases-table div[role=row]")
        # the row count includes the header row
        expect(grid).to_have_attribute("aria-rowcount", str(len(catalogue) + 1), timeout=60_000)
        expect(page.locator("#cases-count")).to_contain_text(f"All {len(catalogue)}")

        page.locator("#cases-setting input").click()
        page.get_by_role("option", name=f"primary care ({len(primary)})").click()
        expect(grid).to_have_attribute("aria-rowcount", str(len(primary) + 1), timeout=30_000)
        expect(rows).to_have_count(len(primary))
        expect(page.locator("#cases-count")).to_contain_text(f"{len(primary)} of {len(catalogue)}")
        cells = [rows.nth(i).locator("[role=gridcell]").first for i in range(len(primary))]
        shown = [cell.inner_text().strip() for cell in cells]
        assert shown == [c.name for c in primary]

        rows.nth(1).locator("[role=gridcell]").first.click()  # open the second case's card
        case = primary[1]
        card = page.locator("#case-card")
        expect(card.locator("h3")).to_contain_text(case.name, timeout=30_000)
        expect(card.locator("details.cite")).to_have_count(len(case.evidence))

        link = card.locator("details.cite").nth(1)
        passage = link.locator(".passage")
        expect(passage).to_be_hidden()
        link.locator(".open").click()  # "Show the passage"
        expect(passage).to_be_visible()
        expect(passage.locator("mark")).to_have_count(1)
        quote = " ".join(link.locator(".quote").inner_text().strip("“” ").split())
        assert quote and quote == " ".join(passage.locator("mark").inner_text().split())
        link.scroll_into_view_if_needed()
        page.screenshot(path=str(output_dir / "case-card.png"), full_page=True)

        page.get_by_role("tab", name="Cases like mine").click()
        description = "a digital tool for GP practices, made by a small company"
        page.locator("#like-text textarea").fill(description)
        page.locator("#like-find").click()
        matches = page.locator("#like-results .match")
        expect(matches.first).to_be_visible(timeout=60_000)
        assert 1 <= matches.count() <= 5
        expect(matches.first).to_contain_text("Why it matched")
        page.screenshot(path=str(output_dir / "cases-like-mine.png"), full_page=True)

    assert (output_dir / "case-card.png").stat().st_size > 10_000


def test_guidance_tab_filter_open_a_theme_and_a_points_passage(served, built_advisor, output_dir):
    from playwright.sync_api import expect

    holder = built_advisor.guidance.guidance
    every = holder.themes()
    for_commissioners = holder.themes(audience="commissioners")
    assert 0 < len(for_commissioners) < len(every)
    with loopback_page(served[0]) as page:
        expect(page.locator("#question textarea")).to_be_visible(timeout=60_000)
        page.get_by_role("tab", name="Guidance").click()
        themes = page.locator("#guidance-themes details.theme")
        expect(themes).to_have_count(len(every), timeout=60_000)
        expect(page.locator("#guidance-themes .count")).to_contain_text(
            f"{len(every)} of {len(every)} themes"
        )

        page.locator("#guidance-audience input").click()
        page.get_by_role(
            "option", name=f"Commissioners and system leaders ({len(for_commissioners)})"
        ).click()
        expect(themes).to_have_count(len(for_commissioners), timeout=30_000)
        titles = [themes.nth(i).locator("summary .title").first.inner_text() for i in range(themes.count())]
        assert titles == [t.title for t in for_commissioners]

        theme = themes.nth(1)
        point = theme.locator("details.cite").first
        expect(point).to_be_hidden()  # the points show when their theme is opened
        theme.locator("summary").first.click()
        expect(point).to_be_visible()
        passage = point.locator(".passage")
        expect(passage).to_be_hidden()
        point.locator(".open").click()  # "Show the passage"
        expect(passage).to_be_visible()
        expect(passage.locator("mark")).to_have_count(1)
        quote = " ".join(point.locator(".quote").inner_text().strip("“” ").split())
        assert quote == " ".join(passage.locator("mark").inner_text().split())
        assert quote in {p.quote for p in for_commissioners[1].points}
        point.scroll_into_view_if_needed()
        page.screenshot(path=str(output_dir / "guidance.png"), full_page=False)

    assert (output_dir / "guidance.png").stat().st_size > 10_000
