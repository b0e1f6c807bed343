"""The web page through gradio_client against the real app on loopback."""

from __future__ import annotations

import re

import pytest

from advisor.feedback import FeedbackStore
from advisor.ui import build_ui, parse_auth, plain_history, render_answer_markdown, serve, shown_question
from tests.conftest import free_port


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


def _text(message) -> str:
    content = message["content"]
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content)


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
    history2, _, searched, _ = client.predict("What about the evidence for it?", history, [], [], api_name="/ask")
    assert "Searched for:" in searched and "KardiaMobile" in searched
    assert len(history2) == 4


def test_filters_restrict_the_evidence(client):
    _, evidence, _, _ = client.predict(
        "What did they learn?", [], [], ["Lantum"], api_name="/ask"
    )
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
    [("", "empty"), ("x" * 100_000, "limit"), ("<script>alert('pwned')</script> how do I scale?", "&lt;script&gt;")],
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
    from advisor.ui import IndexBuilder

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


def test_answer_markup_is_escaped(built_advisor):
    answer = built_advisor.ask("What role do clinical champions play?")
    rendered = render_answer_markdown(answer)
    assert rendered.count("cite-marker") == len(answer.citations)


def test_nothing_outside_the_app_is_served(ui):
    import httpx

    url = ui[0]
    for path in ("gradio_api/file=/etc/passwd", "file=/etc/passwd", "gradio_api/file=../../pyproject.toml"):
        response = httpx.get(url + path, timeout=10)
        assert response.status_code in (403, 404), (path, response.status_code)
        assert "root:" not in response.text


def test_long_pastes_are_cut_in_the_bubble_and_markup_escaped():
    assert shown_question("<b>hi</b> & more") == "&lt;b&gt;hi&lt;/b&gt; &amp; more"
    shown = shown_question("y" * 100_000)
    assert len(shown) < 1000 and "100,000 characters" in shown
    assert "empty" in shown_question("")


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
