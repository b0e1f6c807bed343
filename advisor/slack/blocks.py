"""How an answer is laid out in Slack: Block Kit messages built from `Answer` objects.

Three layouts of an answer, all ending with the Helpful / Not helpful buttons (and, when the answer
was kept and `ADVISOR_PUBLIC_URL` is set, an "Open in the web page" link to its shared view):
- `render_answer`: an answer from the passages: its sentences with their markers and trust flags,
  notes, a divider, then one context block per citation (report title, section, case study, page,
  the quoted sentence);
- `render_catalogue`: an answer from the case-study catalogue (lists, comparisons, cases like
  mine): the heading, then one section per case study with its evidence right beneath it;
- `render_guidance`: an answer from the guidance map: what the reports advise on the theme, its
  points one a line with their markers, notes, then one context block per citation.

`render_themes` lists the guidance map's themes (`/advisor guidance` with nothing after it).

Blocks are slack_sdk's typed Block Kit models; a message is turned into JSON (`to_dict()`) only
when it is returned, as `{"text": <plain-text fallback>, "blocks": [...]}`.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from advisor.guidance import Theme
from advisor.types import Answer, AnswerSentence, CaseRow, Chunk, Citation

FEEDBACK_ACTIONS = {"advisor_feedback_up": "up", "advisor_feedback_down": "down"}
OPEN_WEB_ACTION = "advisor_open_web"  # a link button: Slack opens the page and sends us a click to ack

# Block Kit limits (docs.slack.dev/reference/block-kit): 50 blocks per message, 3000 characters in a
# section's text, 10 elements per context block; we keep context texts to 2000 and the top-level
# fallback `text` under the 4000 characters Slack recommends (it truncates at 40,000).
MAX_BLOCKS = 50
MAX_SECTION_CHARS = 3000
MAX_CONTEXT_CHARS = 2000
MAX_CONTEXT_ELEMENTS = 10
MAX_FALLBACK_CHARS = 3900
MAX_QUOTE_CHARS = 600
MAX_BUTTON_VALUE_CHARS = 2000
MAX_BUTTON_URL_CHARS = 3000


def escape_mrkdwn(text: str) -> str:
    """Text safe to show in Slack mrkdwn: &, < and > escaped as Slack asks."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, ending with "…" when it was cut."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


# ---------------------------------------------------------------------------------- building blocks
def _section(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=clip(text, MAX_SECTION_CHARS)))


def _context(texts: list[str]) -> ContextBlock:
    return ContextBlock(elements=[MarkdownTextObject(text=t) for t in texts])


def _note_block(text: str) -> ContextBlock:
    return _context([clip(text, MAX_CONTEXT_CHARS)])


def _notes_blocks(notes: list[str]) -> list[Block]:
    """The answer's notes (e.g. "answered from the catalogue") as one context block, if any."""
    if not notes:
        return []
    return [
        _context(
            [
                clip(f":information_source: {escape_mrkdwn(n)}", MAX_CONTEXT_CHARS)
                for n in notes[:MAX_CONTEXT_ELEMENTS]
            ]
        )
    ]


def _message(text: str, blocks: list[Block]) -> dict[str, Any]:
    """The message as Slack's JSON: the plain-text fallback and the blocks."""
    assert len(blocks) <= MAX_BLOCKS
    return {"text": clip(text, MAX_FALLBACK_CHARS), "blocks": [block.to_dict() for block in blocks]}


def feedback_value(answer_id: str, question: str) -> str:
    """The button value: the answer's id and (clipped) question, as JSON within Slack's limit."""
    value = json.dumps({"a": answer_id, "q": question}, ensure_ascii=False)
    while len(value) > MAX_BUTTON_VALUE_CHARS:
        question = question[: len(question) - (len(value) - MAX_BUTTON_VALUE_CHARS) - 1]
        value = json.dumps({"a": answer_id, "q": question}, ensure_ascii=False)
    return value


def share_url(public_url: str, turn_id: str) -> str | None:
    """The web page's read-only view of a kept answer, `<public url>/shared/<turn id>`, whether the
    public URL ends in a slash or has a path prefix; None when it is not an http(s) address or the
    link would be longer than a Slack button takes (Slack would refuse the whole message)."""
    parts = urlsplit(public_url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or not turn_id:
        return None
    path = f"{parts.path.rstrip('/')}/shared/{quote(turn_id, safe='')}"
    url = urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))
    return url if len(url) <= MAX_BUTTON_URL_CHARS else None


def feedback_block(answer_id: str, question: str, link: str | None = None) -> ActionsBlock:
    """The Helpful / Not helpful buttons, carrying the answer's id and question, then the
    "Open in the web page" button when there is a `link` to the answer's shared view."""
    value = feedback_value(answer_id, question)
    labels = {
        "advisor_feedback_up": ":thumbsup: Helpful",
        "advisor_feedback_down": ":thumbsdown: Not helpful",
    }
    buttons = [
        ButtonElement(action_id=action_id, value=value, text=PlainTextObject(text=label, emoji=True))
        for action_id, label in labels.items()
    ]
    if link:
        buttons.append(
            ButtonElement(
                action_id=OPEN_WEB_ACTION,
                url=link,
                text=PlainTextObject(text=":globe_with_meridians: Open in the web page", emoji=True),
            )
        )
    return ActionsBlock(block_id=f"advisor_feedback:{answer_id}", elements=buttons)


# ---------------------------------------------------------------------------------- sentences
def answer_paragraphs(answer: Answer) -> list[str]:
    """The answer as escaped mrkdwn sentences with their markers and any trust flags."""
    if not answer.sentences:
        return [escape_mrkdwn(answer.text)]
    return [sentence_line(s) for s in answer.sentences]


def sentence_line(s: AnswerSentence, limit: int = MAX_SECTION_CHARS - 120, lead: str = "") -> str:
    """One sentence as escaped mrkdwn (after an already formatted `lead`), its markers and trust flag."""
    markers = "".join(f"[{m}]" for m in s.markers)
    if s.label and not lead:
        lead = f"*{escape_mrkdwn(s.label)}*: "
    # clipped before the markers and flags are added, so those always show
    line = lead + clip(escape_mrkdwn(s.text), max(limit - len(lead), 40))
    line += f" {markers}" if markers else ""
    if s.verdict == "unsupported":
        line += " _(:warning: the cited passage does not clearly support this)_"
    elif s.verdict == "uncited":
        line += " _(:warning: no source for this sentence)_"
    return line


def _sections(paragraphs: list[str], limit: int = MAX_SECTION_CHARS, joiner: str = " ") -> list[str]:
    """Pack sentences (or, with `joiner="\n"`, lines) into section texts of at most `limit` characters."""
    out: list[str] = []
    current = ""
    for p in paragraphs:
        p = clip(p, limit)
        candidate = f"{current}{joiner}{p}" if current else p
        if len(candidate) > limit:
            out.append(current)
            current = p
        else:
            current = candidate
    if current:
        out.append(current)
    return out


# ---------------------------------------------------------------------------------- citations
def _title(chunk: Chunk) -> str:
    return escape_mrkdwn(chunk.title or chunk.source or "")


def _page(chunk: Chunk) -> Any:
    return chunk.meta.get("page") or None


def citation_block(citation: Citation) -> ContextBlock:
    """A context block for one citation: report title, section, case study, page, the quote."""
    chunk = citation.passage.chunk
    where = [f"*[{citation.marker}]* {_title(chunk)}"]
    if chunk.section:
        where.append(escape_mrkdwn(chunk.section))
    if chunk.case_study:
        where.append(f"case study: {escape_mrkdwn(chunk.case_study)}")
    if _page(chunk):
        where.append(f"p. {_page(chunk)}")
    texts = [clip(" · ".join(where), MAX_CONTEXT_CHARS)]
    if citation.quote:
        quote = clip(citation.quote, MAX_QUOTE_CHARS)
        texts.append(clip(f"“{escape_mrkdwn(quote)}”", MAX_CONTEXT_CHARS))
    return _context(texts)


# ---------------------------------------------------------------------------------- passages layout
def render_answer(
    answer: Answer, answer_id: str, notes: tuple[str, ...] = (), link: str | None = None
) -> dict[str, Any]:
    """Block Kit message (`text` + `blocks`) for an answer, inside Slack's block and text limits.

    Layout: the answer's sentences with markers (sections), notes, a divider, one context block per
    citation (title, section, case study, page, quoted sentence), then the feedback buttons (and the
    `link` to the answer's web page, when given, beside them). When
    50 blocks are not enough, at least 10 citations keep their place and the answer is shortened.
    A guidance answer is laid out by `render_guidance`, a catalogue answer (one with rows) by
    `render_catalogue`.
    """
    if answer.route == "guidance":
        return render_guidance(answer, answer_id, notes, link)
    if answer.rows:
        return render_catalogue(answer, answer_id, notes, link)
    sections: list[Block] = [_section(text) for text in _sections(answer_paragraphs(answer))]
    notes_blocks = _notes_blocks([*answer.notes, *notes])
    sources: list[Block] = []
    if answer.citations:
        sources = [citation_block(c) for c in answer.citations]
    elif answer.refused and answer.passages:
        closest = [
            f"{escape_mrkdwn(p.chunk.title)} · {escape_mrkdwn(p.chunk.section or '')}"
            for p in answer.passages[:3]
        ]
        sources = [_note_block("*Closest passages (not evidence for an answer):* " + "; ".join(closest))]

    budget = MAX_BLOCKS - 1 - len(notes_blocks)  # the actions block always comes last
    kept_sources = min(len(sources), 10)
    max_sections = (
        budget - (kept_sources + 2 if sources else 0) - 1
    )  # divider + "more" line; "shortened" line
    if len(sections) > max_sections:
        sections = sections[:max_sections] + [
            _note_block("_The answer was shortened to fit in a Slack message._")
        ]
    blocks = sections + notes_blocks
    if sources:
        room = MAX_BLOCKS - 1 - len(blocks) - 1  # minus the divider
        if len(sources) > room:
            room -= 1  # the "more sources" line
        blocks.append(DividerBlock())
        blocks.extend(sources[:room])
        hidden = len(sources) - room
        if hidden > 0:
            blocks.append(
                _note_block(
                    f"…and {hidden} more source{'s' if hidden > 1 else ''} "
                    "(a Slack message holds at most 50 blocks)."
                )
            )
    blocks.append(feedback_block(answer_id, answer.question, link))
    return _message(" ".join(answer_paragraphs(answer)), blocks)


# ---------------------------------------------------------------------------------- catalogue layout
def catalogue_cases(answer: Answer) -> tuple[str, list[tuple[str, list[CaseRow]]]]:
    """A catalogue answer's heading and its rows grouped by case study, in the answer's order."""
    groups: list[tuple[str, list[CaseRow]]] = []
    for row in answer.rows:
        if groups and row.case == groups[-1][0]:
            groups[-1][1].append(row)
        else:
            groups.append((row.case, [row]))
    return answer.heading, groups


def _after_case_name(row: CaseRow) -> str | None:
    """The row's text after its case's name, or None when the row does not begin with the name.

    The catalogue writes a case's first row as "<case> (<report>, ...): ..." (`advisor/cases/compose.py`);
    the section shows `row.case` in bold as its title, so the text goes on after the name rather
    than repeating it.
    """
    if row.case and row.text.startswith(row.case):
        return row.text[len(row.case) :]
    return None


def case_section(rank: int, name: str, rows: list[CaseRow]) -> SectionBlock:
    """One case study as a section: its name in bold, then each of its rows on a line of its own."""
    title = f"*{rank}. {escape_mrkdwn(name)}*" if name else f"*{rank}.*"
    limit = max(200, (MAX_SECTION_CHARS - 200) // len(rows) - 60)
    lines = []
    for i, row in enumerate(rows):
        rest = _after_case_name(row) if i == 0 else None
        if rest is not None:  # "*1. RAID* (…, score 0.87): …"
            lines.append(sentence_line(AnswerSentence(rest, row.markers), limit, lead=title))
            continue
        if i == 0:
            lines.append(title)
        lines.append(sentence_line(AnswerSentence(row.text, row.markers), limit, lead="• "))
    return _section("\n".join(lines))


def _report_and_case(c: Citation) -> str:
    chunk = c.passage.chunk
    parts = [f"*{_title(chunk)}*"]
    if chunk.case_study:
        parts.append(f"case study: {escape_mrkdwn(chunk.case_study)}")
    return clip(" · ".join(parts), MAX_CONTEXT_CHARS)


def _quoted(c: Citation) -> str:
    """A cited quote with its marker, then its section (when it is not just the case's name) and page."""
    chunk = c.passage.chunk
    where = []
    if chunk.section and chunk.section != chunk.case_study:
        where.append(escape_mrkdwn(chunk.section))
    if _page(chunk):
        where.append(f"p. {_page(chunk)}")
    quote = f"*[{c.marker}]* “{escape_mrkdwn(clip(c.quote or '', MAX_QUOTE_CHARS))}”"
    return clip(quote + (f" — _{', '.join(where)}_" if where else ""), MAX_CONTEXT_CHARS)


def evidence_blocks(citations: list[Citation], max_blocks: int | None = None) -> list[ContextBlock]:
    """Context blocks for one case's citations: the report title and case study once, then each
    quoted sentence with its marker, section and page; at most 10 elements a block, and with
    `max_blocks` the last element says how many quotes did not fit."""

    def pack(kept: list[Citation], hidden: int) -> list[list[str]]:
        blocks: list[list[str]] = []
        current: list[str] = []
        last_head = None
        for c in kept:
            head = _report_and_case(c)
            items = ([] if head == last_head and current else [head]) + [_quoted(c)]
            if len(current) + len(items) > MAX_CONTEXT_ELEMENTS:
                blocks.append(current)
                current, items = [], [head, _quoted(c)]
            current.extend(items)
            last_head = head
        if hidden:
            if len(current) >= MAX_CONTEXT_ELEMENTS:
                blocks.append(current)
                current = []
            current.append(f"_…and {hidden} more quote{'s' if hidden > 1 else ''}_")
        if current:
            blocks.append(current)
        return blocks

    shown = len(citations)
    blocks = pack(citations, 0)
    while max_blocks is not None and len(blocks) > max_blocks and shown > 1:
        shown -= 1
        blocks = pack(citations[:shown], len(citations) - shown)
    return [_context(texts) for texts in blocks]


def render_catalogue(
    answer: Answer, answer_id: str, notes: tuple[str, ...] = (), link: str | None = None
) -> dict[str, Any]:
    """Block Kit message for an answer from the case-study catalogue (lists, comparisons, cases like mine).

    Layout: the heading, then for each case study a section (its rows: for "cases like mine" the
    score and what it shares, how it spread and where it differs) followed by context blocks with
    its citations (report title and case study, then each quoted sentence with its section and
    page); notes; feedback buttons (and the `link`). Within 50 blocks: each case keeps at least one evidence block
    (extra quotes counted, not shown) and, when even that is too many, the last cases are left out
    and counted.
    """
    by_marker = {c.marker: c for c in answer.citations}
    heading, groups = catalogue_cases(answer)
    head: list[Block] = [_section(escape_mrkdwn(heading))] if heading else []
    notes_blocks = _notes_blocks([*answer.notes, *notes])
    room = MAX_BLOCKS - len(head) - len(notes_blocks) - 1  # the actions block comes last

    cases = []
    for rank, (name, rows) in enumerate(groups, start=1):
        markers = list(dict.fromkeys(m for row in rows for m in row.markers if m in by_marker))
        cases.append((case_section(rank, name, rows), [by_marker[m] for m in markers]))
    per_case: list[list[Block]] = [[section, *evidence_blocks(cited)] for section, cited in cases]
    if sum(map(len, per_case)) > room:  # one evidence block per case
        per_case = [[section, *evidence_blocks(cited, max_blocks=1)] for section, cited in cases]
    body = [block for blocks in per_case for block in blocks]
    if len(body) > room:  # then only the cases that fit, and a line saying how many more there are
        body, shown = [], 0
        for blocks in per_case:
            if len(body) + len(blocks) > room - 1:
                break
            body += blocks
            shown += 1
        hidden = len(cases) - shown
        body.append(
            _note_block(
                f"_…and {hidden} more case stud{'ies' if hidden > 1 else 'y'} not shown here "
                "(a Slack message holds at most 50 blocks): ask a narrower question to see them._"
            )
        )
    divider: list[Block] = [DividerBlock()] if head and len(body) < room else []
    blocks = [*head, *divider, *body, *notes_blocks, feedback_block(answer_id, answer.question, link)]
    return _message(escape_mrkdwn(answer.text), blocks)


# ---------------------------------------------------------------------------------- guidance layout
GUIDANCE_HOW = (
    "Type `/advisor guidance` and a theme's name (or id), or a question, to read what the reports "
    "advise on it, each point quoted."
)


def guidance_line(row: CaseRow) -> str:
    """One point of a guidance answer: a bullet, its case study in bold (unless the text names it),
    the point and its markers."""
    lead = "• "
    if row.case and row.case not in row.text:
        lead += f"*{escape_mrkdwn(row.case)}*: "
    return sentence_line(AnswerSentence(row.text, row.markers), lead=lead)


def render_guidance(
    answer: Answer, answer_id: str, notes: tuple[str, ...] = (), link: str | None = None
) -> dict[str, Any]:
    """Block Kit message for an answer from the guidance map (`/advisor guidance`, or a question
    the map answers).

    Layout: the heading (what the reports advise on the theme), the points one a line with their
    case study and markers, notes, a divider, one context block per citation (report title,
    section, case study, page, the quote), the feedback buttons (and the `link`). Within 50 blocks: points are
    packed into as few sections as fit, at least 10 sources keep their place (the points are
    shortened, and say so) and sources that do not fit are counted.
    """
    head: list[Block] = [_section(escape_mrkdwn(answer.heading))] if answer.heading else []
    points: list[Block] = [
        _section(t) for t in _sections([guidance_line(r) for r in answer.rows], joiner="\n")
    ]
    notes_blocks = _notes_blocks([*answer.notes, *notes])
    sources: list[Block] = [citation_block(c) for c in answer.citations]
    budget = MAX_BLOCKS - 1 - len(head) - len(notes_blocks)  # the actions block always comes last
    max_points = budget - (min(len(sources), 10) + 2 if sources else 0) - 1  # divider, "more", "shortened"
    if len(points) > max_points:
        points = points[:max_points] + [_note_block("_The answer was shortened to fit in a Slack message._")]
    blocks = [*head, *points, *notes_blocks]
    if sources:
        room = MAX_BLOCKS - 1 - len(blocks) - 1  # the actions block and the divider
        if len(sources) > room:
            room -= 1  # the "more sources" line
        blocks.append(DividerBlock())
        blocks.extend(sources[:room])
        hidden = len(sources) - room
        if hidden > 0:
            blocks.append(
                _note_block(
                    f"…and {hidden} more source{'s' if hidden > 1 else ''} "
                    "(a Slack message holds at most 50 blocks)."
                )
            )
    blocks.append(feedback_block(answer_id, answer.question, link))
    return _message(escape_mrkdwn(answer.text), blocks)


def render_themes(themes: list[Theme]) -> dict[str, Any]:
    """The guidance map's themes, one a line (title in bold and its id), with how to ask about one."""
    head = _section(f"*What the reports advise, by theme* ({len(themes)} themes)")
    lines = [f"• *{escape_mrkdwn(t.title)}* `{escape_mrkdwn(t.id)}`" for t in themes]
    body = [_section(t) for t in _sections(lines, joiner="\n")]
    how = _note_block(GUIDANCE_HOW)
    fallback = "What the reports advise, by theme: " + "; ".join(f"{t.title} ({t.id})" for t in themes)
    return _message(escape_mrkdwn(fallback), [head, *body[: MAX_BLOCKS - 2], how])
