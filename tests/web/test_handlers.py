"""The page's handlers called directly, without a server: ask, rate, browse the case studies."""

from __future__ import annotations

import re
import time
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


def test_feedback_the_database_refuses_is_kept_and_the_user_told(page, tmp_path, monkeypatch):
    """The database locked past its busy timeout (0.2 s here, 30 s in use): Gradio's generic
    error and a lost comment before; now the rating and comment are kept, the user is told, and
    they are stored once the database is free."""
    import sqlite3

    from advisor import db, feedback

    monkeypatch.setattr(db, "SQLITE_BUSY_MS", 200)
    monkeypatch.setattr(feedback, "RETRY_DELAYS", (0.2,))
    page.feedback = FeedbackStore(
        f"sqlite:///{tmp_path / 'locked.sqlite3'}", outbox=tmp_path / "feedback-outbox.jsonl"
    )
    last = list(page.ask(QUESTION, [], [], [], {}))[-1]
    lock = sqlite3.connect(tmp_path / "locked.sqlite3", isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        rated = page.rate_latest("down", "It missed the cost", last.answers)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert rated.status.startswith("The feedback database is busy") and "kept" in rated.status
    assert rated.comment == ""  # kept with the rating: a second click would store it twice
    page.feedback.outbox.retry_now()
    deadline = time.monotonic() + 30
    while page.feedback.outbox.pending() and time.monotonic() < deadline:
        time.sleep(0.1)
    item = page.feedback.list()[-1]
    assert (item.verdict, item.comment, item.question) == ("down", "It missed the cost", QUESTION)


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


# ---- the guidance tab and guidance answers in the chat ------------------------------------
FUNDING = "How should I fund my innovation after the pilot money runs out?"


@pytest.fixture
def guidance(built_advisor):
    holder = built_advisor.guidance.guidance
    assert holder.current is not None, holder.error
    return holder


def _themes_shown(markup: str) -> list[str]:
    return re.findall(r"<details class='theme' id='theme-([^']+)'>", markup)


def test_the_guidance_tab_lists_every_theme_with_its_quoted_points(page, built_advisor, guidance):
    from markupsafe import escape

    from advisor.text import normalise_space
    from tests.web.conftest import quotes_and_passages

    markup = page.guidance("", "")
    themes = guidance.current.themes
    points = guidance.current.points
    assert _themes_shown(markup) == [t.id for t in themes] and len(themes) >= 25
    assert f"{len(themes)} of {len(themes)} themes, {len(points)} quoted points." in markup
    for theme in themes:
        assert f"<span class='title'>{escape(theme.title)}</span>" in markup
        assert f"<div class='statement'>{escape(theme.statement)}</div>" in markup
        if theme.cases:
            assert f"<b>Case studies that show it:</b> {escape(', '.join(theme.cases))}</p>" in markup
    for p in points:  # the paraphrase, the verbatim quote and where it is
        assert (
            f"<span class='value'>{escape(p.point)}</span><div class='quote'>“{escape(p.quote)}”</div>"
            in markup
        )
        assert f"{escape(p.section)} · line {p.line}" in markup, p.quote
    anchors = built_advisor.guidance.anchors(built_advisor.index)
    anchored = [p for p in points if (p.source, p.quote) in anchors]
    assert len(anchored) >= len(points) - 5
    items = quotes_and_passages(markup)
    assert [quote for quote, _, _ in items] == [p.quote for p in anchored]  # one click to each passage
    for (quote, marked, passage), p in zip(items, anchored):
        assert marked == quote and quote in passage
        assert passage == normalise_space(anchors[(p.source, p.quote)].text)
    assert markup.count("This quote is not in the current index") == len(points) - len(anchored)


@pytest.mark.parametrize(
    "audience, stage",
    [("commissioners", ""), ("", "sustaining"), ("policy-makers", "before-pilot"), ("adopters", "scaling")],
)
def test_the_guidance_filters_give_the_maps_own_themes_and_points(page, guidance, audience, stage):
    from tests.web.conftest import quotes_and_passages

    markup = page.guidance(audience, stage)
    expected = guidance.themes(audience=audience or None, stage=stage or None)
    assert 0 < len(expected) < len(guidance.current)
    assert _themes_shown(markup) == [t.id for t in expected]
    shown = [quote for quote, _, _ in quotes_and_passages(markup)]
    wanted = [p.quote for t in expected for p in t.points]
    assert set(shown) <= set(wanted) and len(shown) >= len(wanted) - 5
    assert all(p.concerns(audience or None, stage or None) for t in expected for p in t.points)
    points = sum(len(t.points) for t in expected)
    assert f"{len(expected)} of {len(guidance.current)} themes, {points} quoted points " in markup


def test_the_guidance_filter_choices_count_the_themes(page, guidance):
    from advisor.guidance import AUDIENCES, STAGES

    choices = page.guidance_choices()
    assert choices.status == ""
    assert choices.audiences[0] == ("Any", "") and choices.stages[0] == ("Any", "")
    assert [v for _, v in choices.audiences[1:]] == list(AUDIENCES)
    assert [v for _, v in choices.stages[1:]] == list(STAGES)
    commissioners = len(guidance.themes(audience="commissioners"))
    assert (f"Commissioners and system leaders ({commissioners})", "commissioners") in choices.audiences
    assert (
        f"Before a pilot ({len(guidance.themes(stage='before-pilot'))})",
        "before-pilot",
    ) in choices.stages
    for label, value in choices.audiences[1:]:
        assert label.endswith(f" ({len(guidance.themes(audience=value))})")
    for label, value in choices.stages[1:]:
        assert label.endswith(f" ({len(guidance.themes(stage=value))})")


@pytest.mark.parametrize(
    "audience, stage, needle",
    [
        ("bankers", "", "unknown audience &#39;bankers&#39;; choose one of: innovators, adopters"),
        ("", "retirement", "unknown stage &#39;retirement&#39;; choose one of: before-pilot"),
        ("<b>x</b>", "", "unknown audience &#39;&lt;b&gt;x&lt;/b&gt;&#39;"),
    ],
)
def test_an_unknown_guidance_filter_value_says_so(page, audience, stage, needle):
    markup = page.guidance(audience, stage)
    assert needle in markup and "<details" not in markup and "<b>x" not in markup
    assert markup.startswith("<div class='evidence guidance'><p class='none'>")


def test_the_guidance_json_is_the_maps_own(page, guidance):
    assert page.guidance_json("", "", "") == [t.to_json() for t in guidance.current.themes]
    assert page.guidance_json("commissioners", "scaling", "") == [
        t.to_json() for t in guidance.themes(audience="commissioners", stage="scaling")
    ]
    [one] = page.guidance_json("", "", "Involve patients and the public")  # a theme by its title
    assert one["theme"] == "patients-and-public" and one["points"][0]["quote"]
    assert set(one) == {"theme", "title", "statement", "audiences", "stages", "points", "cases"}
    error = page.guidance_json("", "", "no-such-theme")
    assert set(error) == {"error"} and error["error"].startswith("unknown theme 'no-such-theme'")
    assert "start-from-the-problem" in error["error"]
    assert page.guidance_json("bankers", "", "")["error"].startswith("unknown audience 'bankers'")


def test_the_guidance_tab_says_plainly_when_the_map_is_broken(page, built_advisor, corpus_copy, monkeypatch):
    from advisor.guidance import GUIDANCE_NAME, Guidance

    (corpus_copy / GUIDANCE_NAME).write_text("themes: [unclosed\n", encoding="utf-8")
    broken = Guidance(corpus_copy)
    assert broken.reload() is None and broken.error
    monkeypatch.setattr(built_advisor.guidance, "guidance", broken)
    markup = page.guidance("", "")
    assert "The guidance map could not be loaded" in markup and "<details" not in markup
    choices = page.guidance_choices()
    assert "could not be loaded" in choices.status
    assert choices.audiences == [("Any", "")] and choices.stages == [("Any", "")]
    assert page.guidance_json("", "", "")["error"].startswith("The guidance map could not be loaded")


def test_a_guidance_answer_shows_its_heading_and_one_point_per_line(page):
    import html

    last = list(page.ask(FUNDING, [], [], [], {}))[-1]
    record = last.answers["1"]
    assert record["route"] == "guidance" and record["heading"] and len(record["rows"]) >= 3
    bubble = last.history[-1]["content"]
    head, rows, note = bubble.split("\n\n")
    assert head == html.escape(record["heading"], quote=False) and "cite-marker" not in head
    lines = rows.split("\n")
    assert len(lines) == len(record["rows"])
    for line, row in zip(lines, record["rows"]):
        text = html.escape(row["text"], quote=False)
        if row["case"] and row["case"] not in row["text"]:
            text = f"<strong>{html.escape(row['case'], quote=False)}</strong>: {text}"
        shown = "".join(f"<sup class='cite-marker'>[{m}]</sup>" for m in row["markers"])
        assert line == f"- {text}{shown}"
    assert (
        note
        == "<em>Answered from the guidance map: what the reports advise on this theme, each point quoted.</em>"
    )
    for citation in record["citations"]:  # every point one click from its passage
        assert f"id='cite-{citation['marker']}'" in last.evidence
    assert last.evidence.count("<mark>") == len(record["citations"])
