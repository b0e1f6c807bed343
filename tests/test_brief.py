"""The brief to take away: one numbered list of references for a whole conversation, in Markdown
and as a real Word document (read back with python-docx)."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from docx import Document

from advisor.brief import Reference, brief_docx, brief_markdown, references, report_urls
from advisor.history import Conversation, ConversationStore, EmptyConversationError, Owner
from tests.conftest import CORPUS
from tests.conversations import (
    CONFED,
    DAFNE_QUOTE,
    GENERATION,
    KARDIA_QUOTE,
    NUFFIELD,
    NUFFIELD_URL,
    ODDS,
    QUESTIONS,
    REFUSAL,
    SCHWARTZ_QUOTE,
    store_conversation,
)


@pytest.fixture
def store(tmp_path) -> ConversationStore:
    return ConversationStore.open(f"sqlite:///{tmp_path / 'history.sqlite3'}")


@pytest.fixture
def conversation(store) -> Conversation:
    return store_conversation(store)


@pytest.fixture
def urls() -> dict[str, str]:
    return report_urls(CORPUS)


def docx_paragraphs(data: bytes) -> list[str]:
    return [p.text for p in Document(io.BytesIO(data)).paragraphs]


def test_report_urls_come_from_the_manifest_only_where_it_gives_one(urls):
    assert urls[NUFFIELD] == NUFFIELD_URL
    assert ODDS not in urls and CONFED not in urls


def test_report_urls_of_a_broken_manifest_are_none(tmp_path, caplog):
    (tmp_path / "manifest.yaml").write_text("documents: [oops", encoding="utf-8")
    assert report_urls(tmp_path) == {}
    assert "no web addresses" in caplog.text
    assert report_urls(tmp_path / "missing") == {}


def test_references_are_deduplicated_by_report_section_and_page_and_numbered_in_order(conversation, urls):
    refs = references(conversation.turns, urls)
    assert [(r.number, r.source, r.section, r.page) for r in refs] == [
        (1, NUFFIELD, "KardiaMobile", "45"),
        (2, NUFFIELD, "Schwartz Rounds", "52"),
        (3, ODDS, "Dose Adjustment for Normal Eating (DAFNE)", "31"),
        (4, CONFED, "Practical considerations", ""),  # the refusal's closest passage is not cited
    ]
    assert refs[0].url == NUFFIELD_URL and refs[2].url == ""
    assert refs[0].publisher.startswith("Nuffield Trust") and refs[0].year == 2020


def test_a_reference_reads_as_in_a_business_case():
    full = Reference(
        1, "a.txt", "Scaling up", "Nuffield Trust", 2020, "Lessons", "ERAS+", "12", "https://x.org/r"
    )
    assert full.text() == (
        'Nuffield Trust (2020). Scaling up. Case study: ERAS+. Section: "Lessons", p. 12. '
        "Available at: https://x.org/r"
    )
    bare = Reference(2, "b.txt", "Against the odds?", section="Summary")
    assert bare.text() == 'Against the odds? (n.d.). Section: "Summary".'
    titled = replace(bare, publisher="The Health Foundation", year=2018)
    assert titled.text() == 'The Health Foundation (2018). Against the odds? Section: "Summary".'


def test_markdown_holds_every_question_answer_quote_and_reference(conversation, urls):
    text = brief_markdown(conversation, urls)
    assert text.startswith(f"# Brief: {QUESTIONS[0]}")
    for n, question in enumerate(QUESTIONS, start=1):
        assert f"## {n}. {question}" in text
    for reference in references(conversation.turns, urls):
        assert f"[{reference.number}] " in text
        for piece in (reference.title, reference.section, f"p. {reference.page}" if reference.page else ""):
            assert piece in text
    assert f"Available at: <{NUFFIELD_URL}>" in text
    assert text.count("Available at:") == 2  # the two Nuffield sections: only that report has an address
    # a quote is shown under an answer that does not already say it in the report's words: the
    # LLM's answer (the second), not the extractive one, whose sentences are the quotes
    assert text.count(f"> “{KARDIA_QUOTE}” [1]") == 1 and f"> “{DAFNE_QUOTE}” [3]" in text
    assert f"> “{SCHWARTZ_QUOTE}”" not in text
    assert f"**KardiaMobile**: “{KARDIA_QUOTE}” [1]" in text  # the report's words, marked as such
    assert "“Trained nurses" not in text  # the LLM's own sentence is not
    # the second answer's own markers 1 and 2 are the brief's references 3 and 1
    assert "Trained nurses and dietitians delivered the courses. [3, 1]" in text
    assert "It spread to every hospital in Europe. *(unsupported)* [3]" in text
    assert "- DAFNE: courses run by specialist nurses. [3]" in text
    assert f"Answered 1 March 2025, 12:00 UTC; index {GENERATION}" in text
    assert REFUSAL in text and "declined to answer" in text


def test_docx_is_a_word_document_holding_every_reference_and_question(conversation, urls):
    data = brief_docx(conversation, urls)
    document = Document(io.BytesIO(data))
    paragraphs = [p.text for p in document.paragraphs]
    assert paragraphs[0] == f"Brief: {QUESTIONS[0]}" and document.paragraphs[0].style.name == "Title"
    headings = [p.text for p in document.paragraphs if p.style.name == "Heading 1"]
    assert headings == [*(f"{n}. {q}" for n, q in enumerate(QUESTIONS, start=1)), "References"]
    refs = references(conversation.turns, urls)
    for reference in refs:
        assert f"[{reference.number}] {reference.text()}" in paragraphs
    nuffield = next(p for p in paragraphs if p.startswith("[1] "))
    assert NUFFIELD_URL in nuffield and '"KardiaMobile"' not in nuffield  # case study named once
    assert "Case study: KardiaMobile, p. 45. Available at:" in nuffield
    section = document.sections[0]
    assert (round(section.page_width.mm), round(section.page_height.mm)) == (210, 297)  # A4
    assert "PAGE" in section.footer.paragraphs[0]._p.xml  # the page number field
    assert document.core_properties.author == "Spread Advisor"
    assert document.core_properties.modified.year == datetime.now(UTC).year
    quoted = [p.text for p in document.paragraphs if p.style.name == "Quote"]
    assert f"“{DAFNE_QUOTE}” [3]" in quoted and f"“{KARDIA_QUOTE}” [1]" in quoted
    assert not any(SCHWARTZ_QUOTE in q for q in quoted)  # the extractive answer says it already
    assert any(SCHWARTZ_QUOTE in p for p in paragraphs)
    assert "Trained nurses and dietitians delivered the courses. [3, 1] It spread to every hospital in " \
        "Europe. (unsupported) [3]" in paragraphs  # fmt: skip
    assert REFUSAL in paragraphs
    links = [r for r in document.part.rels.values() if r.reltype.endswith("/hyperlink")]
    assert [r.target_ref for r in links] == [NUFFIELD_URL]


def test_only_one_answer_gets_its_own_numbering(conversation, urls):
    second = conversation.turns[1]
    text = brief_markdown(conversation, urls, only=second.id)
    assert f"## {QUESTIONS[1]}" in text
    body = text.split("\n", 1)[1]  # after the title, which is the conversation's first question
    assert not any(q in body for q in QUESTIONS if q != QUESTIONS[1])
    assert "Trained nurses and dietitians delivered the courses. [1, 2]" in text
    assert "[1] Innovation Unit" in text and "[2] Nuffield Trust" in text and "[3]" not in text
    paragraphs = docx_paragraphs(brief_docx(conversation, urls, only=second.id))
    assert QUESTIONS[1] in paragraphs and QUESTIONS[0] not in "\n".join(paragraphs[1:])


def test_a_refused_answer_alone_has_no_references(conversation, urls):
    refused = conversation.turns[3]
    text = brief_markdown(conversation, urls, only=refused.id)
    assert REFUSAL in text and "## References" not in text
    assert "References" not in docx_paragraphs(brief_docx(conversation, urls, only=refused.id))


def test_an_empty_conversation_or_an_unknown_answer_raises(conversation):
    empty = Conversation(conversation.summary, [])
    for make in (brief_markdown, brief_docx):
        with pytest.raises(EmptyConversationError, match="no answers to export yet"):
            make(empty)
        with pytest.raises(EmptyConversationError, match="no answer 'nope'"):
            make(conversation, only="nope")


def test_text_is_shown_as_text_and_characters_word_refuses_are_dropped(store):
    record = {
        "question": "Is *this* [a link](http://evil.example) <b>ok</b>?",
        "answer": "Yes.",
        "refused": False,
        "sentences": [{"text": "Yes\x0b it is\x00.", "markers": [1], "verdict": "supported"}],
        "citations": [{"marker": 1, "source": ODDS, "title": "T", "section": "S", "quote": "q\x01"}],
    }
    conversation = store.get(store.add_turn(Owner.user("bo"), record).conversation_id)
    text = brief_markdown(conversation)
    assert r"Is \*this\* \[a link\](http://evil.example) \<b\>ok\</b\>?" in text
    assert "Yes it is. [1]" in text and "\x0b" not in text and "\x00" not in text
    paragraphs = docx_paragraphs(brief_docx(conversation))
    assert "Yes it is. [1]" in paragraphs and "“q” [1]" in paragraphs


def test_a_sentence_in_the_reports_words_is_quoted_without_the_bullet_its_layout_left(store):
    words = "Tailor evidence to local NHS audiences."
    record = {
        "question": "What evidence do adopters want?",
        "answer": f"- {words} Local sites help.",
        "refused": False,
        "sentences": [
            {"text": f"- {words}", "markers": [1], "verdict": "supported"},
            {"text": "Local sites help.", "markers": [1], "verdict": "supported"},  # the writer's own
        ],
        "citations": [{"marker": 1, "source": ODDS, "title": "T", "section": "S", "quote": f"- {words}"}],
    }
    conversation = store.get(store.add_turn(Owner.user("bo"), record).conversation_id)
    text = brief_markdown(conversation)
    assert f"“{words}” [1] Local sites help. [1]" in text
    assert "> “" not in text  # said in the answer already: no second quote block
    paragraphs = docx_paragraphs(brief_docx(conversation))
    assert f"“{words}” [1] Local sites help. [1]" in paragraphs
