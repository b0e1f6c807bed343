"""The page over a damaged index: the embedded one rebuilt in the background, a Chroma server's
reported in the banner and the chat until it is rebuilt (copies of the session index, damaged)."""

from __future__ import annotations

import pytest

from advisor.advisor import build_advisor
from advisor.config import Settings
from advisor.feedback import FeedbackStore
from advisor.web.handlers import PageHandlers
from advisor.web.index_builder import IndexBuilder
from tests.test_damaged_index import (
    QUESTION,
    REBUILD,
    chroma_server,
    copy_index,
    damage,
    damaged_index_settings,
    one_report_corpus,
)


def _page(advisor, settings, builder, tmp_path) -> PageHandlers:
    return PageHandlers(
        advisor, settings, FeedbackStore(f"sqlite:///{tmp_path / 'feedback.sqlite3'}"), builder
    )


def test_the_page_rebuilds_a_damaged_embedded_index_in_the_background(
    built_advisor, built_settings, tmp_path
):
    settings = damaged_index_settings(built_settings, tmp_path)
    advisor = build_advisor(settings, embedder=built_advisor.embedder)  # the page opens at once
    builder = IndexBuilder(advisor)
    builder.start()
    assert builder._thread is not None
    assert builder.banner().startswith("**Rebuilding the damaged library of reports**")
    builder._thread.join(timeout=600)
    assert builder.error is None and advisor.ready
    page = _page(advisor, settings, builder, tmp_path)
    assert page.banner() == ""
    last = list(page.ask(QUESTION, [], [], [], {}))[-1]
    assert last.answers["latest"]["citations"] and "three core pillars" in last.answers["latest"]["answer"]


@pytest.mark.chroma_server
def test_a_damaged_index_on_a_chroma_server_is_reported_until_it_is_rebuilt(
    built_advisor, built_settings, tmp_path
):
    index_dir = copy_index(built_settings, tmp_path / "server-data")
    damage(index_dir, "header.bin")  # Chroma refuses to open such a segment (it never reads past it)
    with chroma_server(index_dir) as url:
        settings = Settings(
            corpus_dir=one_report_corpus(tmp_path / "one-report"),
            data_dir=tmp_path / "page-data",
            chroma_url=url,
            _env_file=None,
        )
        advisor = build_advisor(settings, embedder=built_advisor.embedder)
        builder = IndexBuilder(advisor)
        builder.start()
        assert builder._thread is None  # a server's index is shared: not rebuilt by the page
        page = _page(advisor, settings, builder, tmp_path)
        assert url in page.banner() and REBUILD in page.banner()

        [turn] = list(page.ask(QUESTION, [], [], [], {}))
        reply = turn.history[-1]["content"]
        assert turn.history[-1]["role"] == "assistant" and turn.answers == {}
        assert "is damaged" in reply and url in reply and REBUILD in reply

        # whoever runs the server rebuilds it (as `advisor ingest --rebuild` does); the next question is answered
        build_advisor(settings, load=False, embedder=built_advisor.embedder).ingest(rebuild=True)
        last = list(page.ask(QUESTION, [], [], [], {}))[-1]
        assert last.answers["latest"]["citations"]
        assert page.banner() == ""
