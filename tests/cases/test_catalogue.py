"""The catalogue as the advisor serves it: quote anchors in the index, routing, reloads."""

from __future__ import annotations

from types import SimpleNamespace

from advisor.cases import CatalogueLoader, anchor_quotes
from tests.cases.helpers import BROKEN, mutate


def test_every_quote_is_in_an_indexed_chunk_of_its_case_study(built_advisor, advisor_catalogue):
    anchors = anchor_quotes(advisor_catalogue.cases, built_advisor.index.chunks)
    missing = [
        (c.name, e.field, e.quote)
        for c in advisor_catalogue.cases
        for e in c.evidence
        if (c.name, e.quote) not in anchors or anchors[(c.name, e.quote)].case_study != c.name
    ]
    assert missing == []


def test_the_previous_catalogue_keeps_serving_after_a_broken_reload(corpus_copy, caplog):
    loader = CatalogueLoader(corpus_copy)
    first = loader.reload()
    assert first is not None and len(first) == 23
    mutate(corpus_copy, BROKEN["unknown tag"][0])
    assert loader.reload() is first
    assert "unknown tag 'hospital'" in loader.error
    assert "previous catalogue keeps serving" in caplog.text


def test_an_advice_question_about_champions_is_not_read_as_one_across_cases(built_advisor):
    question = "What role do clinical champions play in spreading an innovation?"
    assert built_advisor.case_catalogue.current.read(question) is None
    answer = built_advisor.ask(question)
    assert answer.route == "passages" and answer.passages  # the route model keeps it off the map too


def test_stream_yields_the_table_then_the_answer(built_advisor):
    events = list(built_advisor.stream("How many case studies are digital tools?"))
    assert isinstance(events[0], str) and events[0].startswith("8 of the 23")
    assert events[-1].route == "catalogue" and events[-1].timings_ms["total"] >= 0


def test_anchors_are_cached_per_index_generation(built_advisor, catalogue):
    index = built_advisor.index
    first = catalogue.anchors(index)
    assert catalogue.anchors(SimpleNamespace(generation=index.generation, chunks=[])) is first
    assert catalogue.anchors(SimpleNamespace(generation="another", chunks=[])) == {}


def test_an_absent_catalogue_is_not_an_error(tmp_path):
    loader = CatalogueLoader(tmp_path)
    assert loader.reload() is None and loader.error is None
