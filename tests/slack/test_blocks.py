"""How answers are laid out in Slack (advisor/slack/blocks.py): both layouts, exactly and within limits."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from advisor.slack.blocks import MAX_BLOCKS, case_section, escape_mrkdwn, render_answer
from advisor.types import Answer, AnswerSentence, CaseRow, Chunk, Citation, Passage
from tests.slack.helpers import cases_in, quotes_in

FEEDBACK = {
    "type": "actions",
    "block_id": "advisor_feedback:id1",
    "elements": [
        {
            "type": "button",
            "action_id": "advisor_feedback_up",
            "value": '{"a": "id1", "q": "Why?"}',
            "text": {"type": "plain_text", "text": ":thumbsup: Helpful", "emoji": True},
        },
        {
            "type": "button",
            "action_id": "advisor_feedback_down",
            "value": '{"a": "id1", "q": "Why?"}',
            "text": {"type": "plain_text", "text": ":thumbsdown: Not helpful", "emoji": True},
        },
    ],
}


def _mrkdwn(text: str) -> dict:
    return {"type": "mrkdwn", "text": text}


def _passage(i: int, title: str, section: str, case: str = "", page: int | str = "") -> Passage:
    chunk = Chunk(
        id=f"c{i}",
        doc_id=f"r{i}.txt",
        text="x",
        meta={"title": title, "section": section, "case_study": case, "page": page},
    )
    return Passage(chunk=chunk, score=1.0, rank=i)


def test_answer_layout_is_slacks_block_kit_json():
    """The passages layout, block by block, as Slack receives it."""
    p1, p2 = _passage(1, "Report A & B", "Findings", "RAID", 4), _passage(2, "", "", "")
    answer = Answer(
        question="Why?",
        text="One. Two.",
        citations=(Citation(1, p1, "A <quote>."), Citation(2, p2, "")),
        passages=(p1, p2),
        sentences=(
            AnswerSentence("One <b>.", (1,), label="RAID"),
            AnswerSentence("Two.", (2,), "unsupported"),
        ),
        notes=("Answered by the model.",),
    )
    message = render_answer(answer, "id1", notes=("Read only the text.",))
    first = "*RAID*: One &lt;b&gt;. [1]"
    second = "Two. [2] _(:warning: the cited passage does not clearly support this)_"
    assert message == {
        "text": f"{first} {second}",
        "blocks": [
            {"type": "section", "text": _mrkdwn(f"{first} {second}")},
            {
                "type": "context",
                "elements": [
                    _mrkdwn(":information_source: Answered by the model."),
                    _mrkdwn(":information_source: Read only the text."),
                ],
            },
            {"type": "divider"},
            {
                "type": "context",
                "elements": [
                    _mrkdwn("*[1]* Report A &amp; B · Findings · case study: RAID · p. 4"),
                    _mrkdwn("“A &lt;quote&gt;.”"),
                ],
            },
            {"type": "context", "elements": [_mrkdwn("*[2]* r2.txt")]},
            FEEDBACK,
        ],
    }


def test_a_refusal_names_the_closest_passages():
    passages = tuple(_passage(i, f"Report {i}", f"Section <{i}>" if i != 2 else "") for i in (1, 2, 3, 4))
    answer = Answer(
        question="Why?", text="The reports do not say.", citations=(), passages=passages, refused=True
    )
    message = render_answer(answer, "id1")
    closest = "Report 1 · Section &lt;1&gt;; Report 2 · ; Report 3 · Section &lt;3&gt;"
    assert message == {
        "text": "The reports do not say.",
        "blocks": [
            {"type": "section", "text": _mrkdwn("The reports do not say.")},
            {"type": "divider"},
            {
                "type": "context",
                "elements": [_mrkdwn(f"*Closest passages (not evidence for an answer):* {closest}")],
            },
            FEEDBACK,
        ],
    }


def test_catalogue_layout_is_one_section_per_case_with_its_evidence():
    raid = _passage(1, "Report & co", "RAID", "RAID", 7)
    dafne = _passage(2, "Report & co", "Spread", "DAFNE", "")
    rows = (
        CaseRow("RAID", "RAID (Report, score 0.87): a liaison team", (1,)),
        CaseRow("RAID", "How RAID spread: a tariff", (1, 2)),
        CaseRow("DAFNE", "Shares: diabetes education", (3,)),
    )
    answer = Answer(
        question="Why?",
        text="The 2 case studies most like yours:\n- RAID ...",
        route="cases_like_mine",
        citations=(
            Citation(1, raid, "Quote one."),
            Citation(2, raid, "Quote two."),
            Citation(3, dafne, "Q3."),
        ),
        passages=(raid, dafne),
        heading="The 2 case studies most like yours:",
        rows=rows,
        sentences=tuple(AnswerSentence(r.text, r.markers) for r in rows),
        notes=("Ranked 2.",),
    )
    message = render_answer(answer, "id1")
    assert message == {
        "text": "The 2 case studies most like yours:\n- RAID ...",
        "blocks": [
            {"type": "section", "text": _mrkdwn("The 2 case studies most like yours:")},
            {"type": "divider"},
            # the case's name (row.case) in bold once; its first row goes on after it
            {
                "type": "section",
                "text": _mrkdwn(
                    "*1. RAID* (Report, score 0.87): a liaison team [1]\n• How RAID spread: a tariff [1][2]"
                ),
            },
            {
                "type": "context",
                "elements": [
                    _mrkdwn("*Report &amp; co* · case study: RAID"),
                    _mrkdwn("*[1]* “Quote one.” — _p. 7_"),
                    _mrkdwn("*[2]* “Quote two.” — _p. 7_"),
                ],
            },
            # a first row that does not begin with the name: the name on a line of its own
            {"type": "section", "text": _mrkdwn("*2. DAFNE*\n• Shares: diabetes education [3]")},
            {
                "type": "context",
                "elements": [
                    _mrkdwn("*Report &amp; co* · case study: DAFNE"),
                    _mrkdwn("*[3]* “Q3.” — _Spread_"),
                ],
            },
            {"type": "context", "elements": [_mrkdwn(":information_source: Ranked 2.")]},
            FEEDBACK,
        ],
    }


def test_case_section_shows_the_name_once():
    section = case_section(3, "A & B", [CaseRow("A & B", "A & B (R): text", (2,))]).to_dict()
    assert section["text"]["text"] == "*3. A &amp; B* (R): text [2]"
    section = case_section(1, "", [CaseRow("", "no case", (1,))]).to_dict()
    assert section["text"]["text"] == "*1.*\n• no case [1]"


# ---------------------------------------------------------------------------------- limits
def _synthetic_answer(n_citations: int, sentence_chars: int, n_sentences: int) -> Answer:
    passages, citations, sentences = [], [], []
    for i in range(1, n_citations + 1):
        chunk = Chunk(
            id=f"c{i}",
            doc_id="r.txt",
            text="x",
            meta={"title": f"Report <{i}> & co", "section": "S" * 300, "case_study": "Case & <b>", "page": i},
        )
        passage = Passage(chunk=chunk, score=1.0, rank=i)
        passages.append(passage)
        citations.append(Citation(marker=i, passage=passage, quote="Quote <script> & " + "q" * 3000))
    for i in range(n_sentences):
        verdict = ("supported", "unsupported", "uncited")[i % 3]
        markers = () if verdict == "uncited" else (1 + i % max(n_citations, 1),)
        sentences.append(
            AnswerSentence(text=f"Sentence {i} <&> " + "w" * sentence_chars, markers=markers, verdict=verdict)
        )
    return Answer(
        question="q" * 2500,
        text=" ".join(s.text for s in sentences),
        citations=tuple(citations),
        passages=tuple(passages),
        sentences=tuple(sentences),
    )


@pytest.mark.parametrize(
    "n_citations,sentence_chars,n_sentences", [(3, 50, 4), (60, 400, 30), (5, 5000, 3), (2, 2900, 80)]
)
def test_rendered_answers_stay_inside_slack_limits(n_citations, sentence_chars, n_sentences):
    message = render_answer(_synthetic_answer(n_citations, sentence_chars, n_sentences), "a" * 16)
    blocks = message["blocks"]
    assert len(blocks) <= MAX_BLOCKS
    assert len(message["text"]) <= 4000
    for block in blocks:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000
        if block["type"] == "context":
            assert len(block["elements"]) <= 10
            assert all(len(e["text"]) <= 2000 for e in block["elements"])
        if block["type"] == "actions":
            assert all(len(e["value"]) <= 2000 and len(e["text"]["text"]) <= 75 for e in block["elements"])
    text = json.dumps(blocks)
    assert "<script>" not in text and "&lt;script&gt;" in text and "<&>" not in text
    assert blocks[-1]["type"] == "actions"
    contexts = [b for b in blocks if b["type"] == "context" and b["elements"][0]["text"].startswith("*[")]
    assert len(contexts) >= min(n_citations, 10)  # evidence keeps its place in long answers
    if n_citations > 45:
        assert "more sources" in blocks[-2]["elements"][0]["text"]
    if n_sentences * sentence_chars > 50 * 3000:
        assert any("shortened" in json.dumps(b) for b in blocks)
    if n_sentences >= 3:
        assert "does not clearly support" in text and "no source for this sentence" in text


def _synthetic_catalogue_answer(n_cases: int, rows_per_case: int, quotes_per_row: int) -> Answer:
    citations, sentences, passages, rows = [], [], [], []
    for case in range(n_cases):
        name = f"Case <{case}> & co"
        chunk = Chunk(
            id=f"c{case}",
            doc_id="r.txt",
            text="x",
            meta={"title": "Report & <title>", "section": "S" * 300, "case_study": name, "page": 2},
        )
        passage = Passage(chunk=chunk, score=1.0, rank=case + 1)
        passages.append(passage)
        for row in range(rows_per_case):
            markers = []
            for _ in range(quotes_per_row):
                citations.append(Citation(len(citations) + 1, passage, "Quote <b> & " + "q" * 900))
                markers.append(len(citations))
            sentences.append(AnswerSentence(f"{name} row {row} " + "w" * 1500, tuple(markers)))
            rows.append(CaseRow(name, sentences[-1].text, tuple(markers)))
    every = tuple(c.marker for c in citations)
    heading = AnswerSentence("The case studies <all>:", every)
    return Answer(
        question="q" * 2500,
        text="\n".join(s.text for s in sentences),
        citations=tuple(citations),
        passages=tuple(passages),
        sentences=(heading, *sentences),
        route="catalogue",
        heading=heading.text,
        rows=tuple(rows),
    )


@pytest.mark.parametrize(
    "n_cases, rows_per_case, quotes_per_row", [(3, 3, 2), (5, 3, 8), (15, 3, 8), (23, 1, 1), (60, 2, 3)]
)
def test_catalogue_answers_stay_inside_slack_limits(n_cases, rows_per_case, quotes_per_row):
    answer = _synthetic_catalogue_answer(n_cases, rows_per_case, quotes_per_row)
    message = render_answer(answer, "a" * 16)
    blocks = message["blocks"]
    assert len(blocks) <= MAX_BLOCKS and len(message["text"]) <= 4000
    for block in blocks:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000
        if block["type"] == "context":
            assert 1 <= len(block["elements"]) <= 10
            assert all(len(e["text"]) <= 2000 for e in block["elements"])
    assert "<b>" not in json.dumps(blocks) and "&lt;b&gt;" in json.dumps(blocks)
    cases = cases_in(blocks)
    assert all(quotes_in(contexts) for *_, contexts in cases)  # every case shown keeps evidence
    assert [rank for rank, *_ in cases] == list(range(1, len(cases) + 1))
    assert all(f"Case &lt;{rank - 1}&gt; &amp; co" == escape_mrkdwn(name) for rank, name, _, _ in cases)
    shown = sum(len(quotes_in(contexts)) for *_, contexts in cases)
    if n_cases * 2 + 3 > MAX_BLOCKS:
        assert len(cases) < n_cases and "more case studies not shown" in json.dumps(blocks)
    else:
        assert len(cases) == n_cases
    if shown < n_cases * rows_per_case * quotes_per_row and len(cases) == n_cases:
        assert "more quotes" in json.dumps(blocks)
    assert blocks[-1]["type"] == "actions"


# ---------------------------------------------------------------------------------- guidance
def test_guidance_layout_is_the_advice_its_points_and_their_sources():
    """An answer from the guidance map, block by block: never grouped by case as the catalogue is."""
    p1, p2 = _passage(1, "Report & co", "Lessons", "", 3), _passage(2, "Other", "Insights", "RAID")
    rows = (
        CaseRow("", "Plan the <funding> early.", (1,)),
        CaseRow("RAID", "Use the start-up years to build the case.", (2,)),
        CaseRow("RAID", "For example, RAID: it spread.", (2,)),
    )
    answer = Answer(
        question="Why?",
        text="What the reports advise (Funding): Plan. <x>",
        citations=(Citation(1, p1, "Plan <early>."), Citation(2, p2, "Build the case.")),
        passages=(p1, p2),
        sentences=(AnswerSentence("What the reports advise (Funding): Plan. <x>", (1, 2)),),
        route="guidance",
        heading="What the reports advise (Funding): Plan. <x>",
        rows=rows,
        notes=("Answered from the guidance map.",),
    )
    points = (
        "• Plan the &lt;funding&gt; early. [1]\n"
        "• *RAID*: Use the start-up years to build the case. [2]\n"
        "• For example, RAID: it spread. [2]"
    )
    assert render_answer(answer, "id1") == {
        "text": "What the reports advise (Funding): Plan. &lt;x&gt;",
        "blocks": [
            {"type": "section", "text": _mrkdwn("What the reports advise (Funding): Plan. &lt;x&gt;")},
            {"type": "section", "text": _mrkdwn(points)},
            {
                "type": "context",
                "elements": [_mrkdwn(":information_source: Answered from the guidance map.")],
            },
            {"type": "divider"},
            {
                "type": "context",
                "elements": [
                    _mrkdwn("*[1]* Report &amp; co · Lessons · p. 3"),
                    _mrkdwn("“Plan &lt;early&gt;.”"),
                ],
            },
            {
                "type": "context",
                "elements": [
                    _mrkdwn("*[2]* Other · Insights · case study: RAID"),
                    _mrkdwn("“Build the case.”"),
                ],
            },
            FEEDBACK,
        ],
    }


@pytest.mark.parametrize(
    "n_rows, n_citations, chars, shortened",
    [(5, 5, 100, False), (60, 60, 700, False), (200, 200, 2000, True), (3, 80, 100, False)],
)
def test_guidance_answers_stay_inside_slack_limits(n_rows, n_citations, chars, shortened):
    passages = [_passage(i, "R" * chars, "S" * chars, "C" * 50, i) for i in range(1, n_citations + 1)]
    citations = tuple(Citation(i, passages[i - 1], "q" * chars) for i in range(1, n_citations + 1))
    rows = tuple(CaseRow("C" * 50, "t" * chars, (1 + i % n_citations,)) for i in range(n_rows))
    answer = Answer(
        question="Why?",
        text="x" * (chars * n_rows),
        citations=citations,
        passages=tuple(passages),
        route="guidance",
        heading="h" * (chars * 3),
        rows=rows,
        notes=("n",),
    )
    message = render_answer(answer, "id1")
    blocks = message["blocks"]
    assert len(blocks) <= MAX_BLOCKS and blocks[-1]["type"] == "actions"
    assert len(message["text"]) <= 3900
    for block in blocks:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000
        elif block["type"] == "context":
            assert len(block["elements"]) <= 10 and all(len(e["text"]) <= 2000 for e in block["elements"])
    sources = [b for b in blocks if b["type"] == "context" and b["elements"][0]["text"].startswith("*[")]
    hidden = n_citations - len(sources)
    assert len(sources) >= min(n_citations, 10)
    if hidden:  # the sources that do not fit are counted, not dropped silently
        assert f"…and {hidden} more sources" in blocks[-2]["elements"][0]["text"]
    else:
        assert len(sources) == n_citations
    assert any("The answer was shortened" in json.dumps(b) for b in blocks) == shortened


def test_the_theme_list_is_every_title_and_id_within_slacks_limits():
    from advisor.guidance import Theme
    from advisor.slack.blocks import render_themes

    theme = Theme("t", "T", "What to do.", ("adopters",), ("scaling",), points=())
    themes = [replace(theme, id=f"theme-{i}", title=f"Title & {i} " + "w" * 60) for i in range(200)]
    message = render_themes(themes)
    blocks = message["blocks"]
    assert blocks[0] == {
        "type": "section",
        "text": _mrkdwn("*What the reports advise, by theme* (200 themes)"),
    }
    assert blocks[-1]["type"] == "context" and "/advisor guidance" in blocks[-1]["elements"][0]["text"]
    assert len(blocks) <= MAX_BLOCKS and all(len(b["text"]["text"]) <= 3000 for b in blocks[:-1])
    lines = "\n".join(b["text"]["text"] for b in blocks[1:-1]).split("\n")
    assert lines == [f"• *Title &amp; {i} {'w' * 60}* `theme-{i}`" for i in range(200)]
    assert len(message["text"]) <= 3900 and message["text"].startswith(
        "What the reports advise, by theme: Title &amp; 0"
    )


# ---------------------------------------------------------------------------------- web page link
@pytest.mark.parametrize(
    "public_url, expected",
    [
        ("https://advisor.example.nhs.uk", "https://advisor.example.nhs.uk/shared/Ab-_9"),
        ("https://advisor.example.nhs.uk/", "https://advisor.example.nhs.uk/shared/Ab-_9"),
        ("https://intranet.example.nhs.uk/spread", "https://intranet.example.nhs.uk/spread/shared/Ab-_9"),
        (" https://intranet.example.nhs.uk/spread/ ", "https://intranet.example.nhs.uk/spread/shared/Ab-_9"),
        ("http://127.0.0.1:7860//", "http://127.0.0.1:7860/shared/Ab-_9"),
        ("advisor.example.nhs.uk", None),  # no scheme: Slack would refuse the whole message
        ("ftp://advisor.example.nhs.uk", None),
        ("https://" + "h" * 3000 + ".uk", None),  # longer than a button's url may be
    ],
)
def test_share_url_joins_the_public_url_and_the_turn_id(public_url, expected):
    from advisor.slack.blocks import share_url

    assert share_url(public_url, "Ab-_9") == expected


LINK = "https://advisor.example.nhs.uk/shared/Ab-_9"
OPEN_BUTTON = {
    "type": "button",
    "action_id": "advisor_open_web",
    "url": LINK,
    "text": {"type": "plain_text", "text": ":globe_with_meridians: Open in the web page", "emoji": True},
}


@pytest.mark.parametrize(
    "answer",
    [
        _synthetic_answer(60, 400, 30),  # passages layout, at its 50 blocks
        _synthetic_catalogue_answer(60, 2, 3),
        Answer(
            question="Why?",
            text="x",
            citations=(),
            passages=(),
            route="guidance",
            heading="h",
            rows=(CaseRow("", "t", ()),),
        ),
    ],
    ids=["passages", "catalogue", "guidance"],
)
def test_the_web_page_link_joins_the_feedback_buttons_in_every_layout(answer):
    """The link is a third button in the feedback buttons' actions block: no block more, and the
    message is the one without it but for that button."""
    with_link = render_answer(answer, "id1", link=LINK)
    without = render_answer(answer, "id1")
    assert len(with_link["blocks"]) == len(without["blocks"]) <= MAX_BLOCKS
    assert with_link["blocks"][:-1] == without["blocks"][:-1] and with_link["text"] == without["text"]
    actions = with_link["blocks"][-1]
    assert actions["type"] == "actions" and actions["block_id"] == "advisor_feedback:id1"
    assert actions["elements"] == [*without["blocks"][-1]["elements"], OPEN_BUTTON]
    assert "advisor_open_web" not in json.dumps(without)
