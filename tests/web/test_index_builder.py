"""The index built in the background: what the page says while it is built, or why it failed."""

from __future__ import annotations

from advisor.web.index_builder import IndexBuilder


def test_progress_is_shown_in_the_banner_and_the_chat(make_settings, built_advisor):
    from advisor.advisor import build_advisor

    advisor = build_advisor(make_settings(), load=False, embedder=built_advisor.embedder)
    builder = IndexBuilder(advisor)
    assert "starting" in builder.banner() and "(" not in builder.status()  # no count before the first step
    builder.stage, builder.done, builder.total = "Embedding <passages>", 40, 450
    assert builder.banner() == (
        "**Building the library of reports** - embedding &lt;passages&gt; (40/450). "
        "Questions are answered as soon as it is ready."
    )
    assert "still building" in builder.status() and "embedding <passages> (40/450)" in builder.status()


def test_a_failed_build_is_shown_escaped(make_settings, built_advisor):
    from advisor.advisor import build_advisor

    builder = IndexBuilder(build_advisor(make_settings(), load=False, embedder=built_advisor.embedder))
    builder.error = "no reports in <corpus> & nothing to index"
    assert (
        builder.banner()
        == "**The library could not be built:** no reports in &lt;corpus&gt; &amp; nothing to index"
    )
    assert builder.status() == "The library could not be built: no reports in <corpus> & nothing to index"


def test_start_loads_an_index_that_is_there_without_a_thread(built_advisor):
    builder = IndexBuilder(built_advisor)
    builder.start()
    assert builder._thread is None and built_advisor.ready
