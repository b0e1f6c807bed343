"""The web page through gradio_client against the real app on loopback."""

from __future__ import annotations

import html
import re

import pytest
from markupsafe import escape

from advisor.feedback import FeedbackStore
from advisor.web.app import build_ui, parse_auth, serve
from tests.conftest import free_port
from tests.web.conftest import message_text as _text
from tests.web.conftest import plain as _plain
from tests.web.conftest import quotes_and_passages as _quotes_and_passages


def test_question_returns_a_cited_answer_with_evidence(client):
    history, evidence, searched, _ = client.predict(
        "How did KardiaMobile reach patients?", [], [], [], api_name="/ask"
    )
    answer = _text(history[-1])
    markers = re.findall(r"\[(\d+)\]</sup>", answer)
    assert markers, answer
    for marker in markers:
        assert f"id='cite-{marker}'" in evidence
    assert "<mark>" in evidence and "KardiaMobile" in evidence
    assert searched == ""


def test_follow_up_uses_the_conversation(client):
    history, *_ = client.predict("How did KardiaMobile reach patients?", [], [], [], api_name="/ask")
    history2, _, searched, _ = client.predict(
        "What about the evidence for it?", history, [], [], api_name="/ask"
    )
    assert "Searched for:" in searched and "KardiaMobile" in searched
    assert len(history2) == 4


def test_filters_restrict_the_evidence(client):
    _, evidence, _, _ = client.predict("What did they learn?", [], [], ["Lantum"], api_name="/ask")
    assert "Lantum" in evidence
    assert "KardiaMobile" not in evidence


def test_feedback_is_stored_and_read_back(client, ui):
    _, feedback = ui
    before = len(feedback.list())
    client.predict("What role do clinical champions play?", [], [], [], api_name="/ask")
    status, comment = client.predict("Useful, but cite costs too", api_name="/feedback_down")
    assert "saved" in status and comment == ""
    items = feedback.list()
    assert len(items) == before + 1
    item = items[-1]
    assert (item.verdict, item.comment, item.channel) == ("down", "Useful, but cite costs too", "web")
    assert item.question == "What role do clinical champions play?" and item.citations


@pytest.mark.parametrize(
    "question,needle",
    [
        ("", "empty"),
        ("x" * 100_000, "limit"),
        ("<script>alert('pwned')</script> how do I scale?", "&lt;script&gt;"),
    ],
)
def test_bad_input_gets_a_clear_message(client, question, needle):
    history, *_ = client.predict(question, [], [], [], api_name="/ask")
    shown = _text(history[0]) + " " + _text(history[-1])
    assert needle in shown
    assert "<script>" not in shown
    history, *_ = client.predict("What is a spread partner?", [], [], [], api_name="/ask")
    assert "[1]" in _text(history[-1])  # and the app keeps serving


def test_question_while_the_index_is_building(make_settings, tmp_path, built_advisor):
    from gradio_client import Client

    from advisor.advisor import build_advisor
    from advisor.web.index_builder import IndexBuilder

    settings = make_settings()
    advisor = build_advisor(settings, load=False, embedder=built_advisor.embedder)
    builder = IndexBuilder(advisor)  # not started: stands for a build in progress
    builder.stage, builder.done, builder.total = "Embedding passages", 40, 450
    port = free_port()
    demo = build_ui(advisor, settings, FeedbackStore(f"sqlite:///{tmp_path / 'f.sqlite3'}"), builder)
    serve(demo, settings, port=port, block=False)
    try:
        history, *_ = Client(f"http://127.0.0.1:{port}/", verbose=False).predict(
            "How do I scale?", [], [], [], api_name="/ask"
        )
    finally:
        demo.close()
    reply = _text(history[-1])
    assert "still building" in reply and "40/450" in reply
    assert "40/450" in builder.banner()  # the line at the top of the page


def test_auth_pairs_are_parsed_and_malformed_ones_refused():
    from advisor.errors import ConfigError

    assert parse_auth("ann:secret,bob:pw:with:colons") == [("ann", "secret"), ("bob", "pw:with:colons")]
    assert parse_auth(None) is None
    with pytest.raises(ConfigError, match="ADVISOR_UI_AUTH"):
        parse_auth("justauser")


def test_nothing_outside_the_app_is_served(ui):
    import httpx

    url = ui[0]
    for path in ("gradio_api/file=/etc/passwd", "file=/etc/passwd", "gradio_api/file=../../pyproject.toml"):
        response = httpx.get(url + path, timeout=10)
        assert response.status_code in (403, 404), (path, response.status_code)
        assert "root:" not in response.text


# ---- case studies: the explorer, "cases like mine", catalogue answers in the chat -------------
NUFFIELD = "nuffield-2020-achieving-scale-and-spread.txt"


def test_case_explorer_lists_every_case(client, catalogue):
    table, count = client.predict("", "", "", "", api_name="/filter_cases")
    names = [row[0] for row in table["data"]]
    assert names == [c.name for c in catalogue.cases]
    assert len(names) == 23 and "23" in count
    assert table["headers"][:2] == ["Case study", "Report"]


@pytest.mark.parametrize(
    "source, innovation_type, setting, mechanism",
    [
        ("", "digital tool", "primary care", ""),
        (NUFFIELD, "", "", "clinical champions"),
        ("", "", "", "tariff or payment"),
        ("", "", "mental health", ""),
    ],
)
def test_case_explorer_filter_gives_the_catalogues_own_cases(
    client, catalogue, source, innovation_type, setting, mechanism
):
    table, count = client.predict(source, innovation_type, setting, mechanism, api_name="/filter_cases")
    picked = (("innovation_type", innovation_type), ("setting", setting), ("mechanism", mechanism))
    tags = {f: v for f, v in picked if v}
    expected = [c.name for c in catalogue.filter(source=source or None, **tags)]
    assert 0 < len(expected) < 23
    assert [row[0] for row in table["data"]] == expected
    assert count.startswith(f"{len(expected)} of 23")


def test_case_explorer_filter_with_no_case_says_so(client):
    table, count = client.predict(NUFFIELD, "", "ambulance service", "", api_name="/filter_cases")
    assert table["data"] == [] and "None of the 23" in count


def test_case_card_shows_every_quote_and_its_passage(client, catalogue):
    for case in catalogue.cases:
        card = client.predict(case.name, api_name="/case_card")
        assert f"<h3>{escape(case.name)}" in card
        text = _plain(card)
        for e in case.evidence:
            assert e.quote in text, (case.name, e.field, e.quote)
            assert f"line {e.line}" in card and escape(case.report) in card
        items = _quotes_and_passages(card)
        assert len(items) == len(case.evidence), case.name  # every quote opens onto its passage
        for quote, marked, passage in items:
            assert quote in passage, (case.name, quote)
            assert marked == quote, (case.name, quote, marked)


def test_cases_like_mine_ranks_cases_with_quotes_from_the_corpus(client):
    from advisor.text import normalise_space
    from tests.conftest import CORPUS

    description = "a mental health liaison team in an acute hospital"
    results = client.predict(description, [], [], [], api_name="/cases_like")
    ranked = re.findall(r"<h4>(\d+)\. (.*?) <span class='score'>score ([0-9.]+)</span></h4>", results)
    assert ranked and ranked[0][1] == "RAID"
    assert [int(n) for n, _, _ in ranked] == list(range(1, len(ranked) + 1))
    scores = [float(s) for _, _, s in ranked]
    assert scores == sorted(scores, reverse=True)
    for heading in ("Why it matched:", "What it did to spread:", "Where its context differs:"):
        assert results.count(heading) == len(ranked)
    corpus = " ".join(p.read_text(encoding="utf-8") for p in CORPUS.glob("*.txt"))
    # web links read as their text, as the catalogue reads them
    corpus = normalise_space(re.sub(r"\[([^\]]*)\]\(#\)", r"\1", corpus))
    items = _quotes_and_passages(results)
    assert len(items) >= 2 * len(ranked)  # each case cites its description and how it spread at least
    for quote, marked, passage in items:
        assert quote in corpus and quote in passage and marked == quote


def test_cases_like_mine_from_picked_tags(client, catalogue):
    results = client.predict("", ["digital tool"], ["primary care"], [], api_name="/cases_like")
    ranked = re.findall(r"<h4>\d+\. (.*?) <span class='score'>", results)
    tags = {"innovation_type": ["digital tool"], "setting": ["primary care"]}
    expected = catalogue.like("", k=5, tags=tags)
    assert ranked and ranked == [m.case.name for m in expected]


@pytest.mark.parametrize("description", ["a recipe for chocolate cake with strawberries", "zxqv blorp"])
def test_cases_like_mine_with_nothing_in_common_says_so(client, description):
    from advisor.cases import NO_SIMILAR_CASE

    results = client.predict(description, [], [], [], api_name="/cases_like")
    assert escape(NO_SIMILAR_CASE) in results
    assert "score" not in results and "<details" not in results


def test_cases_like_mine_needs_a_description_or_a_tag(client):
    results = client.predict("   ", [], [], [], api_name="/cases_like")
    assert "Describe your innovation" in results and "score" not in results


def test_catalogue_answer_shows_one_case_per_line(client, catalogue):
    question = "Which innovations spread through clinical champions?"
    history, *_ = client.predict(question, [], [], [], api_name="/ask")
    bubble = _text(history[-1])
    rows = [line for line in bubble.split("\n") if line.startswith("- ")]
    expected = [c.name for c in catalogue.filter(mechanism="clinical champions")]
    assert len(rows) == len(expected) >= 10
    for row, name in zip(rows, expected):
        assert row.startswith(f"- {html.escape(name, quote=False)} ("), row
        assert re.search(r"<sup class='cite-marker'>\[\d+\]</sup>$", row), row
    head = bubble.split("\n")[0]
    assert "case studies recorded with" in head and "cite-marker" not in head


def test_case_tabs_say_plainly_when_the_catalogue_is_broken(client, built_advisor, corpus_copy, monkeypatch):
    from advisor.cases import CATALOGUE_NAME, CatalogueLoader
    from advisor.web.handlers import catalogue_problem

    (corpus_copy / CATALOGUE_NAME).write_text("cases: [unclosed\n", encoding="utf-8")
    broken = CatalogueLoader(corpus_copy)
    assert broken.reload() is None
    monkeypatch.setattr(built_advisor, "case_catalogue", broken)
    assert "could not be loaded" in catalogue_problem(built_advisor)
    table, count = client.predict("", "", "", "", api_name="/filter_cases")
    assert table["data"] == [] and "could not be loaded" in count and "not valid YAML" in count
    assert "could not be loaded" in client.predict("KardiaMobile", api_name="/case_card")
    assert "could not be loaded" in client.predict("a digital tool", [], [], [], api_name="/cases_like")
    history, *_ = client.predict("What role do clinical champions play?", [], [], [], api_name="/ask")
    assert "[1]" in _text(history[-1])  # the chat keeps answering from the passages


# ---- the guidance map: its tab and its JSON endpoint ---------------------------------------------
def test_guidance_endpoint_gives_the_maps_themes_as_json(client, built_advisor):
    holder = built_advisor.guidance.guidance
    themes = client.predict("commissioners", "scaling", "", api_name="/guidance")
    expected = holder.themes(audience="commissioners", stage="scaling")
    assert themes == [t.to_json() for t in expected] and 0 < len(themes) < len(holder.current)
    [theme] = client.predict("", "", "patients-and-public", api_name="/guidance")
    assert theme == holder.theme("patients-and-public").to_json()
    assert client.predict("", "", "", api_name="/guidance") == [t.to_json() for t in holder.current.themes]
    error = client.predict("bankers", "", "", api_name="/guidance")
    assert error == {
        "error": "unknown audience 'bankers'; choose one of: innovators, adopters, commissioners, policy-makers"
    }


def test_guidance_tab_filters_its_themes(client, built_advisor):
    holder = built_advisor.guidance.guidance
    markup = client.predict("adopters", "sustaining", api_name="/filter_guidance")
    expected = holder.themes(audience="adopters", stage="sustaining")
    assert re.findall(r"<details class='theme' id='theme-([^']+)'>", markup) == [t.id for t in expected]
    assert len(_quotes_and_passages(markup)) >= sum(len(t.points) for t in expected) - 5
    # the dropdowns accept only their choices: another value is refused by name, the page keeps serving
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="not in the list of choices: \\['', 'before-pilot'"):
        client.predict("", "<script>x</script>", api_name="/filter_guidance")
    assert client.predict("", "", api_name="/filter_guidance").count("<details class='theme'") == len(
        holder.current
    )


# ---- the LLM path on the page: streamed draft, then flags on unsupported sentences ----
def test_an_llm_answer_streams_and_its_unsupported_sentence_is_flagged(
    built_advisor, built_settings, tmp_path
):
    from gradio_client import Client

    from tests.conftest import INVENTED as invented
    from tests.conftest import fake_llm_advisor

    question = "How did RAID spread across hospitals?"
    advisor, settings, quote = fake_llm_advisor(built_advisor, built_settings, question)

    demo = build_ui(advisor, settings, FeedbackStore(f"sqlite:///{tmp_path / 'feedback.sqlite3'}"))
    port = free_port()
    serve(demo, settings, port=port, block=False)
    try:
        job = Client(f"http://127.0.0.1:{port}/", verbose=False).submit(question, [], [], [], api_name="/ask")
        history, evidence, _, _ = job.result(timeout=300)
        drafts = [
            _text(out[0][-1]) for out in job.outputs() if out and out[0] and out[0][-1]["role"] == "assistant"
        ]
    finally:
        demo.close()

    # the model's text reached the page while it was being written, growing
    growing = [d for d in drafts if quote[:20] in html.unescape(d)]
    assert len({len(d) for d in growing}) >= 3, drafts[:5]
    final = html.unescape(_text(history[-1]))
    assert quote[:40] in final and invented in final
    assert "(unsupported)" in final  # the sentence no source backs is marked in the answer
    assert "Not supported by its sources (unsupported)" in html.unescape(evidence) and invented in evidence
