"""What the page shows, rendered from typed values: markup in any text is shown as text."""

from __future__ import annotations

from dataclasses import replace

from advisor.web.render import (
    locate,
    render_answer_markdown,
    render_case_card,
    render_case_matches,
    render_evidence,
    render_library,
    shown_question,
)

PAYLOAD = "<script>alert(1)</script> & {}"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt; &amp; {}"


def _with_markup(answer):
    """The answer with markup in its text, every sentence and label, its notes, and every citation's
    quote, report title, publisher, section and case study (the quote also in its passage); at least
    three sentences, so they show as a labelled list."""
    sentences = tuple(
        replace(
            answer.sentences[i % len(answer.sentences)],
            text=PAYLOAD.format(f"sentence {i}"),
            label=PAYLOAD.format(f"label {i}"),
            verdict="unsupported" if i == 0 else "supported",
        )
        for i in range(max(3, len(answer.sentences)))
    )
    citations = []
    for c in answer.citations:
        chunk = c.passage.chunk
        fields = ("title", "publisher", "section", "case_study")
        meta = {**chunk.meta, **{f: PAYLOAD.format(f"{f} {c.marker}") for f in fields}}
        quote = PAYLOAD.format(f"quote {c.marker}")
        chunk = replace(chunk, meta=meta, text=f"{chunk.text}\n{quote}\nafter")
        citations.append(replace(c, passage=replace(c.passage, chunk=chunk), quote=quote))
    return replace(
        answer,
        text=PAYLOAD.format("text"),
        sentences=sentences,
        citations=tuple(citations),
        notes=(PAYLOAD.format("note"),),
    )


def test_answer_markup_is_escaped(built_advisor):
    real = built_advisor.ask("What role do clinical champions play?")
    answer = _with_markup(real)
    assert real.sentences and real.citations and not real.refused
    assert render_answer_markdown(real).count("cite-marker") == len(real.citations)

    bubble = render_answer_markdown(answer)
    evidence = render_evidence(answer)
    assert "<script" not in bubble and "<script" not in evidence
    assert bubble.count("cite-marker") == sum(len(s.markers) for s in answer.sentences) >= 3
    for i in range(len(answer.sentences)):
        assert f"<strong>{ESCAPED.format(f'label {i}')}</strong>: {ESCAPED.format(f'sentence {i}')}" in bubble
    assert bubble.startswith("- <strong>")  # labelled sentences are a list, one per line
    assert f"{ESCAPED.format('sentence 0')} <em>(unsupported)</em>" in bubble
    assert bubble.endswith(f"\n\n<em>{ESCAPED.format('note')}</em>")

    assert f"Not supported by its sources (unsupported): {ESCAPED.format('sentence 0')}" in evidence
    for c in answer.citations:
        m = c.marker
        assert f"<b>{ESCAPED.format(f'title {m}')}</b>" in evidence
        assert ESCAPED.format(f"publisher {m}") in evidence
        assert f"{ESCAPED.format(f'section {m}')} › {ESCAPED.format(f'case_study {m}')}" in evidence
        assert f"<div class='quote'>“{ESCAPED.format(f'quote {m}')}”</div>" in evidence
        assert f"<mark>{ESCAPED.format(f'quote {m}')}</mark>" in evidence  # the quote marked in its passage

    refused = replace(answer, refused=True)
    assert render_answer_markdown(refused).startswith(ESCAPED.format("text"))
    closest = render_evidence(replace(answer, citations=()))  # no citation: the closest passages
    assert "<script" not in closest and "The closest ones" in closest


def test_catalogue_answer_is_drawn_from_its_heading_and_rows_escaped(built_advisor):
    answer = built_advisor.ask("Which innovations spread through clinical champions?")
    assert answer.route == "catalogue" and len(answer.rows) >= 10
    rows = tuple(
        replace(row, case=PAYLOAD.format(f"case {i}"), text=f"{PAYLOAD.format(f'case {i}')} (a row)")
        for i, row in enumerate(answer.rows)
    )
    note = PAYLOAD.format("note")
    answer = replace(
        answer, heading=PAYLOAD.format("heading"), rows=rows, text="The answer's text", notes=(note,)
    )
    bubble = render_answer_markdown(answer)
    assert "<script" not in bubble and "answer's text" not in bubble
    lines = bubble.split("\n")
    assert lines[0] == ESCAPED.format("heading") and lines[1] == ""
    assert lines[2 + len(rows) :] == ["", f"<em>{ESCAPED.format('note')}</em>"]
    for i, (line, row) in enumerate(zip(lines[2:], rows)):
        markers = "".join(f"<sup class='cite-marker'>[{m}]</sup>" for m in row.markers)
        assert row.markers and line == f"- {ESCAPED.format(f'case {i}')} (a row){markers}"


def test_case_card_and_matches_escape_corpus_text(built_advisor):
    from advisor.cases import CaseMatch

    catalogue = built_advisor.case_catalogue.current
    case = catalogue.get("KardiaMobile")
    bad = "<img src=x onerror=alert(1)>"
    evidence = tuple(replace(e, value=bad) if e.field == "lesson" else e for e in case.evidence)
    case = replace(case, name=bad, section=bad, evidence=evidence)
    for markup in (
        render_case_card(case, {}),
        render_case_matches([CaseMatch(case, 0.5, (bad,), case.evidence[:3], (bad,))], {}),
    ):
        assert "<img" not in markup and "&lt;img src=x onerror=alert(1)&gt;" in markup
    assert "Choose a case study" in render_case_card(None, {})


def test_evidence_marks_a_quote_wrapped_differently_in_its_passage(built_advisor):
    answer = built_advisor.ask("What role do clinical champions play?")
    citation = answer.citations[0]
    text = "Before it.\nClinical   champions\n  matter & help.\nAfter it."
    chunk = replace(citation.passage.chunk, text=text)
    citation = replace(
        citation, passage=replace(citation.passage, chunk=chunk), quote="Clinical champions matter & help."
    )
    evidence = render_evidence(replace(answer, citations=(citation,)))
    passage = "Before it.\n<mark>Clinical   champions\n  matter &amp; help.</mark>\nAfter it."
    assert f"<div class='passage'>{passage}</div>" in evidence
    assert locate(text, "not in it") is None and locate(text, "it.") == (7, 10)


def test_the_library_lists_each_report_escaped():
    from advisor.advisor import DocumentSummary

    docs = [
        DocumentSummary("a<b>.txt", "<script>x</script>", "R&D", 2020, 3, {"Zeta": 1, "alpha": 2}),
        DocumentSummary("plain.txt", "Plain", "", 0, 1, {}),
    ]
    markup = render_library(docs)
    assert "<script" not in markup and "<b>&lt;script&gt;x&lt;/script&gt;</b>" in markup
    assert "<code>a&lt;b&gt;.txt</code>" in markup and "<td>R&amp;D</td>" in markup
    assert "<td>Zeta, alpha</td>" in markup  # sorted as Python sorts names
    assert "<td><span class='hint'>none named</span></td>" in markup and "<td></td><td>1</td>" in markup
    assert markup.count("<tr>") == 3
    assert render_library(None) == "<p>The library is being built.</p>"


def test_long_pastes_are_cut_in_the_bubble_and_markup_escaped():
    assert shown_question("<b>hi</b> & more") == "&lt;b&gt;hi&lt;/b&gt; &amp; more"
    shown = shown_question("y" * 100_000)
    assert len(shown) < 1000 and "100,000 characters" in shown and shown.startswith("y" * 600 + "…")
    assert "empty" in shown_question("")


# ---- the guidance map: its tab and its answers in the chat ------------------------------------
def _guidance_answer(route: str = "guidance"):
    from advisor.types import Answer, AnswerSentence, CaseRow, Chunk, Citation, Passage

    chunk = Chunk(id="c1", doc_id="r.txt", text="Before. A quote. After.", meta={"title": "Report"})
    citations = tuple(Citation(m, Passage(chunk, 1.0, 1), "A quote.") for m in (1, 2, 3))
    rows = (
        CaseRow(PAYLOAD.format("case"), PAYLOAD.format("point 1"), (1,)),
        CaseRow("", "A point from no case study.", (2,)),
        CaseRow("RAID", "For example, RAID: it spread.", (3,)),
    )
    heading = PAYLOAD.format("heading")
    return Answer(
        question="How?",
        text="the answer's text",
        citations=citations,
        passages=(citations[0].passage,),
        sentences=(AnswerSentence(heading, (1, 2, 3)), *(AnswerSentence(r.text, r.markers) for r in rows)),
        route=route,
        heading=heading,
        rows=rows,
        notes=("Answered from the guidance map.",),
    )


def test_a_guidance_answer_is_its_heading_and_points_each_with_its_case_study():
    bubble = render_answer_markdown(_guidance_answer())
    assert "<script" not in bubble and "answer's text" not in bubble
    assert bubble.split("\n") == [
        ESCAPED.format("heading"),
        "",
        f"- <strong>{ESCAPED.format('case')}</strong>: {ESCAPED.format('point 1')}<sup class='cite-marker'>[1]</sup>",
        "- A point from no case study.<sup class='cite-marker'>[2]</sup>",
        "- For example, RAID: it spread.<sup class='cite-marker'>[3]</sup>",  # names its case already
        "",
        "<em>Answered from the guidance map.</em>",
    ]
    # a catalogue row names its case itself: the same rows there carry no label
    catalogue = render_answer_markdown(_guidance_answer(route="catalogue"))
    assert "<strong>" not in catalogue and f"- {ESCAPED.format('point 1')}<sup" in catalogue


def _theme(text: str = "{}"):
    from advisor.guidance import GuidancePoint, Theme

    points = tuple(
        GuidancePoint(
            quote=text.format(f"quote {i}"),
            source="r.txt",
            section=text.format(f"section {i}"),
            line=10 + i,
            point=text.format(f"point {i}"),
            audiences=("adopters",),
            stages=("scaling",),
            cases=(text.format("case"),) if i == 0 else (),
        )
        for i in range(2)
    )
    return Theme(
        id="a-theme",
        title=text.format("title"),
        statement=text.format("statement"),
        audiences=("adopters", "commissioners"),
        stages=("before-pilot", "scaling"),
        points=points,
        cases=(text.format("case"), "RAID"),
    )


def test_the_guidance_tab_shows_each_point_with_its_passage_escaped():
    from advisor.types import Chunk
    from advisor.web.render import render_guidance

    theme = _theme(PAYLOAD)
    first = theme.points[0]
    chunk = Chunk(
        id="c1",
        doc_id="r.txt",
        text=f"Before.\n{first.quote}\nAfter.",
        meta={"title": "The <i>report</i>", "page": 7},
    )
    markup = render_guidance(
        [theme], {(first.source, first.quote): chunk}, 5, "commissioners", "before-pilot"
    )
    assert "<script" not in markup and "<i>" not in markup
    assert (
        "1 of 5 themes, 2 quoted points for commissioners and system leaders at the stage before a pilot."
        in markup
    )
    assert (
        f"<span class='title'>{ESCAPED.format('title')}</span> <span class='where'>2 points</span>" in markup
    )
    assert (
        "<b>For</b> adopters, commissioners and system leaders · <b>Stages</b> before a pilot, scaling"
        in markup
    )
    assert f"<b>Case studies that show it:</b> {ESCAPED.format('case')}, RAID</p>" in markup
    where = f"The &lt;i&gt;report&lt;/i&gt; · {ESCAPED.format('section 0')} · line 10 · p. 7 · case study: {ESCAPED.format('case')}"
    assert f"<span class='where'>{where}</span>" in markup
    passage = f"Before.\n<mark>{ESCAPED.format('quote 0')}</mark>\nAfter."
    assert f"<div class='passage'>{passage}</div></details>" in markup  # one click away
    # a point whose quote the index does not hold says so instead of opening onto nothing
    assert markup.count("<details class='cite'>") == 1
    assert f"r.txt · {ESCAPED.format('section 1')} · line 11</span>" in markup
    assert "This quote is not in the current index" in markup


def test_the_guidance_labels_name_every_audience_and_stage():
    from advisor.guidance import AUDIENCES, STAGES
    from advisor.web.render import AUDIENCE_LABELS, STAGE_LABELS

    assert tuple(AUDIENCE_LABELS) == AUDIENCES and tuple(STAGE_LABELS) == STAGES
