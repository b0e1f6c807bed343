"""The page's handlers called directly, without a server: ask, rate, browse the case studies."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from advisor.feedback import FeedbackStore
from advisor.web.handlers import (
    KEEP,
    NO_LIKE_INPUT,
    UNEXPECTED,
    PageHandlers,
    catalogue_problem,
    plain_history,
)
from advisor.web.render import render_evidence

QUESTION = "How did KardiaMobile reach patients?"


@pytest.fixture
def page(built_advisor, built_settings, tmp_path):
    return PageHandlers(
        built_advisor, built_settings, FeedbackStore(f"sqlite:///{tmp_path / 'feedback.sqlite3'}")
    )


def _like(index, liked):
    import gradio as gr

    return gr.LikeData(None, {"index": index, "value": "", "liked": liked})


# ---- the chat ------------------------------------------------------------------------
def test_ask_shows_the_question_at_once_then_the_cited_answer(page):
    turns = list(page.ask(QUESTION, [], [], [], {}))
    first, last = turns[0], turns[-1]
    assert first.history == [{"role": "user", "content": QUESTION}]
    assert first.evidence is KEEP and first.searched == "" and first.question == ""

    streamed = turns[1:-1]  # the text as it is written, the evidence left as it is until the end
    assert streamed and all(t.evidence is KEEP and t.searched is KEEP for t in streamed)
    assert all(t.history[-1]["role"] == "assistant" for t in streamed)

    assert [m["role"] for m in last.history] == ["user", "assistant"]
    record = last.answers["1"]
    assert last.answers["latest"] == record and record["question"] == QUESTION
    bubble = last.history[-1]["content"]
    shown = sorted({int(m) for m in re.findall(r"<sup class='cite-marker'>\[(\d+)\]</sup>", bubble)})
    assert shown and shown == [c["marker"] for c in record["citations"]]
    for marker in shown:
        assert f"id='cite-{marker}'" in last.evidence
    assert "<mark>" in last.evidence and "KardiaMobile" in last.evidence
    assert last.searched == "" and last.question == ""


def test_a_follow_up_is_searched_with_the_conversation(page):
    first = list(page.ask(QUESTION, [], [], [], {}))[-1]
    follow = list(page.ask("What about the evidence for it?", first.history, [], [], first.answers))[-1]
    assert len(follow.history) == 4 and follow.history[:2] == first.history
    assert follow.searched.startswith("**Searched for:**") and "KardiaMobile" in follow.searched
    assert set(follow.answers) == {"1", "3", "latest"} and follow.answers["latest"] == follow.answers["3"]


def test_filters_restrict_the_evidence(page):
    last = list(page.ask("What did they learn?", [], [], ["Lantum"], {}))[-1]
    assert "Lantum" in last.evidence and "KardiaMobile" not in last.evidence


@pytest.mark.parametrize(
    "question, needle",
    [
        ("", "empty"),
        ("x" * 100_000, "limit"),
        ("<script>alert('pwned')</script> how do I scale?", "&lt;script&gt;"),
    ],
)
def test_a_bad_question_gets_a_clear_message(page, question, needle):
    last = list(page.ask(question, [], [], [], {}))[-1]
    shown = last.history[0]["content"] + " " + last.history[-1]["content"]
    assert needle in shown and "<script>" not in shown
    assert last.history[-1]["role"] == "assistant"


def test_an_unexpected_failure_is_logged_and_the_user_told(page, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("the disk is on fire")

    monkeypatch.setattr(page.advisor, "stream", broken)
    last = list(page.ask(QUESTION, [], [], [], {}))[-1]
    assert last.history[-1] == {"role": "assistant", "content": UNEXPECTED}
    assert last.evidence is KEEP and last.answers == {}


def test_a_question_while_the_index_is_building_says_so(make_settings, tmp_path, built_advisor):
    from advisor.advisor import build_advisor
    from advisor.web.index_builder import IndexBuilder

    advisor = build_advisor(make_settings(), load=False, embedder=built_advisor.embedder)
    builder = IndexBuilder(advisor)  # not started: stands for a build in progress
    builder.stage, builder.done, builder.total = "Embedding passages", 40, 450
    page = PageHandlers(
        advisor, make_settings(), FeedbackStore(f"sqlite:///{tmp_path / 'f.sqlite3'}"), builder
    )
    turns = list(page.ask("How do I scale?", [], [], [], {}))
    assert len(turns) == 1
    reply = turns[0].history[-1]["content"]
    assert "still building" in reply and "40/450" in reply
    assert turns[0].evidence == render_evidence(None) and turns[0].answers == {}
    assert "40/450" in page.banner()
    assert page.filter_choices() == ([], []) and "being built" in page.library()
    assert "being built" in page.explorer().card and page.explorer().names == []


def test_a_new_conversation_empties_everything(page):
    cleared = page.new_conversation()
    assert (cleared.history, cleared.searched, cleared.answers, cleared.question, cleared.status) == (
        [], "", {}, "", "",
    )  # fmt: skip
    assert cleared.evidence == render_evidence(None)


def test_the_advisor_gets_the_conversation_as_plain_text():
    history = [
        {"role": "user", "content": "R&amp;D &lt;costs&gt;?"},
        {"role": "assistant", "content": "Costs rose.<sup class='cite-marker'>[1]</sup>"},
        {"role": "user", "content": [{"type": "text", "text": "And <em>staff</em>?"}]},
        {"role": "assistant", "content": "The advisor is still building its library."},
    ]
    answers = {"1": {"answer": "Costs rose. [1]"}}
    assert plain_history(history, answers) == [
        {"role": "user", "content": "R&D <costs>?"},
        {"role": "assistant", "content": "Costs rose. [1]"},
        {"role": "user", "content": "And staff?"},
        {"role": "assistant", "content": "The advisor is still building its library."},
    ]


# ---- feedback --------------------------------------------------------------------------
def test_a_thumb_under_an_answer_stores_its_rating(page):
    last = list(page.ask("What role do clinical champions play?", [], [], [], {}))[-1]
    rated = page.rate(_like(1, False), "Too general for my case", last.answers)
    assert "saved" in rated.status and "not helpful" in rated.status and rated.comment == ""
    item = page.feedback.list()[-1]
    assert (item.verdict, item.comment, item.channel) == ("down", "Too general for my case", "web")
    assert item.question == "What role do clinical champions play?" and item.citations

    rated = page.rate(_like([1, 0], True), "", last.answers)  # a two-dimensional index
    assert "(helpful)" in rated.status and page.feedback.list()[-1].verdict == "up"
    assert len(page.feedback.list()) == 2


def test_a_thumb_that_is_not_on_an_answer_stores_nothing(page):
    last = list(page.ask("What role do clinical champions play?", [], [], [], {}))[-1]
    assert page.rate(_like(1, None), "", last.answers) == (KEEP, KEEP)  # clicked off again
    assert page.rate(_like(0, True), "a comment", last.answers) == (
        "Only answers can be rated; this message is not one.",
        KEEP,
    )
    assert page.feedback.list() == []


def test_rating_the_latest_answer(page):
    assert page.rate_latest("up", "x", {}) == ("Ask a question first: feedback is about an answer.", KEEP)
    last = list(page.ask(QUESTION, [], [], [], {}))[-1]
    rated = page.rate_latest("up", None, last.answers)
    assert rated.status.startswith("Thank you: feedback #") and "(helpful)" in rated.status
    item = page.feedback.list()[-1]
    assert (item.verdict, item.comment, item.question) == ("up", "", QUESTION)


# ---- the library and the case studies ---------------------------------------------------
def test_the_library_and_the_filters_list_the_reports(page, built_advisor):
    docs, cases = page.filter_choices()
    assert len(docs) == 5 and ("Lantum" in cases and "KardiaMobile" in cases)
    library = page.library()
    assert library.count("<tr>") == 6 and all(f"<code>{source}</code>" in library for _, source in docs)
    assert page.banner() == ""


def test_the_explorer_starts_with_every_case(page, built_advisor):
    catalogue = built_advisor.case_catalogue.current
    explorer = page.explorer()
    assert explorer.status == "" and explorer.names == [c.name for c in catalogue.cases]
    assert [row[0] for row in explorer.rows] == explorer.names
    assert explorer.count == f"All {len(catalogue)} case studies in the catalogue."
    assert explorer.reports[0] == ("Any", "") and len(explorer.reports) > 1
    assert all(choices[0] == ("Any", "") for choices in explorer.tags.values())
    for field_name, choices in explorer.like.items():  # each value some case has, with its count
        counts = Counter(v for case in catalogue.cases for v in case.values(field_name))
        assert [label for label, _ in choices] == [f"{v} ({counts[v]})" for _, v in choices]
        assert {v for _, v in choices} == set(counts)
    assert "Choose a case study" in explorer.card


@pytest.mark.parametrize(
    "tags",
    [
        {"innovation_type": "digital tool", "setting": "primary care"},
        {"mechanism": "clinical champions"},
        {"setting": "mental health"},
    ],
)
def test_filtering_cases_gives_the_catalogues_own_cases(page, built_advisor, tags):
    catalogue = built_advisor.case_catalogue.current
    wanted = {"innovation_type": "", "setting": "", "mechanism": "", **tags}
    table = page.filter_cases("", wanted["innovation_type"], wanted["setting"], wanted["mechanism"])
    expected = [c.name for c in catalogue.filter(**tags)]
    assert 0 < len(expected) < len(catalogue)
    assert [row[0] for row in table.rows] == expected
    assert table.count == f"{len(expected)} of {len(catalogue)} case studies match."


def test_filtering_cases_to_nothing_or_an_unknown_value_says_so(page):
    table = page.filter_cases("nuffield-2020-achieving-scale-and-spread.txt", "", "ambulance service", "")
    assert table.rows == [] and table.count.startswith("None of the")
    table = page.filter_cases("", "no such kind", "", "")
    assert table.rows == [] and "no such kind" in table.count


def test_a_case_card_by_name(page, built_advisor):
    case = built_advisor.case_catalogue.current.get("KardiaMobile")
    card = page.case_card("KardiaMobile")
    assert "<h3>KardiaMobile" in card and card.count("<details class='cite'>") == len(case.evidence)
    assert "Choose a case study" in page.case_card(None) and "Choose a case study" in page.case_card("")


def test_cases_like_mine_from_a_description_or_tags(page, built_advisor):
    results = page.cases_like("a mental health liaison team in an acute hospital", [], [], [])
    ranked = re.findall(r"<h4>\d+\. (.*?) <span class='score'>", results)
    assert ranked and ranked[0] == "RAID" and len(ranked) <= 5

    results = page.cases_like("", ["digital tool"], ["primary care"], None)
    ranked = re.findall(r"<h4>\d+\. (.*?) <span class='score'>", results)
    tags = {"innovation_type": ["digital tool"], "setting": ["primary care"]}
    assert ranked and ranked == [
        m.case.name for m in built_advisor.case_catalogue.current.like("", k=5, tags=tags)
    ]


def test_cases_like_mine_needs_a_description_or_a_tag_and_a_sane_length(page):
    assert NO_LIKE_INPUT in page.cases_like("   ", [], [], [])
    too_long = page.cases_like("x" * 100_000, [], [], [])
    assert "limit" in too_long and "score" not in too_long


def test_the_case_handlers_say_plainly_when_the_catalogue_is_broken(
    page, built_advisor, corpus_copy, monkeypatch
):
    from advisor.cases import CATALOGUE_NAME, CatalogueLoader

    (corpus_copy / CATALOGUE_NAME).write_text("cases: [unclosed\n", encoding="utf-8")
    broken = CatalogueLoader(corpus_copy)
    assert broken.reload() is None
    monkeypatch.setattr(built_advisor, "case_catalogue", broken)
    problem = catalogue_problem(built_advisor)
    assert "could not be loaded" in problem and "not valid YAML" in problem
    table = page.filter_cases("", "", "", "")
    assert table.rows == [] and "could not be loaded" in table.count
    assert "could not be loaded" in page.case_card("KardiaMobile")
    assert "could not be loaded" in page.cases_like("a digital tool", [], [], [])
    explorer = page.explorer()
    assert "could not be loaded" in explorer.status and explorer.names == [] and explorer.rows == []
