"""A brief to take away: a saved conversation's answers as a Markdown or Word document.

conversation (`advisor.history`, each turn an `Answer.to_record()`) --compose--> Brief --render-->
Markdown text | .docx bytes

The brief has one numbered list of references for all its answers: every citation of every
answer, one reference per report section and page, numbered in the order they are first cited,
with each answer's own markers mapped to those numbers. References are in the Harvard-like style
people paste into a business case: `Publisher (Year). *Title*. Section: "…", p. N. Available at:
URL`, the page and the address only where they are known. Each answer keeps its date and the
index generation it was answered from; a refused answer is shown as what it said.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from advisor.corpus import Manifest
from advisor.errors import AdvisorError
from advisor.history import Conversation, EmptyConversationError, Turn
from advisor.text import normalise_space

log = logging.getLogger(__name__)

NO_ANSWERS = "This conversation has no answers to export yet: ask a question first."
NOT_IN_CONVERSATION = (
    "This conversation has no answer {id!r} to export: it was deleted, or the link is wrong."
)
MADE_BY = "Spread Advisor"
CAVEAT = (
    "Each answer quotes public reports on spreading innovation in the NHS; "
    "check a quote in its report before relying on it."
)
LINK_COLOUR = "0563C1"  # Word's own colour for hyperlinks

# characters XML (and so a .docx) cannot hold, and lone surrogates UTF-8 cannot encode
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>])")

Layout = Literal["prose", "list", "plain"]
Piece = Literal["", "title", "url"]


# ---- references ----------------------------------------------------------------------
def report_urls(corpus_dir: Path | str) -> dict[str, str]:
    """Each report's web address by its corpus file name, from the manifest (only where it gives one)."""
    try:
        manifest = Manifest.load(Path(corpus_dir))
    except (AdvisorError, OSError) as exc:
        log.warning("the brief's references will have no web addresses: %s", exc)
        return {}
    return {name: entry.info.url for name, entry in manifest.entries.items() if entry.info.url}


@dataclass(frozen=True)
class Reference:
    """One place the brief cites (a report's section, at a page where known), numbered once."""

    number: int
    source: str  # the corpus file name
    title: str
    publisher: str = ""
    year: int | None = None
    section: str = ""
    case_study: str = ""
    page: str = ""
    url: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        """What makes two citations one reference: the same report, section and page."""
        return (self.source, self.section, self.page)

    def parts(self) -> list[tuple[str, Piece]]:
        """The reference in pieces, each with how it is set: plain, the title (italic) or a link."""
        year = f"({self.year})" if self.year else "(n.d.)"
        title = self.title or self.source
        pieces: list[tuple[str, Piece]]
        if self.publisher:
            end = "" if title.endswith((".", "?", "!")) else "."
            pieces = [(f"{self.publisher} {year}. ", ""), (title, "title"), (end, "")]
        else:
            pieces = [(title, "title"), (f" {year}.", "")]
        section = f'Section: "{self.section}"' if self.section and self.section != self.case_study else ""
        where = ". ".join(
            x for x in (f"Case study: {self.case_study}" if self.case_study else "", section) if x
        )
        if self.page:
            where = f"{where}, p. {self.page}" if where else f"p. {self.page}"
        if where:
            pieces.append((f" {where}.", ""))
        if self.url:
            pieces += [(" Available at: ", ""), (self.url, "url")]
        return [(text, kind) for text, kind in pieces if text]

    def text(self) -> str:
        """The reference as one line of plain text."""
        return "".join(text for text, _ in self.parts())


def references(turns: Sequence[Turn], urls: Mapping[str, str] | None = None) -> list[Reference]:
    """Every citation of the turns' answers, one reference per report section and page, numbered
    in the order they are first cited (refused answers cite nothing)."""
    found: dict[tuple[str, str, str], Reference] = {}
    for turn in turns:
        for cited in _citations(turn):
            reference = _reference(cited, len(found) + 1, urls or {})
            found.setdefault(reference.key, reference)
    return list(found.values())


def _citations(turn: Turn) -> list[dict[str, Any]]:
    if _refused(turn):
        return []
    return [c for c in turn.record.get("citations") or () if isinstance(c, dict)]


def _refused(turn: Turn) -> bool:
    return bool(turn.refused or turn.record.get("refused"))


def _reference(cited: Mapping[str, Any], number: int, urls: Mapping[str, str]) -> Reference:
    """A reference from one `Citation.to_record()`."""
    source = _line(cited.get("source"))
    try:
        year = int(cited["year"]) if cited.get("year") else None
    except (TypeError, ValueError):
        year = None
    return Reference(
        number=number,
        source=source,
        title=_line(cited.get("title")),
        publisher=_line(cited.get("publisher")),
        year=year,
        section=_line(cited.get("section")),
        case_study=_line(cited.get("case_study")),
        page=_line(cited.get("page")),
        url=_line(urls.get(source)),
    )


def _numbering(turn: Turn, refs: Iterable[Reference]) -> dict[int, int]:
    """The answer's own markers mapped to the brief's reference numbers."""
    by_key = {r.key: r.number for r in refs}
    numbers: dict[int, int] = {}
    for cited in _citations(turn):
        reference = _reference(cited, 0, {})
        marker = cited.get("marker")
        if isinstance(marker, int) and reference.key in by_key:
            numbers[marker] = by_key[reference.key]
    return numbers


# ---- composing -----------------------------------------------------------------------
@dataclass(frozen=True)
class _Line:
    """A sentence or row of an answer, with its reference numbers."""

    text: str
    numbers: tuple[int, ...] = ()
    label: str = ""  # the case study or report it is about, shown before it
    flag: str = ""  # "unsupported" or "uncited": what the verifier said of it


@dataclass(frozen=True)
class _Section:
    """One answer as the brief shows it."""

    question: str
    stamp: str  # when it was answered, from which index generation
    heading: str  # a catalogue or guidance answer's first line
    lines: tuple[_Line, ...]
    layout: Layout  # prose: one paragraph; list: one bullet a line; plain: the text as it was said
    quotes: tuple[tuple[int, str], ...]  # (reference number, the words quoted)
    notes: tuple[str, ...]


@dataclass(frozen=True)
class _Brief:
    title: str
    made: str
    sections: tuple[_Section, ...]
    references: tuple[Reference, ...]


def _compose(conversation: Conversation, urls: Mapping[str, str] | None, only: str | None) -> _Brief:
    """What both renderers draw: the chosen answers and their references."""
    chosen = [t for t in conversation.turns if only is None or t.id == only]
    if not chosen:
        raise EmptyConversationError(NOT_IN_CONVERSATION.format(id=only) if only else NO_ANSWERS)
    refs = references(chosen, urls)
    started = _day(conversation.summary.created_at)
    what = "one answer from a conversation" if only else "a conversation"
    return _Brief(
        title=f"Brief: {_line(conversation.title) or 'Untitled conversation'}",
        made=f"Prepared {_day(datetime.now(UTC))} by {MADE_BY} from {what} started {started}.",
        sections=tuple(_section(t, _numbering(t, refs)) for t in chosen),
        references=tuple(refs),
    )


def _section(turn: Turn, numbering: Mapping[int, int]) -> _Section:
    record = turn.record

    def mapped(markers: Any) -> tuple[int, ...]:
        return tuple(dict.fromkeys(numbering[m] for m in markers or () if m in numbering))

    heading = ""
    layout: Layout = "prose"
    sentences = [s for s in record.get("sentences") or () if isinstance(s, dict)]
    rows = [r for r in record.get("rows") or () if isinstance(r, dict)]
    if _refused(turn) or not (sentences or rows):
        every = () if _refused(turn) else tuple(dict.fromkeys(numbering.values()))
        said = [_clean(x) for x in str(record.get("answer", "")).splitlines() if x.strip()]
        lines = tuple(_Line(x, every if i == len(said) - 1 else ()) for i, x in enumerate(said))
        layout = "plain"
    elif rows:
        heading = _line(record.get("heading"))
        labelled = record.get("route") == "guidance"  # a point's text does not name its case
        lines = tuple(_row(r, mapped(r.get("markers")), labelled) for r in rows)
        layout = "list"
    else:
        lines = tuple(
            _Line(
                _line(s.get("text")),
                mapped(s.get("markers")),
                _line(s.get("label")),
                "" if s.get("verdict", "supported") == "supported" else _line(s.get("verdict")),
            )
            for s in sentences
        )
        if len(lines) > 1 and any(x.label for x in lines):
            layout = "list"
    verbatim = {_folded(_unbulleted(c.get("quote"))) for c in _citations(turn)} - {""}
    lines = tuple(_quoted_if_verbatim(x, verbatim) for x in lines) if layout != "plain" else lines
    quotes: dict[tuple[int, str], None] = {}
    said = " ".join(_folded(x.text) for x in lines)  # an answer in the reports' own words: quoted already
    for cited in sorted(_citations(turn), key=lambda c: c.get("marker") or 0):
        number, quote = numbering.get(cited.get("marker")), _unbulleted(cited.get("quote"))
        if number and quote and _folded(quote) not in said:
            quotes[(number, quote)] = None
    generation = _line(turn.generation)
    stamp = f"Answered {_moment(turn.created_at)}" + (f"; index {generation}" if generation else "")
    return _Section(
        question=_line(turn.question or record.get("question")) or "(no question)",
        stamp=stamp + (" (the advisor declined to answer)" if _refused(turn) else ""),
        heading=heading,
        lines=lines,
        layout=layout,
        quotes=tuple(quotes),
        notes=tuple(_line(n) for n in record.get("notes") or () if _line(n)),
    )


def _folded(text: str) -> str:
    return " ".join(text.casefold().split())


_BULLET = re.compile(r"^[-–•*·▪]\s+")


def _quoted_if_verbatim(line: _Line, verbatim: set[str]) -> _Line:
    """A line that is a report's own words (the offline answerer's sentences are) in quotation
    marks, so that pasted into a business case it does not read as the writer's prose; a bullet
    the report's layout left at its start is dropped."""
    text = _unbulleted(line.text)
    return replace(line, text=f"“{text}”" if _folded(text) in verbatim else text)


def _unbulleted(text: Any) -> str:
    return _BULLET.sub("", _line(text))


def _row(row: Mapping[str, Any], numbers: tuple[int, ...], labelled: bool) -> _Line:
    text, case = _line(row.get("text")), _line(row.get("case"))
    return _Line(text, numbers, case if labelled and case and case not in text else "")


def _clean(text: Any) -> str:
    return _NOT_XML.sub("", str(text or ""))


def _line(text: Any) -> str:
    """Text on one line, without characters a document cannot hold."""
    return normalise_space(_clean(text))


def _day(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    return f"{moment.day} {moment:%B %Y}"


def _moment(moment: datetime) -> str:
    return f"{_day(moment)}, {moment.astimezone(UTC):%H:%M} UTC"


def _markers(numbers: Sequence[int]) -> str:
    return f" [{', '.join(str(n) for n in numbers)}]" if numbers else ""


# ---- Markdown ------------------------------------------------------------------------
def brief_markdown(
    conversation: Conversation, urls: Mapping[str, str] | None = None, *, only: str | None = None
) -> str:
    """The conversation's answers (or only the answer with that turn id) as a Markdown brief."""
    brief = _compose(conversation, urls, only)
    out = [f"# {_md(brief.title)}", _md(brief.made) + "  \n" + f"*{_md(CAVEAT)}*"]
    numbered = len(brief.sections) > 1
    for n, section in enumerate(brief.sections, start=1):
        out.append(f"## {n}. {_md(section.question)}" if numbered else f"## {_md(section.question)}")
        out.append(f"*{_md(section.stamp)}*")
        if section.heading:
            out.append(_md(section.heading))
        out.extend(_md_body(section))
        if section.quotes:
            out.append("\n".join(f"> “{_md(quote)}” [{number}]  " for number, quote in section.quotes))
        out.extend(f"*{_md(note)}*" for note in section.notes)
    if brief.references:
        out.append("## References")
        out.extend(f"[{r.number}] " + _md_reference(r) for r in brief.references)
    return "\n\n".join(out) + "\n"


def _md_body(section: _Section) -> list[str]:
    shown = [_md_line(line) for line in section.lines]
    if section.layout == "list":
        return ["\n".join(f"- {x}" for x in shown)]
    if section.layout == "plain":
        return shown
    return [" ".join(shown)] if shown else []


def _md_line(line: _Line) -> str:
    text = _md(line.text)
    if line.label:
        text = f"**{_md(line.label)}**: {text}"
    if line.flag:
        text += f" *({_md(line.flag)})*"
    return text + _markers(line.numbers)


def _md_reference(reference: Reference) -> str:
    shown = {"": _md, "title": lambda x: f"*{_md(x)}*", "url": lambda x: f"<{x}>"}
    return "".join(shown[kind](text) for text, kind in reference.parts())


def _md(text: str) -> str:
    """Text that Markdown shows as it is (no stray emphasis, links or HTML)."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


# ---- Word ----------------------------------------------------------------------------
def brief_docx(
    conversation: Conversation, urls: Mapping[str, str] | None = None, *, only: str | None = None
) -> bytes:
    """The conversation's answers (or only the answer with that turn id) as a Word document."""
    from docx import Document
    from docx.shared import Pt

    brief = _compose(conversation, urls, only)
    doc = Document()
    now = datetime.now(UTC)
    properties = doc.core_properties
    properties.title, properties.author, properties.last_modified_by = brief.title, MADE_BY, MADE_BY
    properties.created = properties.modified = now.replace(tzinfo=None)
    properties.comments = ""
    _a4_with_page_numbers(doc)
    doc.add_heading(brief.title, level=0)
    doc.add_paragraph(brief.made)
    doc.add_paragraph().add_run(CAVEAT).italic = True
    numbered = len(brief.sections) > 1
    for n, section in enumerate(brief.sections, start=1):
        doc.add_heading(f"{n}. {section.question}" if numbered else section.question, level=1)
        stamp = doc.add_paragraph().add_run(section.stamp)
        stamp.italic, stamp.font.size = True, Pt(9)
        if section.heading:
            doc.add_paragraph(section.heading)
        _docx_body(doc, section)
        for number, quote in section.quotes:
            doc.add_paragraph(f"“{quote}” [{number}]", style="Quote")
        for note in section.notes:
            doc.add_paragraph().add_run(note).italic = True
    if brief.references:
        doc.add_heading("References", level=1)
        for reference in brief.references:
            _docx_reference(doc.add_paragraph(), reference)
    buffer = io.BytesIO()
    doc.save(buffer)
    return buffer.getvalue()


def _a4_with_page_numbers(doc) -> None:
    """A4 paper with 2.5 cm margins (python-docx's template is US Letter) and the page number,
    a Word field, centred in the footer."""
    from docx.enum.text import WD_ALIGN_PARAGRAPH
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn
    from docx.shared import Cm, Mm

    for section in doc.sections:
        section.page_width, section.page_height = Mm(210), Mm(297)
        section.left_margin = section.right_margin = Cm(2.5)
        section.top_margin = section.bottom_margin = Cm(2.5)
        footer = section.footer.paragraphs[0]
        footer.alignment = WD_ALIGN_PARAGRAPH.CENTER
        run = footer.add_run()
        for kind, text in (("begin", None), (None, "PAGE"), ("end", None)):
            if kind:
                element = OxmlElement("w:fldChar")
                element.set(qn("w:fldCharType"), kind)
            else:
                element = OxmlElement("w:instrText")
                element.set(qn("xml:space"), "preserve")
                element.text = text
            run._r.append(element)


def _docx_body(doc, section: _Section) -> None:
    if section.layout == "prose":
        paragraph = doc.add_paragraph()
        for i, line in enumerate(section.lines):
            _docx_line(paragraph, line, lead=" " if i else "")
        return
    for line in section.lines:
        style = "List Bullet" if section.layout == "list" else None
        _docx_line(doc.add_paragraph(style=style), line)


def _docx_line(paragraph, line: _Line, lead: str = "") -> None:
    if lead:
        paragraph.add_run(lead)
    if line.label:
        paragraph.add_run(line.label).bold = True
        paragraph.add_run(": ")
    paragraph.add_run(line.text)
    if line.flag:
        paragraph.add_run(f" ({line.flag})").italic = True
    if line.numbers:
        paragraph.add_run(_markers(line.numbers))


def _docx_reference(paragraph, reference: Reference) -> None:
    paragraph.add_run(f"[{reference.number}] ")
    for text, kind in reference.parts():
        if kind == "url" and text.startswith(("http://", "https://")):
            _docx_link(paragraph, text)
        else:
            paragraph.add_run(text).italic = kind == "title"


def _docx_link(paragraph, url: str) -> None:
    """A clickable web address: python-docx reads hyperlinks but has no call to add one."""
    from docx.opc.constants import RELATIONSHIP_TYPE
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn
    from docx.shared import RGBColor

    run = paragraph.add_run(url)
    run.font.color.rgb = RGBColor.from_string(LINK_COLOUR)
    run.font.underline = True
    link = OxmlElement("w:hyperlink")
    link.set(qn("r:id"), paragraph.part.relate_to(url, RELATIONSHIP_TYPE.HYPERLINK, is_external=True))
    run._r.addprevious(link)
    link.append(run._r)
