"""What the page shows, rendered from typed values: answers, evidence, the library, case studies,
the guidance map.

The chat bubble is Markdown with a few inline tags (citation superscripts, labels, notes),
built here from an `Answer`'s sentences or, for a catalogue or guidance answer, its heading and rows; it is
escaped as text with quotes left as they are, because the chat's copy button copies the bubble's
raw value. The HTML panels come from Jinja2 templates in `templates/`, autoescaped.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from advisor.cases import FIELD_LABELS, NO_SIMILAR_CASE, TAG_FIELDS, CaseMatch, CaseStudy
from advisor.guidance import Theme
from advisor.types import Answer, CaseRow, Chunk

TEMPLATES = Path(__file__).with_name("templates")

# The fields a case study's card shows, in order.
CARD_FIELDS = (
    "description", "innovation_type", "setting", "organisation_type", "scale",
    "mechanism", "evidence_type", "barrier", "lesson",
)  # fmt: skip
CARD_HINT = "Choose a case study in the table (or the list above) to see every value with its quote."
GUIDANCE_HINT = "The themes of the guidance map appear here."
LIKE_HINT = "Describe your innovation and its setting, or pick tags, then press Find similar cases."

# How the guidance map's audiences and stages read on the page.
AUDIENCE_LABELS = {
    "innovators": "innovators",
    "adopters": "adopters",
    "commissioners": "commissioners and system leaders",
    "policy-makers": "policy-makers",
}
STAGE_LABELS = {
    "before-pilot": "before a pilot",
    "pilot-to-early-adoption": "pilot to early adoption",
    "scaling": "scaling",
    "sustaining": "sustaining",
}

_LINE_BREAK = re.compile(r"\n[ \t]*")


class _JoinedLines(FileSystemLoader):
    """Loads a template with each line break and the indentation after it removed.

    Templates are laid out on several lines for reading, but the HTML they render has no white
    space between tags unless a template line holds it: passages are shown with their own line
    breaks (pre-wrap), and a stray space inside a summary line would show.
    """

    def get_source(self, environment: Environment, template: str):
        source, filename, uptodate = super().get_source(environment, template)
        return _LINE_BREAK.sub("", source), filename, uptodate


def locate(passage: str, quote: str) -> tuple[int, int] | None:
    """Where the quote is in the passage, allowing different white space; None when it is not there."""
    start = passage.find(quote)
    if start >= 0:
        return start, start + len(quote)
    words = quote.split()
    found = re.search(r"\s+".join(re.escape(w) for w in words), passage) if words else None
    return found.span() if found else None


_templates = Environment(
    loader=_JoinedLines(TEMPLATES),
    autoescape=True,
    undefined=StrictUndefined,
    keep_trailing_newline=False,
)
_templates.globals["locate"] = locate


def _render(name: str, **values: Any) -> str:
    return str(_templates.get_template(name).render(**values))


def escape_text(text: str) -> str:
    """Text for Markdown or HTML text (never markup); quotes stay as they are, so copied text reads right."""
    return html.escape(text, quote=False)


# ---- the chat ------------------------------------------------------------------------
def render_answer_markdown(answer: Answer) -> str:
    """The answer for the chat bubble: each sentence with its citation markers, then its notes."""
    if answer.refused or not answer.sentences:
        body = escape_text(answer.text)
    elif answer.rows:
        body = _catalogue_rows(answer)
    else:
        parts = []
        for sentence in answer.sentences:
            text = escape_text(sentence.text)
            if sentence.label:
                text = f"<strong>{escape_text(sentence.label)}</strong>: {text}"
            if sentence.verdict != "supported":
                text = f"{text} <em>({sentence.verdict})</em>"
            parts.append(f"{text}{markers(sentence.markers)}")
        labelled = len(parts) > 1 and any(s.label for s in answer.sentences)
        body = "\n".join(f"- {p}" for p in parts) if labelled else " ".join(parts)
    notes = "".join(f"\n\n<em>{escape_text(n)}</em>" for n in answer.notes)
    return body + notes


def markers(numbers: Iterable[int]) -> str:
    """Citation markers as the superscripts the page (and its tests) look for."""
    return "".join(f"<sup class='cite-marker'>[{m}]</sup>" for m in numbers)


def _catalogue_rows(answer: Answer) -> str:
    """A catalogue or guidance answer as its heading and a list, one row per line with its markers."""
    labelled = answer.route == "guidance"  # a point's text does not name the case it comes from
    items = [f"- {_row_text(row, labelled)}{markers(row.markers)}" for row in answer.rows]
    return escape_text(answer.heading) + "\n\n" + "\n".join(items)


def _row_text(row: CaseRow, labelled: bool) -> str:
    """A row's text, after its case study in bold when asked for and the text does not name it."""
    text = escape_text(row.text)
    if labelled and row.case and row.case not in row.text:
        return f"<strong>{escape_text(row.case)}</strong>: {text}"
    return text


def shown_question(question: str, limit: int = 600) -> str:
    """The question as its chat bubble shows it: escaped (markup is text), long pastes cut."""
    if not question:
        return "<em>(empty question)</em>"
    if len(question) > limit:
        return escape_text(question[:limit]) + f"… <em>({len(question):,} characters)</em>"
    return escape_text(question)


def searched_line(answer: Answer) -> str:
    """The standalone query a follow-up was searched with, when it differs from the question."""
    if answer.query and answer.query != answer.question:
        return f"**Searched for:** {escape_text(answer.query)}"
    return ""


# ---- panels --------------------------------------------------------------------------
def render_evidence(answer: Answer | None, share: str = "") -> str:
    """The sources panel: one card per citation, its passage one click away, the quote marked;
    with a saved answer's share id, links to its read-only page, each passage there and its brief."""
    return _render("evidence.html.j2", answer=answer, share=share)


def render_conversation_links(conversation_id: str) -> str:
    """Download links for a saved conversation's brief (its owner's browser or login opens them)."""
    return _render("conversation_links.html.j2", conversation=conversation_id)


def render_library(docs: Iterable[Any] | None) -> str:
    """The library tab from `Advisor.sources()`; None while the index is being built."""
    return _render("library.html.j2", docs=None if docs is None else list(docs))


def render_message(text: str, kind: str = "none", panel: str = "evidence") -> str:
    """One sentence in a panel: `kind` "hint" (what to do) or "none" (why nothing is shown)."""
    return _render("message.html.j2", text=text, kind=kind, panel=panel)


def render_case_card(case: CaseStudy | None, anchors: Mapping[tuple[str, str], Chunk]) -> str:
    """A case study's card: every field, each value with its quote, location and passage."""
    fields = [
        (FIELD_LABELS[name].capitalize(), case.evidence_for(name), name in TAG_FIELDS)
        for name in (CARD_FIELDS if case is not None else ())
    ]
    return _render("case_card.html.j2", case=case, fields=fields, anchors=anchors, hint=CARD_HINT)


def render_guidance(
    themes: list[Theme],
    anchors: Mapping[tuple[str, str], Chunk],
    total: int,
    audience: str | None = None,
    stage: str | None = None,
) -> str:
    """The guidance tab: each theme's title, statement, audiences and stages, and, opened, its
    quoted points (each one click from its passage) and its case studies."""
    wanted = [
        f"for {AUDIENCE_LABELS[audience]}" if audience else "",
        f"at the stage {STAGE_LABELS[stage]}" if stage else "",
    ]
    return _render(
        "guidance.html.j2",
        themes=themes,
        anchors=anchors,
        total=total,
        points=sum(len(t.points) for t in themes),
        wanted=" ".join(w for w in wanted if w),
        audience_labels=AUDIENCE_LABELS,
        stage_labels=STAGE_LABELS,
    )


def render_case_matches(matches: list[CaseMatch], anchors: Mapping[tuple[str, str], Chunk]) -> str:
    """ "Cases like mine": each case's score, why it matched, how it spread, how it differs, its quotes."""
    if not matches:
        return render_message(NO_SIMILAR_CASE, panel="evidence like-results")
    return _render("case_matches.html.j2", matches=matches, anchors=anchors)
